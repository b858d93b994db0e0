import Foundation
import Testing

/// Two `warren` processes on loopback: one listens (`debug link-serve`), the other dials it and
/// moves bulk data through one stream (`debug link-send --hash`); the receiver compares BLAKE2b
/// digests of what was sent and what arrived, and fails on any difference.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct LinkProcessTests {
    /// The `warren` executable built beside this test bundle.
    static var warren: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0])
            .deletingLastPathComponent()
            .appendingPathComponent("warren")
    }

    final class Server {
        let process = Process()
        let home: URL
        let nodeID: String
        let port: String

        init(home: URL? = nil) throws {
            self.home = home ?? URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("warren-link-\(UUID().uuidString)")
            process.executableURL = LinkProcessTests.warren
            process.arguments = ["debug", "link-serve", "--host", "127.0.0.1", "--port", "0"]
            process.environment = ProcessInfo.processInfo.environment.merging(["WARREN_HOME": self.home.path]) { $1 }
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            // "node <id> port <port>\n"
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                line += chunk
            }
            let words = String(decoding: line, as: UTF8.self).split(whereSeparator: \.isWhitespace)
            guard words.count >= 4, words[0] == "node" else {
                process.terminate()
                throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "link-serve printed \(String(decoding: line, as: UTF8.self))"])
            }
            nodeID = String(words[1])
            port = String(words[3])
        }

        func stop() {
            process.terminate()
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: home)
        }
    }

    static func send(to server: Server, arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = warren
        process.arguments = ["debug", "link-send", "--ephemeral", "--port", server.port, "--expect", server.nodeID] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func oneGibibyteCrossesALinkIntact() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.warren.path), "build the warren product first (swift build)")
        let server = try Server()
        defer { server.stop() }
        let result = try Self.send(to: server, arguments: ["--bytes", String(1 << 30), "--hash"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("bytes \(1 << 30) "), "\(result.output)")
        let digests = result.output.split(separator: "\n").first { $0.hasPrefix("digest ") }?.split(separator: " ")
        #expect(digests?.count == 4 && digests?[1] == digests?[3], "\(result.output)")
    }

    @Test func bytesFlowFromAcceptorToDiallerIntact() throws {
        let server = try Server()
        defer { server.stop() }
        let result = try Self.send(to: server, arguments: ["--bytes", String(128 << 20), "--hash", "--direction", "down"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("bytes \(128 << 20) "), "\(result.output)")
    }

    @Test func aSecondServeReusesItsIdentity() throws {
        let first = try Server()
        let id = first.nodeID
        first.process.terminate()
        first.process.waitUntilExit()
        let second = try Server(home: first.home)
        defer { second.stop() }
        #expect(second.nodeID == id)
    }
}
