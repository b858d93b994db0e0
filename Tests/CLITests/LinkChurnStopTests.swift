import Foundation
import Testing

/// Nodes stopped with SIGTERM while their links go down and come back: a runner-like node joined
/// to a seed, the seed restarted under it, both stopped as big gossip entries cross the link.
/// Every stop must be a clean exit (status 0), never a trap such as a leaked promise in a debug
/// build. Ten rounds here; RELIABILITY.md has longer runs. The CLI calls in flight as a node stops
/// reach its local API while it closes (`LocalAPIServerStopTests` holds that race alone).
@Suite(.serialized, .timeLimit(.minutes(10)))
struct LinkChurnStopTests {
    static func loopback() -> String {
        "127.\(Int.random(in: 1...254)).\(Int.random(in: 0...255)).\(Int.random(in: 1...254))"
    }

    @Test func sigtermStopsUnderLinkChurnExitCleanly() async throws {
        var made = Array("/tmp/warren-churn-XXXXXX".utf8CString)
        let root = try #require(mkdtemp(&made).map { String(cString: $0) })
        defer { try? FileManager.default.removeItem(atPath: root) }
        let hostA = Self.loopback(), hostB = Self.loopback()
        let portA = try freePort(on: hostA), portB = try freePort(on: hostB)
        let rounds = Int(ProcessInfo.processInfo.environment["WARREN_CHURN_ROUNDS"] ?? "") ?? 10
        func start(_ name: String, _ arguments: [String], round: Int) throws -> NodeProcess {
            try NodeProcess(name: name, arguments: ["--state-dir", "\(root)/\(name)", "--log-level", "debug"] + arguments,
                            environment: [:], logPath: "\(root)/\(name)-\(round).log")
        }
        var stops: [(node: String, round: Int, reason: Process.TerminationReason, status: Int32)] = []
        for round in 0..<rounds {
            let a = try start("a", ["--listen", "\(hostA):\(portA)"], round: round)
            let b = try start("b", ["--listen", "\(hostB):\(portB)", "--join", "\(hostA):\(portA)"], round: round)
            // Entries larger than a datagram cross the link, as calls on streams of it.
            let writer = Task {
                var i = 0
                while !Task.isCancelled {
                    i += 1
                    _ = try? await WarrenProcess.run(
                        ["secrets", "add", "BIG\(i % 4)", String(repeating: "x", count: 8192 + i), "--project", "local"],
                        environment: ["WARREN_HOME": "\(root)/\(i % 2 == 0 ? "a" : "b")"], timeout: 10)
                }
            }
            _ = await eventually(within: 20) {
                let peers = try? await WarrenProcess.run(["peers", "--state-dir", "\(root)/b"], timeout: 10)
                return peers?.stdout.contains("alive") == true
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 200...1500)))
            // Odd rounds: the seed goes first, so b's link drops just before b is told to stop;
            // even rounds: b is stopped while a stops too.
            if round % 2 == 1 {
                await a.stop(seconds: 15)
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...300)))
                await b.stop(seconds: 15)
            } else {
                async let stopA: Void = a.stop(seconds: 15)
                async let stopB: Void = b.stop(seconds: 15)
                _ = await (stopA, stopB)
            }
            writer.cancel()
            await writer.value
            for node in [a, b] {
                let ended = try #require(node.termination)
                stops.append((node.name, round, ended.reason, ended.status))
                #expect(ended.reason == .exit && ended.status == 0,
                        "node \(node.name) ended by \(ended.reason == .exit ? "exit" : "signal") \(ended.status) in round \(round):\n\(node.log.suffix(4000))")
                #expect(!node.log.contains("Fatal error"), "node \(node.name) trapped in round \(round):\n\(node.log.suffix(4000))")
            }
        }
        #expect(stops.count == 2 * rounds)
    }
}
