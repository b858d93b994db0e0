internal import Logging
internal import NIOCore

/// Notices a link whose peer went silent after the handshake (a half-open TCP connection, a
/// machine that vanished behind NAT): when nothing arrived for an interval it sends an HTTP/2
/// PING, which any live peer answers; after `missedIntervals` silent intervals it closes the link.
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
    private let logger: Logger
    private var heard = true
    private var silentIntervals = 0
    private var timer: RepeatedTask?

    init(interval: TimeAmount, missedIntervals: Int = 3, logger: Logger) {
        self.interval = interval
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
        timer?.cancel()
        timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        heard = true
        context.fireChannelRead(data)
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
            timer?.cancel()
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: Self.pingFrame)), promise: nil)
    }
}

@available(*, unavailable)
extension LinkKeepaliveHandler: Sendable {}
