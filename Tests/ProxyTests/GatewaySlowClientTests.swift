import NIOCore
import NIOPosix
import Testing
@testable import Proxy

/// A client that reads slowly gets the whole response: the gateway closes a `Connection: close`
/// exchange only once what it queued for the client is written.
@Suite("Gateway: slow clients", .timeLimit(.minutes(5)))
struct GatewaySlowClientTests {
    @Test func aSlowReaderGetsTheWholeResponseBeforeTheClose() async throws {
        let app = try await TestServer.http(name: "app")
        let (lab, address) = try await Lab.hosting("slow.example", app: app)
        let size = 4 * 1024 * 1024

        let received = try await withTimeout(240) {
            // A small receive buffer and pauses between reads keep the gateway's writes queued
            // when the app's response ends.
            let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.socketOption(.so_rcvbuf), value: 4096)
                .connect(to: address) { channel in
                    channel.eventLoop.makeCompletedFuture { try TestClient.Connection(wrappingChannelSynchronously: channel) }
                }
            return try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "GET /download/\(size) HTTP/1.1\r\nHost: slow.example\r\nConnection: close\r\n\r\n"))
                var total = 0
                for try await part in inbound {
                    total += part.readableBytes
                    try await Task.sleep(for: .milliseconds(1))
                }
                return total
            }
        }
        // The head is a few hundred bytes; the body must be all there.
        #expect(received > size && received < size + 1024, "received \(received) bytes for a \(size)-byte body")
        await app.close()
        await lab.stop()
    }
}
