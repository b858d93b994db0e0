// Starts the upstream of an exclusive binding once its accepted connection is active.

import NIOCore

/// Connects an accepted client to its route's upstream on `channelActive`, then leaves the pipeline.
///
/// Not from the child channel initializer: NIO registers an accepted channel (and makes it active)
/// in a later task, after a hop through the listener's event loop. On a busy machine the upstream
/// handshake can finish first; the splice would then find its client inactive, take it for closed
/// and tear both sides down, and closing the socket with the client's first bytes unread makes the
/// kernel answer the client with a reset.
final class UpstreamStartHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let ingress: IngressContext
    private let route: Route

    init(ingress: IngressContext, route: Route) {
        self.ingress = ingress
        self.route = route
    }

    func channelActive(context: ChannelHandlerContext) {
        self.ingress.spliceToUpstream(context.channel, route: self.route)
        context.fireChannelActive()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

@available(*, unavailable)
extension UpstreamStartHandler: Sendable {}
