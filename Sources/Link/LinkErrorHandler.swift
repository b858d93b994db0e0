internal import Logging
internal import NIOCore

/// The last handler of a link's pipeline: any error that reaches it (a record that fails
/// authentication, an HTTP/2 protocol error, a reset connection) closes this one link, logged at
/// debug.
final class LinkErrorHandler: ChannelInboundHandler {
    typealias InboundIn = Any

    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("closing link after error", metadata: [
            "link.remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(error)",
        ])
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension LinkErrorHandler: Sendable {}
