import Foundation
import Logging
@testable import MeshNode
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Testing

/// The local API stopped while connections arrive, as a node is stopped while the CLI calls it. NIO
/// wraps a connection for the accept loop before the loop sees it; one wrapped after the loop's
/// sequence ended used to be dropped unfinished and trap the process ("Deinited NIOAsyncWriter
/// without calling finish()"). Every connection that got through must be closed by the server.
@Suite("LocalAPIServerStop", .serialized)
struct LocalAPIServerStopTests {
    static let rounds = 12
    static let connections = 64

    enum Stop { case cancel, gracefulShutdown }

    @Test("stopping while connections arrive closes every one, by cancellation and by graceful shutdown", .timeLimit(.minutes(5)),
          arguments: [Stop.cancel, .gracefulShutdown])
    func stopDuringConnectionBurst(_ stop: Stop) async throws {
        var accepted = 0
        for _ in 0..<Self.rounds {
            let dir = try StateTestDirectory("api-stop")
            defer { dir.remove() }
            var router = APIRouter()
            router.get("/v1/ping") { _ in try .json(["ok": true]) }
            let server = try await LocalAPIServer.bind(stateDirectory: dir.path, router: router, logger: .quiet("api"))
            let group = ServiceGroup(configuration: .init(services: [server], logger: .quiet("group")))
            let serving = Task { try await group.run() }
            let socketPath = server.socketPath
            // Serving: the stop below reaches a running server, not one the group has yet to start.
            #expect(try await TestHTTPConnection.request(socketPath: socketPath, .GET, "/v1/ping").status == 200)
            // The burst and the stop race: connections are accepted before, during and after it.
            let clients = Task {
                await withTaskGroup(of: (any Channel)?.self) { burst in
                    for _ in 0..<Self.connections {
                        burst.addTask { try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(unixDomainSocketPath: socketPath).get() }
                    }
                    var connected: [any Channel] = []
                    for await channel in burst { if let channel { connected.append(channel) } }
                    return connected
                }
            }
            await Task.yield()
            switch stop {
            case .cancel: serving.cancel()
            case .gracefulShutdown: await group.triggerGracefulShutdown()
            }
            _ = await serving.result
            let connected = await clients.value
            accepted += connected.count
            // Nothing is left open: the server closed every connection it had (one bounded wait).
            let open = await withTaskGroup(of: Int.self) { wait in
                for channel in connected {
                    wait.addTask {
                        // A connection the listener queued but never accepted is orphaned by the
                        // kernel when the listener closes and reports it only when used: ask on
                        // each one, so only a connection the server holds open stays open.
                        try? await channel.writeAndFlush(ByteBuffer(string: "GET /v1/ping HTTP/1.1\r\nHost: node\r\n\r\n"))
                        let closed = await withTaskGroup(of: Bool.self) { race in
                            race.addTask { (try? await channel.closeFuture.get()) != nil }
                            race.addTask {
                                try? await Task.sleep(for: .seconds(10))
                                return false
                            }
                            let first = await race.next() ?? false
                            // A close future ignores cancellation: closing our end lets the group end.
                            if !first { try? await channel.close() }
                            race.cancelAll()
                            return first
                        }
                        return closed ? 0 : 1
                    }
                }
                return await wait.reduce(0, +)
            }
            #expect(open == 0, "\(open) connections accepted as the local API stopped were left open")
            #expect(!FileManager.default.fileExists(atPath: socketPath))
        }
        // Some connections got through in the races (else this would test nothing).
        #expect(accepted > 0)
    }
}
