internal import Logging
internal import NIOCore

/// Notices a link whose peer went silent after the handshake (a half-open TCP connection, a
/// machine that vanished behind NAT): when nothing arrived for an interval it sends an HTTP/2
/// PING, which any live peer answers; after `missedIntervals` silent intervals it closes the link.
///
/// A link that is in use fails faster: when this side sent bytes and nothing came back for a
/// fifth of `answerTimeout`, it sends a PING; with still nothing after `answerTimeout`, it closes.
/// A peer that dialled again from a new address (its NAT rebound) has left this link silent, and
/// the streams waiting on it fail in seconds rather than after three keepalive intervals.
///
/// It sits between the record layer and the HTTP/2 handler and writes the PING frame as raw bytes
/// between whole frames (a PING on stream 0 carries no state; unsolicited PING ACKs are legal).
final class LinkKeepaliveHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// length 8, type PING (6), no flags, stream 0, 8 bytes of opaque data.
    static let pingFrame: [UInt8] = [0, 0, 8, 6, 0, 0, 0, 0, 0] + Array("warren!!".utf8)

    private let interval: TimeAmount
    private let missedIntervals: Int
    private let answerTimeout: TimeAmount?
    private let logger: Logger
    private var heard = true
    private var silentIntervals = 0
    private var timer: RepeatedTask?
    /// When this side first wrote after the peer's last byte; nil while nothing is unanswered.
    private var unansweredSince: NIODeadline?
    private var pingedForAnswer = false
    private var answerCheck: Scheduled<Void>?

    init(interval: TimeAmount, answerTimeout: TimeAmount? = nil, missedIntervals: Int = 3, logger: Logger) {
        self.interval = interval
        self.answerTimeout = answerTimeout
        self.missedIntervals = missedIntervals
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let (handler, context) = loopBound.value
            handler.tick(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimers()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimers()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        heard = true
        unansweredSince = nil
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        awaitAnswer(context: context)
        context.write(data, promise: promise)
    }

    private func stopTimers() {
        timer?.cancel()
        timer = nil
        answerCheck?.cancel()
        answerCheck = nil
    }

    /// Starts waiting for the peer's next byte, unless already waiting.
    private func awaitAnswer(context: ChannelHandlerContext) {
        guard let answerTimeout, unansweredSince == nil, context.channel.isActive else { return }
        let now = context.eventLoop.now
        unansweredSince = now
        pingedForAnswer = false
        if answerCheck == nil { scheduleAnswerCheck(context: context, at: now + .nanoseconds(answerTimeout.nanoseconds / 5)) }
    }

    private func scheduleAnswerCheck(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        answerCheck = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.answerCheck = nil
            handler.checkAnswer(context: context)
        }
    }

    /// One timer serves every wait: when it fires for a wait that already ended, it is re-armed
    /// for the current one, if any.
    private func checkAnswer(context: ChannelHandlerContext) {
        guard let answerTimeout, let since = unansweredSince, context.channel.isActive else { return }
        let now = context.eventLoop.now
        let probeAt = since + .nanoseconds(answerTimeout.nanoseconds / 5)
        // A backed-up connection (bulk data on a slow uplink) delays the peer's answers behind
        // this side's own bytes: no verdict while it drains; the keepalive still applies.
        if !context.channel.isWritable {
            unansweredSince = now
            pingedForAnswer = false
            scheduleAnswerCheck(context: context, at: now + .nanoseconds(answerTimeout.nanoseconds / 5))
            return
        }
        if now < probeAt {
            scheduleAnswerCheck(context: context, at: probeAt)
            return
        }
        if now >= since + answerTimeout {
            logger.debug("closing a link that left sent bytes unanswered", metadata: [
                "link.remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "link.timeout": "\(answerTimeout)",
            ])
            stopTimers()
            context.close(promise: nil)
            return
        }
        if !pingedForAnswer {
            pingedForAnswer = true
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: Self.pingFrame)), promise: nil)
        }
        scheduleAnswerCheck(context: context, at: since + answerTimeout)
    }

    private func tick(context: ChannelHandlerContext) {
        if heard {
            heard = false
            silentIntervals = 0
            return
        }
        silentIntervals += 1
        if silentIntervals >= missedIntervals {
            logger.debug("closing silent link", metadata: ["link.remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
            stopTimers()
            context.close(promise: nil)
            return
        }
        awaitAnswer(context: context)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: Self.pingFrame)), promise: nil)
    }
}

@available(*, unavailable)
extension LinkKeepaliveHandler: Sendable {}
