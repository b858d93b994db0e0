// How a gateway sets up each accepted connection, by the kind of binding on its address.

import Logging
import NIOCore
import NIOHTTP1

enum IngressPipeline {
    static func configure(_ channel: any Channel, context: IngressContext) throws {
        let sync = channel.pipeline.syncOperations
        let client = channel.remoteAddress?.ipAddress ?? "unknown"
        guard context.limits.admitClient(client) else {
            let limit = context.configuration.maxConnectionsPerClient
            context.logger.debug("client at its connection limit", metadata: ["client.address": "\(client)", "limit": "\(limit)"])
            try sync.addHandler(RefusingHandler(answer: context.binding.flatMap { binding in
                guard case .hostRouted = binding else { return nil }
                return RefusingHandler.serviceUnavailable(
                    "too many connections from \(client) (the limit is \(limit)); retry in \(context.configuration.retryAfterSeconds) s\n",
                    retryAfter: context.configuration.retryAfterSeconds
                )
            }))
            return
        }
        let limits = context.limits
        channel.closeFuture.whenComplete { _ in limits.releaseClient(client) }
        try sync.addHandler(IdleStateHandler(allTimeout: context.configuration.idleTimeout))
        try sync.addHandler(IdleCloseHandler())
        switch context.binding {
        case .exclusive(let route) where context.configuration.exclusiveSniffWait > .zero:
            try sync.addHandler(ExclusiveSniffer(ingress: context, route: route))
        case .exclusive(let route):
            try sync.addHandler(SpliceHandler(partner: nil))
            try sync.addHandler(UpstreamStartHandler(ingress: context, route: route))
        case .hostRouted:
            try sync.addHandler(ProtocolSniffer(ingress: context))
        case nil:
            // The binding went away between accept and now.
            channel.close(promise: nil)
        }
    }

    /// The HTTP/1.1 server side: the head timeout, decoder with the header limit, encoder, and the
    /// proxy handler.
    static func addHTTPHandlers(
        to channel: any Channel,
        position: ChannelPipeline.SynchronousOperations.Position,
        context: IngressContext,
        secure: Bool = false
    ) throws {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = context.configuration.maxHeaderBytes
        limits.maxHeaderFieldSize = context.configuration.maxHeaderBytes
        let decoder = ByteToMessageHandler(
            HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .drop, limitConfiguration: limits)
        )
        let encoder = HTTPResponseEncoder()
        let headTimer = RequestHeadTimeoutHandler(timeout: context.configuration.requestHeadTimeout)
        let proxy = HTTPProxyHandler(ingress: context, headTimer: headTimer, decoder: decoder, encoder: encoder, secure: secure)
        try channel.pipeline.syncOperations.addHandlers([headTimer, decoder, encoder, proxy], position: position)
    }
}

/// Turns away a connection over a limit: TCP is closed at once; HTTP gets `answer` first.
final class RefusingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let answer: ByteBuffer?

    init(answer: ByteBuffer?) {
        self.answer = answer
    }

    /// A complete `503` response with `Retry-After` and a short text body.
    static func serviceUnavailable(_ text: String, retryAfter: Int) -> ByteBuffer {
        ProxyConnectionStateMachine.Answer(
            status: .serviceUnavailable, text: text, headers: [.init(name: "retry-after", value: "\(retryAfter)")]
        ).response()
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let answer else {
            context.close(promise: nil)
            return
        }
        // Closing with the client's request still unread makes the kernel send a reset, which can
        // destroy the answer before the client reads it: half-close after the answer, read and drop
        // what the client sends, and close fully a little later.
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(answer)).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            channel.eventLoop.scheduleTask(in: HTTPProxyHandler.lingerTime) { channel.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

@available(*, unavailable)
extension RefusingHandler: Sendable {}
