// Bounds how long a client may take to send an HTTP request head.

import NIOCore

/// Sits before the HTTP request decoder and reports `Expired` (which `HTTPProxyHandler` answers
/// with `408`) when a request head has started to arrive but is not complete within `timeout`: a
/// client that sends part of a head and stalls, or sends it a byte at a time. The clock starts at
/// the first byte read while a head is awaited and is not reset by later bytes, so an idle
/// keep-alive connection is left to the idle timeout. `HTTPProxyHandler` reports the heads and
/// the ends of requests.
///
/// A head that arrived in the same read as the end of the request before it (pipelining) is not
/// timed; the idle timeout still bounds it.
final class RequestHeadTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    /// The user inbound event sent down the pipeline when a head is late.
    struct Expired: Sendable {
        let timeout: TimeAmount
    }

    private let timeout: TimeAmount
    private var awaitingHead = true
    /// When the head being read is late; nil while no head is being read.
    private var deadline: NIODeadline?
    /// At most one timer, which may be due before `deadline` (a head that came in time leaves it
    /// running): it looks at `deadline` when it fires and sets itself again if needed. Keep-alive
    /// requests then cost a clock read each, not a timer set and cancelled each.
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.awaitingHead && self.deadline == nil {
            let deadline = NIODeadline.now() + self.timeout
            self.deadline = deadline
            if self.timer == nil { self.schedule(at: deadline, context: context) }
        }
        context.fireChannelRead(data)
    }

    private func schedule(at deadline: NIODeadline, context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = bound.value
            handler.timer = nil
            guard let due = handler.deadline else { return }
            if due > .now() {
                handler.schedule(at: due, context: context)
                return
            }
            handler.deadline = nil
            context.fireUserInboundEventTriggered(Expired(timeout: handler.timeout))
        }
    }

    /// A complete request head was decoded.
    func headReceived() {
        self.awaitingHead = false
        self.deadline = nil
    }

    /// The request ended; the next byte starts the next head.
    func requestEnded() {
        self.awaitingHead = true
    }

    /// Nothing more to time (the connection answers and closes, or stops speaking HTTP).
    func cancel() {
        self.deadline = nil
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
