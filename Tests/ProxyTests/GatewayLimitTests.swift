import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import Proxy

/// A TCP connection from a chosen loopback source address. Its writer is finished when the
/// channel closes, so a test that throws before `hangUp` fails instead of trapping in the writer's
/// deinit (NIO requires `finish()` on every writer made outside `executeThenClose`).
func connect(_ address: SocketAddress, from source: String) async throws -> TestClient.Connection {
    let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelOption(.allowRemoteHalfClosure, value: true)
        .bind(to: try SocketAddress(ipAddress: source, port: 0))
        .connect(to: address) { channel in
            channel.eventLoop.makeCompletedFuture {
                try TestClient.Connection(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
            }
        }
    let outbound = connection.outbound
    connection.channel.closeFuture.whenComplete { _ in outbound.finish() }
    return connection
}

/// Sends `text` on `connection` and reads until `expected` bytes came back (or the end).
func roundTrip(_ connection: TestClient.Connection, _ text: String) async throws -> String {
    let (inbound, outbound) = (connection.inbound, connection.outbound)
    try await outbound.write(ByteBuffer(string: text))
    var received = ByteBuffer()
    var iterator = inbound.makeAsyncIterator()
    while received.readableBytes < text.utf8.count, var chunk = try await iterator.next() {
        received.writeBuffer(&chunk)
    }
    return String(buffer: received)
}

/// Ends a connection made outside `executeThenClose` (its writer must be finished).
func hangUp(_ connections: TestClient.Connection...) async {
    for connection in connections {
        connection.outbound.finish()
        try? await connection.channel.close()
    }
}

/// Everything the other side sends until it closes; a reset counts as the close it is.
func readToEnd(_ connection: TestClient.Connection) async throws -> String {
    var received = ByteBuffer()
    do {
        for try await var chunk in connection.inbound { received.writeBuffer(&chunk) }
    } catch let error as IOError where error.errnoCode == ECONNRESET {
        return String(buffer: received)
    }
    return String(buffer: received)
}

/// A connector whose connections never get an answer (a runner that went silent); fails them
/// all at `release()` so no promise is left behind.
final class SilentConnector: UpstreamConnector, Sendable {
    private let promises = NIOLockedValueBox<[EventLoopPromise<any Channel>]>([])

    func connect(
        to route: Route,
        clientAddress: SocketAddress?,
        serverAddress: SocketAddress?,
        on eventLoop: any EventLoop,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel> {
        let promise = eventLoop.makePromise(of: (any Channel).self)
        self.promises.withLockedValue { $0.append(promise) }
        return promise.futureResult
    }

    func release() {
        for promise in self.promises.withLockedValue({ $0 }) { promise.fail(ProxyError.upstreamNotConnected(Route(runID: "-", upstream: "-", appPort: 1))) }
    }
}

@Suite("Gateway: connection caps and errors clients can act on", .serialized, .timeLimit(.minutes(10)))
struct GatewayLimitTests {
    @Test func aClientOverItsCapIsTurnedAwayOthersAreNot() async throws {
        var configuration = ProxyConfiguration()
        configuration.maxConnectionsPerClient = 2
        let lab = try await Lab.start(configuration: configuration)
        let echo = try await TestServer.echo()
        let app = try await TestServer.http(name: "app")
        let tcp = lab.anyPort
        let http = ListenAddress(host: "127.0.0.4", port: 0)
        var table = RoutingTable()
        try table.addExclusive(lab.route(echo, run: "echo"), on: tcp)
        try table.addHost("a.example", route: lab.route(app, run: "web"), on: http)
        #expect(await lab.gateway.apply(table).isEmpty)
        let tcpAddress = try await lab.socketAddress(of: tcp)
        let httpAddress = try await lab.socketAddress(of: http)

        try await withTimeout(60) {
            let first = try await connect(tcpAddress, from: "127.0.0.1")
            let second = try await connect(tcpAddress, from: "127.0.0.1")
            #expect(try await roundTrip(first, "one") == "one")
            #expect(try await roundTrip(second, "two") == "two")
            // The third from the same address: closed at once, on TCP and on the HTTP port.
            let third = try await connect(tcpAddress, from: "127.0.0.1")
            #expect(try await readToEnd(third) == "")
            let refused = try await TestClient.http(httpAddress, host: "a.example")
            #expect(refused.status == 503)
            #expect(refused.response.lowercased().contains("retry-after: 5"))
            #expect(refused.response.contains("too many connections from 127.0.0.1"))
            // Another address is not held back.
            let other = try await connect(tcpAddress, from: "127.0.0.9")
            #expect(try await roundTrip(other, "three") == "three")
            await hangUp(first, second, third, other)
        }
        #expect(lab.gateway.connectionCounts.refusedByClientLimit == 2)
        await echo.close()
        await app.close()
        await lab.stop()
    }

    @Test func aServiceAtItsCapLeavesTheRunnersOtherServicesServing() async throws {
        var configuration = ProxyConfiguration()
        configuration.maxConnectionsPerRoute = 2
        let lab = try await Lab.start(configuration: configuration)
        let echo = try await TestServer.echo()
        let busy = try await TestServer.http(name: "busy")
        let calm = try await TestServer.http(name: "calm")
        let tcp = lab.anyPort
        let http = ListenAddress(host: "127.0.0.4", port: 0)
        var table = RoutingTable()
        try table.addExclusive(lab.route(echo, run: "echo"), on: tcp)
        try table.addHost("busy.example", route: lab.route(busy, run: "busy"), on: http)
        try table.addHost("calm.example", route: lab.route(calm, run: "calm"), on: http)
        #expect(await lab.gateway.apply(table).isEmpty)
        let tcpAddress = try await lab.socketAddress(of: tcp)
        let httpAddress = try await lab.socketAddress(of: http)

        try await withTimeout(60) {
            let first = try await TestClient.connect(tcpAddress)
            let second = try await TestClient.connect(tcpAddress)
            #expect(try await roundTrip(first, "one") == "one")
            #expect(try await roundTrip(second, "two") == "two")
            let third = try await TestClient.connect(tcpAddress)
            #expect(try await readToEnd(third) == "")

            // Two keep-alive connections hold both of busy's places; the third request gets 503.
            let request = "GET /hello HTTP/1.1\r\nHost: busy.example\r\n\r\n"
            let a = try await TestClient.connect(httpAddress)
            let b = try await TestClient.connect(httpAddress)
            #expect(try await roundTrip(a, request).hasPrefix("HTTP/1.1 200"))
            #expect(try await roundTrip(b, request).hasPrefix("HTTP/1.1 200"))
            let refused = try await TestClient.http(httpAddress, host: "busy.example")
            #expect(refused.status == 503)
            #expect(refused.response.lowercased().contains("retry-after: 5"))
            #expect(refused.response.contains("service \"busy\" is at this gateway's limit of 2 connections per service"))
            // The runner's other service still answers.
            let calmAnswer = try await TestClient.http(httpAddress, host: "calm.example")
            #expect(calmAnswer.status == 200)
            #expect(calmAnswer.response.contains("hello from calm"))
            await hangUp(first, second, third, a, b)
        }
        #expect(lab.gateway.connectionCounts.refusedByRouteLimit == 2)
        await echo.close()
        await busy.close()
        await calm.close()
        await lab.stop()
    }

    @Test func aSilentRunnerGets504OnHTTPAndACloseOnTCP() async throws {
        var configuration = ProxyConfiguration()
        configuration.upstreamConnectTimeout = .seconds(1)
        let connector = SilentConnector()
        let gateway = GatewayIngress(group: MultiThreadedEventLoopGroup.singleton, connector: connector, configuration: configuration)
        let tcp = ListenAddress(host: "127.0.0.2", port: 0)
        let http = ListenAddress(host: "127.0.0.4", port: 0)
        var table = RoutingTable()
        try table.addExclusive(Route(runID: "quiet-tcp", upstream: "r", appPort: 1), on: tcp)
        try table.addHost("quiet.example", route: Route(runID: "quiet", upstream: "r", appPort: 2), on: http)
        #expect(await gateway.apply(table).isEmpty)
        let tcpAddress = try #require(await gateway.localAddress(of: tcp))
        let httpAddress = try #require(await gateway.localAddress(of: http))

        // Bounded waits (the answer is due after about 1 s), not timings.
        let answer = try await withTimeout(20) { try await TestClient.http(httpAddress, host: "quiet.example") }
        #expect(answer.status == 504)
        #expect(answer.response.contains("service \"quiet\" did not answer"))
        let closed = try await withTimeout(20) {
            try await TestClient.exchange(tcpAddress, send: ByteBuffer(string: "hello"), halfClose: false)
        }
        #expect(closed.readableBytes == 0)
        connector.release()
        await gateway.shutdown()
    }

    @Test func anUnconnectedRunnerGets503WithRetryAfterNamingTheService() async throws {
        let lab = try await Lab.start()
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addHost("a.example", route: Route(runID: "api-1", upstream: "absent-runner", appPort: 1), on: listen)
        await lab.gateway.apply(table)
        let address = try await lab.socketAddress(of: listen)
        let answer = try await withTimeout(60) { try await TestClient.http(address, host: "a.example") }
        #expect(answer.status == 503)
        #expect(answer.response.lowercased().contains("retry-after: 5"))
        #expect(answer.response.contains("service \"api-1\" is unreachable"))
        await lab.stop()
    }
}

@Suite("Gateway: HTTP on exclusive ports carries the client's address")
struct GatewayExclusiveHTTPTests {
    @Test func firstBytesTellHTTPFromOtherProtocols() {
        func classify(_ text: String) -> FirstBytes { FirstBytes.classify(ByteBuffer(string: text), limit: 64) }
        #expect(classify("GET / HTTP/1.1\r\nHost: x\r\n") == .http)
        #expect(classify("POST /a HTTP/1.0\n") == .http)
        #expect(classify("GE") == .needMore)
        #expect(classify("GET /partial") == .needMore)
        #expect(classify("SSH-2.0-OpenSSH_9.2\r\n") == .other)
        #expect(classify("OPTIONS rtsp://x RTSP/1.0\r\n") == .other)
        #expect(classify("\u{16}\u{03}\u{01}") == .other)
        #expect(classify("get / HTTP/1.1\r\n") == .other)
        #expect(classify("GET /" + String(repeating: "a", count: 80)) == .other)
    }

    @Test func anExclusivePortProxiesHTTPWithForwardingHeaders() async throws {
        let lab = try await Lab.start()
        let app = try await TestServer.http(name: "app")
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addExclusive(lab.route(app), on: listen)
        #expect(await lab.gateway.apply(table).isEmpty)
        let address = try await lab.socketAddress(of: listen)
        let answer = try await withTimeout(60) { try await TestClient.http(address, host: "any.example:5001") }
        #expect(answer.status == 200)
        #expect(answer.response.contains("x-forwarded-for: 127.0.0.1"))
        #expect(answer.response.contains("x-forwarded-proto: http"))
        #expect(answer.response.contains("x-forwarded-host: any.example:5001"))
        // HTTP/1.0 without Host still reaches the port's app.
        let old = try await withTimeout(60) {
            String(buffer: try await TestClient.exchange(address, send: ByteBuffer(string: "GET /hello HTTP/1.0\r\n\r\n"), halfClose: false))
        }
        #expect(old.contains("hello from app"))
        #expect(old.contains("x-forwarded-for: 127.0.0.1"))
        await app.close()
        await lab.stop()
    }
}
