internal import Logging
internal import NIOCore

/// Runs the link handshake on a fresh TCP connection, then hands the channel over: `onComplete`
/// installs the record cipher and HTTP/2 behind it, and any bytes that arrived after the last
/// handshake message are passed on to them. Errors close the connection; `LinkHandshakeDeadline`
/// decides when the handshake has taken too long, and this handler sets its timers and closes.
final class LinkHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// More buffered handshake input than this is not a warren peer.
    static let maxBuffered = 4096

    private var machine: LinkHandshake
    private var deadline: LinkHandshakeDeadline
    private let logger: Logger
    private let onComplete: (ChannelHandlerContext, LinkHandshakeResult) throws -> Void
    private let onFailure: (any Error) -> Void
    private var buffer: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var started = false
    private var finished = false

    init(
        machine: LinkHandshake, timeout: TimeAmount, logger: Logger,
        onComplete: @escaping (ChannelHandlerContext, LinkHandshakeResult) throws -> Void,
        onFailure: @escaping (any Error) -> Void
    ) {
        self.machine = machine
        self.deadline = LinkHandshakeDeadline(timeout: timeout)
        self.logger = logger
        self.onComplete = onComplete
        self.onFailure = onFailure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { begin(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        begin(context: context)
        context.fireChannelActive()
    }

    private func begin(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        execute(deadline.started(now: context.eventLoop.now), context: context)
        do {
            try perform(try machine.start(), context: context)
        } catch {
            fail(context: context, error: error)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else { return }
        var input = unwrapInboundIn(data)
        if buffer == nil {
            buffer = input
        } else {
            buffer!.writeBuffer(&input)
        }
        guard buffer!.readableBytes <= Self.maxBuffered else {
            fail(context: context, error: LinkError.badHandshakeFrame(length: buffer!.readableBytes))
            return
        }
        do {
            try perform(try machine.receive(&buffer!), context: context)
        } catch {
            fail(context: context, error: error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(context: context, error: LinkError.closed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, error: error)
    }

    private func perform(_ actions: [LinkHandshake.Action], context: ChannelHandlerContext) throws {
        for action in actions {
            switch action {
            case .send(let bytes):
                context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
            case .complete(let result):
                // If installing the link fails, `fail` still closes the connection.
                try onComplete(context, result)
                finished = true
                execute(deadline.ended(), context: context)
                let leftover = buffer
                buffer = nil
                if let leftover, leftover.readableBytes > 0 {
                    context.fireChannelRead(wrapInboundOut(leftover))
                    context.fireChannelReadComplete()
                }
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            }
        }
    }

    /// Carries out what the deadline decided.
    private func execute(_ action: LinkHandshakeDeadline.Action, context: ChannelHandlerContext) {
        switch action {
        case .wakeUp(let at):
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(deadline: at) {
                let (handler, context) = loopBound.value
                handler.execute(handler.deadline.timerFired(now: context.eventLoop.now), context: context)
            }
        case .close(let error):
            fail(context: context, error: error)
        case .cancelTimer:
            timer?.cancel()
            timer = nil
        case .none:
            break
        }
    }

    private func fail(context: ChannelHandlerContext, error: any Error) {
        guard !finished else { return }
        finished = true
        execute(deadline.ended(), context: context)
        buffer = nil
        logger.debug("link handshake failed", metadata: [
            "link.remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(error)",
        ])
        onFailure(error)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension LinkHandshakeHandler: Sendable {}
