internal import NIOCore

/// Sits on the link's reverse stream, under the nested HTTP/2 session, and turns a `read()` that
/// arrives while the stream is delivering reads into one issued after the delivery's
/// `channelReadComplete`.
///
/// Why: an HTTP/2 stream channel delivers its pending frames in a loop, and a nested session turns
/// a HEADERS frame into a new stream channel whose activation asks its parent to read. That read
/// reaches the reverse stream while it is still inside its loop, and the stream starts delivering
/// the rest of its pending frames from inside the first one: one stack level per frame, so a burst
/// of a few thousand new streams overflowed the event loop's stack. Deferring the read costs
/// nothing: the stream delivers everything pending before `channelReadComplete`, and reads again
/// after it when auto-read is on.
final class ReadReentryGuard: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny

    private var delivering = false
    private var readDeferred = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        delivering = true
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delivering = false
        context.fireChannelReadComplete()
        if readDeferred {
            readDeferred = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if delivering {
            readDeferred = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        delivering = false
        readDeferred = false
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension ReadReentryGuard: Sendable {}
