import Foundation
@testable import FuzzTargets
import Testing

/// A bounded, seeded stand-in for libFuzzer in `make test`: the `exclusive-http` target's seeds,
/// mutated (HTTP tokens inserted, bytes dropped or flipped, the read size changed), must keep the
/// target's properties: reads that split a body at a bad chunk byte, and methods llhttp does not
/// know, are among what the mutations reach.
struct SeededMutationTests {
    /// SplitMix64: the same inputs on every run.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let tokens: [[UInt8]] = [
        "\r\n", "\n", "\r", " ", ":", ",", "\t", "\u{0}", "Content-Length: 3", "Content-Length: 0", "Transfer-Encoding: chunked",
        "0\r\n\r\n", "5\r\nhello\r\n", "HTTP/1.1", "HTTP/1.0", "GET / HTTP/1.1\r\n", "HEAD / HTTP/1.1\r\n", "Upgrade: x",
        "Connection: close", "Host: a", "X-Forwarded-For: 1.2.3.4", "HTTP/1.1 200 OK\r\n", "HTTP/1.1 101 Switching Protocols\r\n",
    ].map { Array($0.utf8) }

    @Test func exclusiveHTTPKeepsItsPropertiesUnderSeededMutations() throws {
        let target = try #require(FuzzTarget.named("exclusive-http"))
        let seeds = FuzzRegressionTests.inputs("corpus", "exclusive-http").map { Array(try! Data(contentsOf: $0)) }
        try #require(!seeds.isEmpty)
        var random = Generator(state: 20261203)
        var failures: [String] = []
        for _ in 0..<8000 {
            var input = seeds[Int.random(in: 0..<seeds.count, using: &random)]
            for _ in 0..<Int.random(in: 1...6, using: &random) {
                let at = Int.random(in: 1...max(1, input.count), using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: input.insert(contentsOf: Self.tokens.randomElement(using: &random)!, at: min(at, input.count))
                case 1: if at < input.count { input.remove(at: at) }
                case 2: if at < input.count { input[at] = UInt8.random(in: 0...255, using: &random) }
                default: input[0] = UInt8.random(in: 0...255, using: &random)
                }
            }
            do { try target.check(input) } catch {
                failures.append("\(error): \(String(decoding: input, as: UTF8.self).debugDescription)")
                if failures.count >= 3 { break }
            }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }
}
