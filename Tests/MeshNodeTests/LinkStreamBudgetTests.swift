import Foundation
@testable import Link
import LinkTestSupport
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Proxy
import Testing

/// More public connections to one runner than the old link stream limit (1,024) are open at once
/// through one real link: a gateway (`GatewayIngress`) whose connector opens a stream per
/// connection on a Noise link, and a runner end that dials its app for each stream as
/// `StreamRouter` does.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct LinkStreamBudgetTests {
    static let connections = 1_500
    /// Connections opened at once; the next wave starts when a wave has its echoes.
    static let wave = 100

    /// A loaded machine (this one runs several builds) must not make the link's keepalive close it.
    static var linkConfiguration: LinkConfiguration {
        var configuration = LinkConfiguration()
        configuration.answerTimeout = .seconds(60)
        configuration.handshakeTimeout = .seconds(30)
        return configuration
    }

    /// What is tested is how many streams one link holds, not how fast they open: the gateway's
    /// wait for the runner to accept a stream (10 s by default) and the runner's dial of its app
    /// (5 s) are set beyond the suite's time limit. With the defaults, a wave of 100 streams
    /// opened while other suites load the machine and the shared event loops could take longer,
    /// and the gateway closed those connections before their echo.
    static var proxyConfiguration: ProxyConfiguration {
        var configuration = ProxyConfiguration()
        configuration.upstreamConnectTimeout = .minutes(10)
        return configuration
    }
    static let appDialer = AppDialer(connectTimeout: .minutes(10))

    /// The gateway's way to the runner over one given link (what `LinkConnector` does with a pool).
    struct OneLinkConnector: UpstreamConnector {
        let link: Link

        func connect(
            to route: Route, clientAddress: SocketAddress?, serverAddress: SocketAddress?, on eventLoop: any EventLoop,
            initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
        ) -> EventLoopFuture<any Channel> {
            let promise = eventLoop.makePromise(of: (any Channel).self)
            let link = self.link
            promise.completeWithTask {
                do {
                    return try await link.openStream(headers: [("warren-app-port", String(route.appPort))], initializer: initializer).channel
                } catch {
                    throw ProxyError.upstreamNotConnected(route)
                }
            }
            return promise.futureResult
        }
    }

    /// Echoes what it reads.
    final class Echo: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.writeAndFlush(data, promise: nil) }
    }

    /// Completes its promise once, whoever is first (the connection's handler or a failed connect).
    final class Outcome: Sendable {
        let promise: EventLoopPromise<Void>
        private let completed = NIOLockedValueBox(false)
        init(_ promise: EventLoopPromise<Void>) { self.promise = promise }
        func finish(_ ok: Bool) {
            guard self.completed.withLockedValue({ done in defer { done = true }; return !done }) else { return }
            if ok { self.promise.succeed() } else { self.promise.fail(ChannelError.eof) }
        }
    }

    /// Reads until `expected` came back, then finishes `outcome` and keeps the connection open.
    final class Expect: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let expected: String
        let outcome: Outcome
        /// Counts connections the gateway closed before their echo came.
        let closedEarly: NIOLockedValueBox<Int>
        var received = ""
        var echoed = false
        init(expected: String, outcome: Outcome, closedEarly: NIOLockedValueBox<Int>) {
            self.expected = expected
            self.outcome = outcome
            self.closedEarly = closedEarly
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.received += String(buffer: self.unwrapInboundIn(data))
            if self.received == self.expected {
                self.echoed = true
                self.outcome.finish(true)
            }
        }
        func handlerRemoved(context: ChannelHandlerContext) {
            if !self.echoed { self.closedEarly.withLockedValue { $0 += 1 } }
            self.outcome.finish(false)
        }
    }

    /// The runner's end of the link: each stream is a connection to its app, as in `StreamRouter`.
    static let runnerAcceptsStreams: LinkStreamAcceptor = { headers, stream in
        guard let port = headers.first(where: { $0.0 == "warren-app-port" }).flatMap({ Int($0.1) }),
              let app = try? await appDialer.dial(appPort: port, for: stream.channel).get() else { return 502 }
        Splice.attach(stream.channel, app)
        return 200
    }

    /// As a mesh forms: the runner dials its gateway, and the gateway opens its streams on the
    /// link it accepted.
    @Test func moreThan1024ConnectionsToOneRunnerAreOpenAtOnceOverOneLink() async throws {
        let gatewayEnd = try await LinkPair.make(configuration: Self.linkConfiguration)
        let runnerEnd = LinkEndpoint(identity: gatewayEnd.clientIdentity, meshID: "mesh-a", configuration: Self.linkConfiguration,
                                     acceptStream: Self.runnerAcceptsStreams)
        var events = gatewayEnd.server.events.makeAsyncIterator()
        _ = try await runnerEnd.dial(host: "127.0.0.1", port: gatewayEnd.port, expecting: gatewayEnd.serverIdentity.id)
        guard case .up(let link) = await events.next() else {
            Issue.record("the gateway never saw the runner's link")
            return
        }
        try await Self.holdConnections(over: link)
        await runnerEnd.shutdown()
        await gatewayEnd.shutdown()
    }

    /// The gateway dialled the runner: its streams travel in the session nested in the link's
    /// reverse stream. A burst of ~1,500 new streams there overflowed the runner's stack (NIOHTTP2's
    /// `deliverPendingReads` re-entered from each new nested stream's first `read()`) until the
    /// reverse stream deferred such reads (`ReadReentryGuard`).
    @Test
    func moreThan1024ConnectionsOverALinkTheGatewayDialled() async throws {
        let pair = try await LinkPair.make(configuration: Self.linkConfiguration, acceptStream: Self.runnerAcceptsStreams)
        let link = try await pair.client.dial(host: "127.0.0.1", port: pair.port, expecting: pair.serverIdentity.id)
        try await Self.holdConnections(over: link)
        await pair.shutdown()
    }

    /// Opens `connections` client connections to a gateway whose exclusive port goes over `link`
    /// to an echo app; each sends a line and must get it back while all the others stay open.
    static func holdConnections(over link: Link) async throws {
        // Four descriptors per connection in this process: client, gateway, runner's app dial, app.
        let limit = OpenFileLimit.raise(toAtLeast: 65_536) ?? 0
        try #require(limit >= UInt64(Self.connections * 4 + 1_000), "the open-file limit (\(limit)) is too low for this test")
        let group = MultiThreadedEventLoopGroup.singleton

        let app = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Echo()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        let gateway = GatewayIngress(group: group, connector: OneLinkConnector(link: link), configuration: Self.proxyConfiguration)
        let listen = ListenAddress(host: "127.0.0.1", port: 0)
        var table = RoutingTable()
        try table.addExclusive(Route(runID: "budget", upstream: "runner", appPort: app.localAddress!.port!), on: listen)
        #expect(await gateway.apply(table).isEmpty)
        let address = try #require(await gateway.localAddress(of: listen))

        // Every connection sends its line and gets it back while all the earlier ones are still
        // open (each holds its own stream on the one link); they connect in waves, as a burst of
        // 1,500 connects overflows the listen backlog and times out on a loaded machine.
        let clients = NIOLockedValueBox<[any Channel]>([])
        let subnet = Int.random(in: 100...250)
        let firstError = NIOLockedValueBox<String?>(nil)
        let closedEarly = NIOLockedValueBox(0)
        var echoed = 0
        for start in stride(from: 0, to: Self.connections, by: Self.wave) {
            echoed += try await withThrowingTaskGroup(of: Bool.self) { tasks in
                for i in start..<min(start + Self.wave, Self.connections) {
                    tasks.addTask {
                        let line = "connection \(i)\n"
                        let outcome = Outcome(group.next().makePromise(of: Void.self))
                        // Sources on many addresses: the gateway's per-client cap (1,024) is not what is tested.
                        let source = try SocketAddress(ipAddress: "127.\(subnet).\(i / 200 + 1).\(i % 200 + 10)", port: 0)
                        let connected: (any Channel)?
                        do {
                            connected = try await ClientBootstrap(group: group)
                                .connectTimeout(.seconds(60))
                                .bind(to: source)
                                .channelInitializer { channel in
                                    channel.eventLoop.makeCompletedFuture {
                                        try channel.pipeline.syncOperations.addHandler(Expect(expected: line, outcome: outcome, closedEarly: closedEarly))
                                    }
                                }
                                .connect(to: address).get()
                        } catch {
                            firstError.withLockedValue { $0 = $0 ?? "connecting from \(source): \(error)" }
                            connected = nil
                        }
                        guard let channel = connected else {
                            outcome.finish(false)
                            return false
                        }
                        clients.withLockedValue { $0.append(channel) }
                        try await channel.writeAndFlush(ByteBuffer(string: line))
                        return (try? await outcome.promise.futureResult.get()) != nil
                    }
                }
                var count = 0
                for try await ok in tasks where ok { count += 1 }
                return count
            }
        }
        let open = clients.withLockedValue { $0.filter(\.isActive).count }
        #expect(echoed == Self.connections, """
            \(echoed) of \(Self.connections) connections got their echo; \(closedEarly.withLockedValue { $0 }) closed before it; \
            first connect error: \(firstError.withLockedValue { $0 ?? "none" })
            """)
        #expect(open == Self.connections, "\(open) of \(Self.connections) connections were still open after all echoes")

        for channel in clients.withLockedValue({ $0 }) { try? await channel.close() }
        await gateway.shutdown()
        try? await app.close()
    }
}
