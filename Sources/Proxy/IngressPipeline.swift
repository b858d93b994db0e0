// How a gateway sets up each accepted connection, by the kind of binding on its address.

import NIOCore
import NIOHTTP1

enum IngressPipeline {
    static func configure(_ channel: any Channel, context: IngressContext) throws {
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(IdleStateHandler(allTimeout: context.configuration.idleTimeout))
        try sync.addHandler(IdleCloseHandler())
        switch context.binding {
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
        context: IngressContext
    ) throws {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = context.configuration.maxHeaderBytes
        limits.maxHeaderFieldSize = context.configuration.maxHeaderBytes
        let decoder = ByteToMessageHandler(
            HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .drop, limitConfiguration: limits)
        )
        let encoder = HTTPResponseEncoder()
        let headTimer = RequestHeadTimeoutHandler(timeout: context.configuration.requestHeadTimeout)
        let proxy = HTTPProxyHandler(ingress: context, headTimer: headTimer, decoder: decoder, encoder: encoder)
        try channel.pipeline.syncOperations.addHandlers([headTimer, decoder, encoder, proxy], position: position)
    }
}
