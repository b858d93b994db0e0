import Foundation
import Testing

/// Two `warren-bench` processes on loopback: one listens (`link-serve`), the other dials it and
/// moves bulk data through one stream (`link-send --hash`); the receiver compares BLAKE2b
/// digests of what was sent and what arrived, and fails on any difference.
@Suite(.serialized, .timeLimit(.minutes(15)))
struct LinkProcessTests {
    /// The `warren-bench` executable built beside this test bundle.
    static var bench: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0])
            .deletingLastPathComponent()
            .appendingPathComponent("warren-bench")
    }

    /// Its fields are set once in `init`; `Process` may be waited on from any thread.
    final class Server: @unchecked Sendable {
        let process = Process()
        let home: URL
        let nodeID: String
        let port: String

        init(home: URL? = nil) throws {
            self.home = home ?? URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("warren-link-\(UUID().uuidString)")
            process.executableURL = LinkProcessTests.bench
            process.arguments = ["link-serve", "--host", "127.0.0.1", "--port", "0"]
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

        /// Starts `link-serve` and reads its first line, off the concurrency pool.
        static func start(home: URL? = nil) async throws -> Server {
            try await offPool { try Server(home: home) }
        }

        func stop() async {
            process.terminate()
            await waitForExit(process)
            try? FileManager.default.removeItem(at: home)
        }
    }

    /// Runs `body` with a started server, which is stopped afterwards (also when `body` throws).
    static func withServer<T>(_ body: (Server) async throws -> T) async throws -> T {
        let server = try await Server.start()
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    /// Runs `link-send` to completion, off the concurrency pool.
    static func send(to server: Server, arguments: [String]) async throws -> (status: Int32, output: String) {
        try await offPool { try sendBlocking(to: server, arguments: arguments) }
    }

    static func sendBlocking(to server: Server, arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = bench
        process.arguments = ["link-send", "--ephemeral", "--port", server.port, "--expect", server.nodeID] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func oneGibibyteCrossesALinkIntact() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.bench.path), "build the warren-bench product first (swift build)")
        let result = try await Self.withServer { server in
            try await Self.send(to: server, arguments: ["--bytes", String(1 << 30), "--hash"])
        }
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("bytes \(1 << 30) "), "\(result.output)")
        let digests = result.output.split(separator: "\n").first { $0.hasPrefix("digest ") }?.split(separator: " ")
        #expect(digests?.count == 4 && digests?[1] == digests?[3], "\(result.output)")
    }

    @Test func bytesFlowFromAcceptorToDiallerIntact() async throws {
        let result = try await Self.withServer { server in
            try await Self.send(to: server, arguments: ["--bytes", String(128 << 20), "--hash", "--direction", "down"])
        }
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("bytes \(128 << 20) "), "\(result.output)")
    }

    @Test func aSecondServeReusesItsIdentity() async throws {
        let first = try await Server.start()
        let id = first.nodeID
        first.process.terminate()
        await waitForExit(first.process)
        let second = try await Server.start(home: first.home)
        #expect(second.nodeID == id)
        await second.stop()
    }
}

