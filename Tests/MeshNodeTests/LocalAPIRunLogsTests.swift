import Foundation
import Logging
import MeshNode
@testable import Provisioning
@testable import Trust
import TrustTestSupport
@testable import Link
import NIOHTTP1
import Testing

/// The local API, the supervisor and the store together, as `warren run` (attached) and
/// `warren logs -f` use them.
@Suite("LocalAPI with runs")
struct LocalAPIRunLogsTests {
    private struct StartRun: Codable {
        var id: String
        var commands: [String]
    }

    @Test("an attached run streams its log until it exits, and its record is saved", .timeLimit(.minutes(10)))
    func attachedRunStreamsLogs() async throws {
        let dir = try StateTestDirectory("api-runs")
        defer { dir.remove() }
        let supervisor = RunSupervisor(stateDirectory: dir.path, logger: .quiet("runs"))
        let store = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))
        let workDirectory = dir.path

        var router = APIRouter()
        router.post("/v1/runs") { request in
            let body = try request.decode(StartRun.self)
            let started = try await supervisor.start(RunSpec(id: body.id, commands: body.commands, directory: workDirectory))
            try await store.saveRun(RunRecord(
                id: body.id, name: body.id, project: "local", configJSON: "{}", directory: workDirectory,
                pid: started.pid, pgid: started.pgid, state: .running, logPath: started.logPath
            ))
            let log = supervisor.log(id: body.id)
            return .stream(log.follow(from: .beginning, pollInterval: .milliseconds(50)) {
                await !supervisor.isRunning(id: body.id)
            })
        }
        router.get("/v1/runs/:id/logs") { request in
            let id = try request.parameter("id")
            guard let record = try await store.run(id: id) else { throw APIError.notFound("no run \(id)") }
            let lines = Int(request.query["lines"] ?? "") ?? 100
            return .init(body: .bytes(Data(RunLog(path: record.logPath).tail(lines: lines).map { $0 + "\n" }.joined().utf8)))
        }

        let server = try await LocalAPIServer.bind(stateDirectory: dir.path, router: router, logger: .quiet("api"))
        let serving = Task { try await server.run() }
        defer { serving.cancel() }

        let start = StartRun(id: "attached", commands: ["for i in 1 2 3; do echo tick $i; sleep 0.05; done"])
        let streamed = try await TestHTTPConnection.request(
            socketPath: server.socketPath, .POST, "/v1/runs", body: try JSONEncoder().encode(start)
        )
        #expect(streamed.status == 200)
        #expect(String(decoding: streamed.body, as: UTF8.self) == "tick 1\ntick 2\ntick 3\n")

        let tail = try await TestHTTPConnection.request(socketPath: server.socketPath, .GET, "/v1/runs/attached/logs?lines=2")
        #expect(String(decoding: tail.body, as: UTF8.self) == "tick 2\ntick 3\n")
        let missing = try await TestHTTPConnection.request(socketPath: server.socketPath, .GET, "/v1/runs/nope/logs")
        #expect(missing.status == 404)
        #expect(missing.errorMessage == "no run nope")
    }
}
