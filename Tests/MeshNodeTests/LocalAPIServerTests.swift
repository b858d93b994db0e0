import Foundation
import Logging
import MeshNode
@testable import Provisioning
@testable import Trust
@testable import Link
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

private struct Greeting: Codable, Equatable {
    var name: String
    var count: Int
}

/// Records whether a streamed body's producer has ended.
private actor StreamProbe {
    private(set) var started = false
    private(set) var ended = false
    func start() { started = true }
    func end() { ended = true }
}

@Suite("LocalAPIServer")
struct LocalAPIServerTests {
    private func makeRouter(probe: StreamProbe = StreamProbe()) -> APIRouter {
        var router = APIRouter()
        router.get("/v1/greetings/:name") { request in
            let count = Int(request.query["count"] ?? "1") ?? 1
            return try .json(Greeting(name: try request.parameter("name"), count: count))
        }
        router.post("/v1/greetings") { request in
            let greeting = try request.decode(Greeting.self)
            return try .json(Greeting(name: greeting.name.uppercased(), count: greeting.count + 1), status: 201)
        }
        router.delete("/v1/greetings/:name") { request in
            throw APIError.conflict("greeting \"\(try request.parameter("name"))\" is in use by run web-1; stop it first")
        }
        router.get("/v1/broken") { _ in
            struct Boom: Error {}
            throw Boom()
        }
        router.get("/v1/stream") { _ in
            let chunks = AsyncStream<Data> { continuation in
                for index in 1...3 { continuation.yield(Data("line \(index)\n".utf8)) }
                continuation.finish()
            }
            return .stream(chunks)
        }
        router.get("/v1/follow") { _ in
            APIResponse(body: .stream { writer in
                await probe.start()
                defer { Task { await probe.end() } }
                try await writer.write("first\n")
                // Like `logs -f` with no new output: waits until cancelled.
                try await Task.sleep(for: .seconds(600))
            })
        }
        return router
    }

    private func withServer<R>(
        stateDirectory: String, router: APIRouter, maxBodyBytes: Int = 1 << 20,
        _ body: (LocalAPIServer) async throws -> R
    ) async throws -> R {
        let server = try await LocalAPIServer.bind(
            stateDirectory: stateDirectory, router: router,
            configuration: .init(maxBodyBytes: maxBodyBytes), logger: .quiet("api")
        )
        let serving = Task { try await server.run() }
        defer { serving.cancel() }
        let result = try await body(server)
        serving.cancel()
        _ = await serving.result
        return result
    }

    @Test("JSON in and out, path parameters, query, keep-alive")
    func jsonRoundTrip() async throws {
        let dir = try StateTestDirectory("api")
        defer { dir.remove() }
        try await withServer(stateDirectory: dir.path, router: makeRouter()) { server in
            try await TestHTTPConnection.with(socketPath: server.socketPath) { connection in
                try await connection.send(.GET, "/v1/greetings/ann%20b?count=3")
                let first = try await connection.response()
                #expect(first.status == 200)
                #expect(try JSONDecoder().decode(Greeting.self, from: first.body) == Greeting(name: "ann b", count: 3))

                // Second request on the same connection.
                try await connection.send(.POST, "/v1/greetings", body: Data(#"{"name":"bo","count":1}"#.utf8))
                let second = try await connection.response()
                #expect(second.status == 201)
                #expect(try JSONDecoder().decode(Greeting.self, from: second.body) == Greeting(name: "BO", count: 2))
            }
        }
    }

    @Test("bad JSON, unknown route, wrong method and handler errors are JSON errors with their status")
    func errors() async throws {
        let dir = try StateTestDirectory("api")
        defer { dir.remove() }
        try await withServer(stateDirectory: dir.path, router: makeRouter()) { server in
            let path = server.socketPath
            let badJSON = try await TestHTTPConnection.request(socketPath: path, .POST, "/v1/greetings", body: Data("{nope".utf8))
            #expect(badJSON.status == 400)
            #expect(badJSON.errorMessage?.contains("not valid JSON") == true)

            let missingField = try await TestHTTPConnection.request(socketPath: path, .POST, "/v1/greetings", body: Data(#"{"name":"x"}"#.utf8))
            #expect(missingField.status == 400)
            #expect(missingField.errorMessage?.contains("count") == true)

            let unknown = try await TestHTTPConnection.request(socketPath: path, .GET, "/v1/nothing")
            #expect(unknown.status == 404)
            #expect(unknown.errorMessage?.contains("/v1/nothing") == true)

            let wrongMethod = try await TestHTTPConnection.request(socketPath: path, .PUT, "/v1/greetings")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.head.headers.first(name: "allow") == "POST")
            #expect(wrongMethod.errorMessage?.contains("use POST") == true)

            let conflict = try await TestHTTPConnection.request(socketPath: path, .DELETE, "/v1/greetings/web")
            #expect(conflict.status == 409)
            #expect(conflict.errorMessage == "greeting \"web\" is in use by run web-1; stop it first")

            let broken = try await TestHTTPConnection.request(socketPath: path, .GET, "/v1/broken")
            #expect(broken.status == 500)
            #expect(broken.errorMessage?.contains("GET /v1/broken failed") == true)
        }
    }

    @Test("a body over the limit gets a 413")
    func bodyLimit() async throws {
        let dir = try StateTestDirectory("api")
        defer { dir.remove() }
        try await withServer(stateDirectory: dir.path, router: makeRouter(), maxBodyBytes: 64) { server in
            let body = Data(("{\"name\":\"" + String(repeating: "x", count: 200) + "\",\"count\":1}").utf8)
            let response = try await TestHTTPConnection.request(socketPath: server.socketPath, .POST, "/v1/greetings", body: body)
            #expect(response.status == 413)
            #expect(response.errorMessage?.contains("64 bytes") == true)
        }
    }

    @Test("a streamed body arrives chunked and complete")
    func streaming() async throws {
        let dir = try StateTestDirectory("api")
        defer { dir.remove() }
        try await withServer(stateDirectory: dir.path, router: makeRouter()) { server in
            let response = try await TestHTTPConnection.request(socketPath: server.socketPath, .GET, "/v1/stream")
            #expect(response.status == 200)
            #expect(response.head.headers.first(name: "transfer-encoding") == "chunked")
            #expect(String(decoding: response.body, as: UTF8.self) == "line 1\nline 2\nline 3\n")
        }
    }

    @Test("a follower stops when its client goes away")
    func followerEndsWithClient() async throws {
        let dir = try StateTestDirectory("api")
        defer { dir.remove() }
        let probe = StreamProbe()
        try await withServer(stateDirectory: dir.path, router: makeRouter(probe: probe)) { server in
            let first = try await TestHTTPConnection.with(socketPath: server.socketPath) { connection in
                try await connection.send(.GET, "/v1/follow")
                _ = try await connection.readHead()
                return try await connection.readChunk()
            }
            #expect(first == Data("first\n".utf8))
            // Bounded wait for the server to notice; the assertion is on the outcome, not the time.
            for _ in 0..<100 where await !probe.ended {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(await probe.started)
            #expect(await probe.ended)
        }
    }

    @Test("the socket is 0600 in a 0700 directory, and is removed when the server stops")
    func permissionsAndCleanup() async throws {
        let dir = try StateTestDirectory("api")
        defer { dir.remove() }
        let stateDir = dir.path + "/home"
        let socketPath = try await withServer(stateDirectory: stateDir, router: makeRouter()) { server in
            #expect(server.socketPath == stateDir + "/node.sock")
            let directoryMode = try posixMode(stateDir)
            let socketMode = try posixMode(server.socketPath)
            #expect(directoryMode == 0o700)
            #expect(socketMode == 0o600)
            return server.socketPath
        }
        #expect(!FileManager.default.fileExists(atPath: socketPath))
    }

    @Test("cancelling the server ends it even with an idle keep-alive connection open", .timeLimit(.minutes(10)))
    func shutdownWithIdleConnection() async throws {
        let dir = try StateTestDirectory("api")
        defer { dir.remove() }
        let server = try await LocalAPIServer.bind(stateDirectory: dir.path, router: makeRouter(), logger: .quiet("api"))
        let serving = Task { try await server.run() }
        try await TestHTTPConnection.with(socketPath: server.socketPath) { connection in
            try await connection.send(.GET, "/v1/greetings/idle")
            #expect(try await connection.response().status == 200)
            serving.cancel()
            _ = await serving.result
            // The server closed the idle connection on its way out.
            await #expect(throws: (any Error).self) {
                try await connection.send(.GET, "/v1/greetings/again")
                _ = try await connection.response()
            }
        }
        #expect(!FileManager.default.fileExists(atPath: server.socketPath))
    }

    @Test("a stale socket is replaced; a live node is not disturbed")
    func staleAndLiveSockets() async throws {
        let dir = try StateTestDirectory("api")
        defer { dir.remove() }
        let socketPath = dir.path + "/node.sock"
        // A socket file nothing listens on, as a killed node leaves it.
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", socketPath]
        try python.run()
        await waitForExit(python)
        #expect(python.terminationStatus == 0)
        #expect(FileManager.default.fileExists(atPath: socketPath))

        try await withServer(stateDirectory: dir.path, router: makeRouter()) { server in
            let response = try await TestHTTPConnection.request(socketPath: server.socketPath, .GET, "/v1/greetings/a")
            #expect(response.status == 200)

            await #expect(throws: LocalAPIError.alreadyRunning(stateDirectory: dir.path)) {
                _ = try await LocalAPIServer.bind(stateDirectory: dir.path, router: APIRouter(), logger: .quiet("api"))
            }
            #expect(LocalAPIError.alreadyRunning(stateDirectory: dir.path).description.contains(
                "a node is already running with state directory \(dir.path)"))
            // The first server still answers.
            let again = try await TestHTTPConnection.request(socketPath: server.socketPath, .GET, "/v1/greetings/b")
            #expect(again.status == 200)
        }
    }

    @Test("curl --unix-socket talks to it", .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
    func curlClient() async throws {
        let dir = try StateTestDirectory("api")
        defer { dir.remove() }
        try await withServer(stateDirectory: dir.path, router: makeRouter()) { server in
            // curl waits on the server, whose handlers need the concurrency pool: never wait on it there.
            let socketPath = server.socketPath
            let (status, data) = try await offPool {
                let curl = Process()
                curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
                curl.arguments = [
                    "-sS", "--unix-socket", socketPath, "-X", "POST", "-H", "content-type: application/json",
                    "--data", #"{"name":"cu","count":41}"#, "http://localhost/v1/greetings",
                ]
                let output = Pipe()
                curl.standardOutput = output
                try curl.run()
                let data = output.fileHandleForReading.readDataToEndOfFile()
                curl.waitUntilExit()
                return (curl.terminationStatus, data)
            }
            #expect(status == 0)
            #expect(try JSONDecoder().decode(Greeting.self, from: data) == Greeting(name: "CU", count: 42))

            // A body curl announces with "Expect: 100-continue" is asked for at once.
            let (largeStatus, largeData, trace) = try await offPool {
                let large = Process()
                large.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
                large.arguments = [
                    "-sS", "-v", "--unix-socket", socketPath, "-H", "content-type: application/json",
                    "-H", "expect: 100-continue",
                    "--data", #"{"name":""# + String(repeating: "y", count: 4000) + #"","count":1}"#, "http://localhost/v1/greetings",
                ]
                let largeOutput = Pipe()
                let largeErrors = Pipe()
                large.standardOutput = largeOutput
                large.standardError = largeErrors
                try large.run()
                let largeData = largeOutput.fileHandleForReading.readDataToEndOfFile()
                let trace = String(decoding: largeErrors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                large.waitUntilExit()
                return (large.terminationStatus, largeData, trace)
            }
            #expect(largeStatus == 0)
            #expect(trace.contains("HTTP/1.1 100 Continue"))
            #expect(try JSONDecoder().decode(Greeting.self, from: largeData).count == 2)
        }
    }
}
