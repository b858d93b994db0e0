// Bounds how long a client may take to send an HTTP request head.

import NIOCore

/// Sits before the HTTP request decoder of a shared port and closes the connection when a request
/// head has started to arrive but is not complete within `timeout` (a client that sends part of a
/// head and stalls). The clock starts at the first byte read while a head is awaited, so an idle
/// keep-alive connection is left to the idle timeout. `HTTPProxyHandler` reports the heads and
/// the ends of requests.
///
/// A head that arrived in the same read as the end of the request before it (pipelining) is not
/// timed; the idle timeout still bounds it.
final class RequestHeadTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let timeout: TimeAmount
    private var awaitingHead = true
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.awaitingHead && self.timer == nil {
            let channel = context.channel
            self.timer = context.eventLoop.scheduleTask(in: self.timeout) {
                channel.close(promise: nil)
            }
        }
        context.fireChannelRead(data)
    }

    /// A complete request head was decoded.
    func headReceived() {
        self.awaitingHead = false
        self.cancel()
    }

    /// The request ended; the next byte starts the next head.
    func requestEnded() {
        self.awaitingHead = true
    }

    /// Nothing more to time (the connection answers and closes, or stops speaking HTTP).
    func cancel() {
        self.timer?.cancel()
        self.timer = nil
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.cancel()
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension RequestHeadTimeoutHandler: Sendable {}
