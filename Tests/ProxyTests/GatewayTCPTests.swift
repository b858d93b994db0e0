import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Proxy
import ProxyTestSupport

@Suite("Gateway: exclusive TCP, listeners, limits", .timeLimit(.minutes(10)))
struct GatewayTCPTests {
    @Test func exclusivePortSplicesBytesAndHonoursHalfClose() async throws {
        let lab = try await Lab.start()
        let echo = try await TestServer.echo()
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addExclusive(lab.route(echo), on: listen)
        #expect(await lab.gateway.apply(table).isEmpty)
        let address = try await lab.socketAddress(of: listen)
        // The client half-closes after sending; the echo answers everything, then half-closes too.
        var message = ByteBuffer()
        for i in 0..<64 { message.writeImmutableBuffer(Payload.chunk(i, size: 16 * 1024)) }
        let sent = message
        let back = try await withTimeout(60) { try await TestClient.exchange(address, send: sent) }
        #expect(back == sent)
        await echo.close()
        await lab.stop()
    }

    @Test func serverSpeaksFirstBytesAreNotLost() async throws {
        let lab = try await Lab.start()
        let greeter = try await TestServer.start { channel in
            try channel.pipeline.syncOperations.addHandler(BannerHandler())
        }
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addExclusive(lab.route(greeter), on: listen)
        await lab.gateway.apply(table)
        let address = try await lab.socketAddress(of: listen)
        let banner = try await withTimeout(60) { try await TestClient.exchange(address, send: ByteBuffer(), halfClose: false) }
        #expect(String(buffer: banner) == "220 banner\r\n")
        await greeter.close()
        await lab.stop()
    }

    @Test func unreachableUpstreamClosesTCPConnections() async throws {
        let lab = try await Lab.start()
        let listen = lab.anyPort
        let refused = ListenAddress(host: "127.0.0.4", port: 0)
        var table = RoutingTable()
        try table.addExclusive(Route(runID: "r", upstream: "absent-runner", appPort: 1), on: listen)
        let dead = try await TestServer.echo()
        try table.addExclusive(lab.route(dead), on: refused)
        await dead.close()
        await lab.gateway.apply(table)
        for address in [listen, refused] {
            let socket = try await lab.socketAddress(of: address)
            // Closed with "hello" unread, the kernel may answer with a reset: closed either way.
            let answer = try await withTimeout(60) {
                do {
                    return try await TestClient.exchange(socket, send: ByteBuffer(string: "hello"), halfClose: false)
                } catch let error as IOError where error.errnoCode == ECONNRESET {
                    return ByteBuffer()
                }
            }
            #expect(answer.readableBytes == 0)
        }
        await lab.stop()
    }

    @Test func tableChangesRebindListeners() async throws {
        let lab = try await Lab.start()
        let echo = try await TestServer.echo()
        let app = try await TestServer.http(name: "app")
        let first = ListenAddress(host: "127.0.0.5", port: 0)
        let second = ListenAddress(host: "127.0.0.6", port: 0)
        var table = RoutingTable()
        try table.addExclusive(lab.route(echo), on: first)
        await lab.gateway.apply(table)
        #expect(await lab.gateway.listening == [first])
        let firstSocket = try await lab.socketAddress(of: first)
        let echoed = try await withTimeout(60) { try await TestClient.exchange(firstSocket, send: ByteBuffer(string: "one")) }
        #expect(String(buffer: echoed) == "one")

        // Move the service: the first listener goes, the second comes, as a host-routed port.
        table.removeExclusive(on: first)
        try table.addHost("a.example", route: lab.route(app), on: second)
        await lab.gateway.apply(table)
        #expect(await lab.gateway.listening == [second])
        await #expect(throws: (any Error).self) { _ = try await TestClient.connect(firstSocket) }
        let secondSocket = try await lab.socketAddress(of: second)
        let answer = try await withTimeout(60) { try await TestClient.http(secondSocket, host: "a.example") }
        #expect(answer.status == 200)

        // A binding that can't be bound is reported and the rest still applies.
        let blocker = try await TestServer.echo()
        let taken = ListenAddress(host: "127.0.0.1", port: blocker.port)
        try table.addExclusive(lab.route(echo, run: "other"), on: taken)
        let failures = await lab.gateway.apply(table)
        #expect(failures.count == 1)
        #expect(await lab.gateway.listening == [second])
        await blocker.close()
        await echo.close()
        await app.close()
        await lab.stop()
    }

    @Test func restartedGatewayServesTheSameTable() async throws {
        let echo = try await TestServer.echo()
        let lab = try await Lab.start()
        var table = RoutingTable()
        // A fixed port, as after a real restart: take one the kernel picks, then reuse it.
        let probe = ListenAddress(host: "127.0.0.7", port: 0)
        try table.addExclusive(lab.route(echo), on: probe)
        await lab.gateway.apply(table)
        let port = try #require(try await lab.socketAddress(of: probe).port)
        await lab.gateway.shutdown()
        let fixed = ListenAddress(host: "127.0.0.7", port: port)
        var restartedTable = RoutingTable()
        try restartedTable.addExclusive(lab.route(echo), on: fixed)
        let restarted = try await Lab.start()
        let runnerAddress = try #require(lab.runner.localAddress)
        let gateway = GatewayIngress(
            group: MultiThreadedEventLoopGroup.singleton,
            connector: LoopbackTunnelConnector { _ in runnerAddress }
        )
        #expect(await gateway.apply(restartedTable).isEmpty)
        let socket = try #require(await gateway.localAddress(of: fixed))
        let echoed = try await withTimeout(60) { try await TestClient.exchange(socket, send: ByteBuffer(string: "back")) }
        #expect(String(buffer: echoed) == "back")
        await gateway.shutdown()
        await restarted.stop()
        await echo.close()
        await lab.stop()
    }

    @Test func idleConnectionsAreClosed() async throws {
        var configuration = ProxyConfiguration()
        configuration.idleTimeout = .milliseconds(200)
        let lab = try await Lab.start(configuration: configuration)
        let echo = try await TestServer.echo()
        let app = try await TestServer.http(name: "app")
        let tcp = ListenAddress(host: "127.0.0.8", port: 0)
        let http = ListenAddress(host: "127.0.0.9", port: 0)
        var table = RoutingTable()
        try table.addExclusive(lab.route(echo), on: tcp)
        try table.addHost("a.example", route: lab.route(app), on: http)
        await lab.gateway.apply(table)
        for listen in [tcp, http] {
            let socket = try await lab.socketAddress(of: listen)
            // Sends nothing and never half-closes: only the idle timeout can end this.
            let received = try await withTimeout(60) {
                try await TestClient.exchange(socket, send: ByteBuffer(), halfClose: false)
            }
            #expect(received.readableBytes == 0)
        }
        await echo.close()
        await app.close()
        await lab.stop()
    }

    @Test func aThousandConcurrentConnections() async throws {
        // Client, gateway, tunnel and app ends of 1,000 connections live in this one process: more
        // descriptors than the soft limit many machines start with (1,024), as a node would raise it.
        let limit = try #require(OpenFileLimit.raise(toAtLeast: 8192))
        try #require(limit >= 5000, "this test needs ~4,000 open files; the limit here is \(limit) (ulimit -Hn; root may raise it)")
        let lab = try await Lab.start()
        let echo = try await TestServer.echo()
        let app = try await TestServer.http(name: "app")
        let tcp = ListenAddress(host: "127.0.0.10", port: 0)
        let http = ListenAddress(host: "127.0.0.11", port: 0)
        var table = RoutingTable()
        try table.addExclusive(lab.route(echo), on: tcp)
        try table.addHost("a.example", route: lab.route(app), on: http)
        await lab.gateway.apply(table)
        let tcpSocket = try await lab.socketAddress(of: tcp)
        let httpSocket = try await lab.socketAddress(of: http)
        let count = 1000
        let ok = try await withTimeout(300) {
            await withTaskGroup(of: String?.self) { group in
                for i in 0..<count {
                    group.addTask {
                        do {
                            if i.isMultiple(of: 2) {
                                let text = "connection \(i)"
                                let back = try await TestClient.exchange(tcpSocket, send: ByteBuffer(string: text))
                                return String(buffer: back) == text ? nil : "tcp: wrong echo"
                            } else {
                                let status = try await TestClient.http(httpSocket, host: "a.example").status
                                return status == 200 ? nil : "http: status \(status)"
                            }
                        } catch {
                            return "\(i.isMultiple(of: 2) ? "tcp" : "http"): \(error)"
                        }
                    }
                }
                var ok = 0
                var failures: [String: Int] = [:]
                for await failure in group {
                    if let failure { failures[failure, default: 0] += 1 } else { ok += 1 }
                }
                if !failures.isEmpty { print("failures: \(failures)") }
                return ok
            }
        }
        #expect(ok == count)
        await echo.close()
        await app.close()
        await lab.stop()
    }

    /// An upstream ready before NIO has registered the accepted client must still get the client's
    /// first bytes (the splice used to take the not yet active client for closed and reset it).
    @Test func anUpstreamReadyAtOnceGetsTheClientsFirstBytes() async throws {
        let echo = try await TestServer.echo()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let connector = try await PreconnectedConnector.make(to: echo, on: loop, count: 3)
        let gateway = GatewayIngress(group: loop, connector: connector)
        let listen = ListenAddress(host: "127.0.0.2", port: 0)
        var table = RoutingTable()
        try table.addExclusive(Route(runID: "r", upstream: "preconnected", appPort: echo.port), on: listen)
        #expect(await gateway.apply(table).isEmpty)
        let socket = try #require(await gateway.localAddress(of: listen))
        for i in 0..<3 {
            let back = try await withTimeout(60) { try await TestClient.exchange(socket, send: ByteBuffer(string: "early \(i)")) }
            #expect(String(buffer: back) == "early \(i)")
        }
        await gateway.shutdown()
        await echo.close()
    }

    @Test func aStalledClientHoldsTheAppBack() async throws {
        let lab = try await Lab.start()
        let firehose = FirehoseCounter()
        let app = try await TestServer.start { channel in
            try channel.pipeline.syncOperations.addHandler(FirehoseHandler(counter: firehose))
        }
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addExclusive(lab.route(app), on: listen)
        await lab.gateway.apply(table)
        let socket = try await lab.socketAddress(of: listen)
        // A client that connects, sends one byte and then never reads.
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: false)
            .channelOption(.socketOption(.so_rcvbuf), value: 64 * 1024)
            .connect(to: socket).get()
        try await channel.writeAndFlush(ByteBuffer(string: "go"))
        // Give the app time to fill every buffer on the way; it must then be stopped.
        var last = -1
        for _ in 0..<50 {
            try await Task.sleep(for: .milliseconds(100))
            let now = firehose.written
            if now == last && now > 0 { break }
            last = now
        }
        let written = firehose.written
        #expect(written > 0)
        // Kernel socket buffers on four hops plus one read per splice half: far below this.
        #expect(written < 64 * 1024 * 1024, "the app wrote \(written) bytes into a stalled client")
        try await channel.close()
        await app.close()
        await lab.stop()
    }
}

final class BannerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: "220 banner\r\n"))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

final class FirehoseCounter: Sendable {
    private let box = NIOLockedCounter()
    var written: Int { self.box.value }
    func add(_ n: Int) { self.box.add(n) }
}

/// Writes as fast as its channel lets it, counting bytes handed to the socket.
final class FirehoseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let counter: FirehoseCounter
    private var started = false

    init(counter: FirehoseCounter) { self.counter = counter }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.started else { return }
        self.started = true
        self.pump(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if self.started { self.pump(context: context) }
    }

    private func pump(context: ChannelHandlerContext) {
        // Bounded: at most 256 MiB in all, and only while the channel is writable.
        while context.channel.isWritable, self.counter.written < 256 * 1024 * 1024 {
            let chunk = Payload.chunk(0)
            self.counter.add(chunk.readableBytes)
            context.writeAndFlush(self.wrapOutboundOut(chunk), promise: nil)
        }
    }
}
