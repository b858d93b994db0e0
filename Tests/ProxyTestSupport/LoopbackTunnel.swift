// A stand-in for links: one loopback TCP connection per stream, for tests and the standalone bench.
//
// Wire, per connection: the gateway sends the app port in ASCII and "\n"; the runner dials the
// app and answers one byte, 1 (accepted) or 0 (refused); then raw bytes flow both ways.

public import NIOCore
import NIOPosix
public import Proxy

/// Gateway side: reaches each runner's `LoopbackTunnelRunner` by TCP. Not encrypted; for
/// loopback tests and benchmarks of the Proxy alone.
public struct LoopbackTunnelConnector: UpstreamConnector {
    private let runnerAddress: @Sendable (String) -> SocketAddress?
    private let upstreamGroup: (any EventLoopGroup)?

    /// - Parameters:
    ///   - runnerAddress: the tunnel listener of the runner named by `Route.upstream`, or nil when
    ///     that runner is unknown (→ `ProxyError.upstreamNotConnected`).
    ///   - upstreamGroup: where upstream connections live; nil puts each on its client's event
    ///     loop. A group of its own puts them on other threads, as a link's streams are.
    public init(runnerAddress: @escaping @Sendable (String) -> SocketAddress?, upstreamGroup: (any EventLoopGroup)? = nil) {
        self.runnerAddress = runnerAddress
        self.upstreamGroup = upstreamGroup
    }

    public func connect(
        to route: Route,
        clientAddress: SocketAddress?,
        serverAddress: SocketAddress?,
        on eventLoop: any EventLoop,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel> {
        guard let address = self.runnerAddress(route.upstream) else {
            return eventLoop.makeFailedFuture(ProxyError.upstreamNotConnected(route))
        }
        let accepted = eventLoop.makePromise(of: Void.self)
        return ClientBootstrap(group: self.upstreamGroup?.next() ?? eventLoop)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.recvAllocator, value: SpliceSocket.receiveAllocator)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        TunnelHandshakeHandler(appPort: route.appPort, accepted: accepted)
                    )
                }.flatMap { initializer(channel) }
            }
            .connect(to: address)
            .flatMapError { error in
                accepted.fail(error)
                return eventLoop.makeFailedFuture(ProxyError.upstreamNotConnected(route))
            }
            .flatMap { channel in
                accepted.futureResult.map { channel }.flatMapError { error in
                    channel.close(promise: nil)
                    switch error {
                    case TunnelHandshakeHandler.Failure.refused:
                        return eventLoop.makeFailedFuture(ProxyError.upstreamRefused(route))
                    default:
                        return eventLoop.makeFailedFuture(ProxyError.upstreamNotConnected(route))
                    }
                }
            }
    }
}

/// Gateway side of the handshake: sends the port, waits for the runner's answer byte.
final class TunnelHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Failure: Error { case refused, closed }

    private let appPort: Int
    private let accepted: EventLoopPromise<Void>
    private var done = false

    init(appPort: Int, accepted: EventLoopPromise<Void>) {
        self.appPort = appPort
        self.accepted = accepted
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: "\(self.appPort)\n")), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        guard let answer = buffer.readInteger(as: UInt8.self) else { return }
        self.done = true
        guard answer == 1 else {
            self.accepted.fail(Failure.refused)
            context.close(promise: nil)
            return
        }
        self.accepted.succeed()
        if buffer.readableBytes > 0 { context.fireChannelRead(NIOAny(buffer)) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.done { self.accepted.fail(Failure.closed) }
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension TunnelHandshakeHandler: Sendable {}

/// Runner side: accepts tunnel connections from gateways and dials the app each one names.
public final class LoopbackTunnelRunner: Sendable {
    private let channel: any Channel

    /// The address gateways connect to.
    public var localAddress: SocketAddress? { self.channel.localAddress }

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Listens on `host:port` (port 0 picks a free one).
    public static func start(
        group: any EventLoopGroup,
        host: String,
        port: Int = 0,
        dialer: AppDialer = AppDialer()
    ) async throws -> LoopbackTunnelRunner {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.recvAllocator, value: SpliceSocket.receiveAllocator)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TunnelPreambleHandler(dialer: dialer))
                }
            }
            .bind(host: host, port: port)
            .get()
        return LoopbackTunnelRunner(channel: channel)
    }

    /// Stops accepting; established tunnels continue.
    public func close() async throws {
        try await self.channel.close()
    }
}

/// Runner side of the handshake: reads the port line (at most 8 bytes), dials, answers.
final class TunnelPreambleHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let dialer: AppDialer
    private var line = ByteBuffer()

    init(dialer: AppDialer) {
        self.dialer = dialer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        self.line.writeBuffer(&buffer)
        guard let newline = self.line.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if self.line.readableBytes > 8 { context.close(promise: nil) }
            return
        }
        let text = self.line.readString(length: newline - self.line.readerIndex) ?? ""
        self.line.moveReaderIndex(forwardBy: 1)
        guard let port = Int(text), (1...65535).contains(port) else {
            context.close(promise: nil)
            return
        }
        let inbound = context.channel
        let leftover = self.line
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        self.dialer.dial(appPort: port, for: inbound).whenComplete { result in
            switch result {
            case .success(let app):
                inbound.writeAndFlush(ByteBuffer(bytes: [1]), promise: nil)
                if leftover.readableBytes > 0 { inbound.pipeline.fireChannelRead(leftover) }
                Splice.attach(inbound, app)
            case .failure:
                inbound.writeAndFlush(ByteBuffer(bytes: [0])).whenComplete { _ in inbound.close(promise: nil) }
            }
        }
    }
}

@available(*, unavailable)
extension TunnelPreambleHandler: Sendable {}
