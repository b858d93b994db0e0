internal import Gossip
internal import Logging
internal import NIOCore
internal import NIOHPACK
internal import NIOHTTP2

/// The first handler of every stream channel: it runs the request/answer exchange that opens a
/// stream, then maps HTTP/2 DATA frames to plain `ByteBuffer`s both ways.
///
/// After the stream is open: inbound DATA → `ByteBuffer` reads; an inbound END_STREAM →
/// `ChannelEvent.inputClosed` (the stream stays open for writing); outbound `ByteBuffer` → DATA;
/// `close(mode: .output)` → an empty DATA frame with END_STREAM. When both directions have ended,
/// HTTP/2 closes the stream channel.
final class LinkStreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// Data a peer may send on a stream before it is answered (a well-behaved peer sends none);
    /// with 1024 concurrent streams this bounds what one link can make a node buffer to 64 MiB.
    static let maxEarlyData = 64 << 10

    enum Role {
        /// This side opened the stream: send `headers`, await the answer.
        case opener(headers: [(String, String)], answered: EventLoopPromise<Void>)
        /// The peer opened the stream on the link whose channel is `link`: ask `decide` for the status.
        case acceptor(decide: @Sendable ([(String, String)], LinkStream) async -> Int, peer: NodeID, link: any Channel)
    }

    private enum State {
        case awaitingAnswer(EventLoopPromise<Void>)
        case awaitingRequest
        case deciding
        case open
        case done
    }

    private let role: Role
    private let logger: Logger
    private var state: State
    private var early: [ByteBuffer] = []
    private var earlyBytes = 0
    private var earlyInputClosed = false
    private var heldWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var outputClosed = false
    private var outputClosePending: EventLoopPromise<Void>?? = nil

    init(role: Role, logger: Logger) {
        self.role = role
        self.logger = logger
        switch role {
        case .opener(_, let answered): state = .awaitingAnswer(answered)
        case .acceptor: state = .awaitingRequest
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard case .opener(let headers, _) = role else { return }
        let fields = HPACKHeaders(headers)
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: fields, endStream: false))), promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if case .awaitingAnswer(let promise) = state { promise.fail(LinkError.closed) }
        state = .done
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .awaitingAnswer(let promise) = state { promise.fail(LinkError.closed) }
        for (_, promise) in heldWrites { promise?.fail(LinkError.closed) }
        heldWrites = []
        state = .done
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        switch (state, payload) {
        case (.open, .data(let data)):
            if case .byteBuffer(let buffer) = data.data, buffer.readableBytes > 0 {
                context.fireChannelRead(wrapInboundOut(buffer))
            }
            if data.endStream { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        case (.open, .headers(let headers)):
            // Trailers: only their END_STREAM matters.
            if headers.endStream { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }

        case (.awaitingAnswer(let promise), .headers(let headers)):
            guard let statusText = headers.headers.first(name: ":status"), let status = Int(statusText) else {
                refuse(context: context, promise: promise, error: LinkError.badStreamResponse)
                return
            }
            if (100..<200).contains(status) { return }  // informational: the answer is still to come
            guard (200..<300).contains(status) else {
                refuse(context: context, promise: promise, error: LinkError.streamRefused(status: status))
                return
            }
            state = .open
            flushHeldWrites(context: context)
            context.fireUserInboundEventTriggered(LinkStreamOpened())
            promise.succeed(())
            if headers.endStream { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }

        case (.awaitingRequest, .headers(let request)):
            guard case .acceptor(let decide, let peer, let link) = role else { return }
            state = .deciding
            if request.endStream { earlyInputClosed = true }
            let fields = request.headers.map { ($0.name, $0.value) }
            let stream = LinkStream(channel: context.channel, peer: peer, linkChannel: link)
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            Task {
                let status = await decide(fields, stream)
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.answer(context: context, status: status)
                }
            }

        case (.deciding, .data(let data)):
            if case .byteBuffer(let buffer) = data.data {
                earlyBytes += buffer.readableBytes
                early.append(buffer)
            }
            if data.endStream { earlyInputClosed = true }
            if earlyBytes > Self.maxEarlyData {
                logger.debug("link stream sent too much data before its answer; resetting it")
                state = .done
                context.close(promise: nil)
            }
        case (.deciding, .headers(let headers)):
            if headers.endStream { earlyInputClosed = true }

        case (.awaitingAnswer(let promise), _):
            refuse(context: context, promise: promise, error: LinkError.badStreamResponse)
        case (.awaitingRequest, _):
            logger.debug("link stream began without request headers; resetting it")
            state = .done
            context.close(promise: nil)
        default:
            break
        }
    }

    private func refuse(context: ChannelHandlerContext, promise: EventLoopPromise<Void>, error: LinkError) {
        state = .done
        promise.fail(error)
        context.close(promise: nil)
    }

    /// Sends the acceptor's answer; on success releases what was held back in both directions.
    private func answer(context: ChannelHandlerContext, status: Int) {
        guard case .deciding = state else { return }
        let accepted = (200..<300).contains(status)
        let fields = HPACKHeaders([(":status", String(status))])
        context.write(wrapOutboundOut(.headers(.init(headers: fields, endStream: !accepted))), promise: nil)
        guard accepted else {
            state = .done
            context.flush()
            early = []
            for (_, promise) in heldWrites { promise?.fail(LinkError.streamRefused(status: status)) }
            heldWrites = []
            return
        }
        state = .open
        flushHeldWrites(context: context)
        context.fireUserInboundEventTriggered(LinkStreamOpened())
        let held = early
        early = []
        for buffer in held where buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
        if !held.isEmpty { context.fireChannelReadComplete() }
        if earlyInputClosed { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
    }

    /// Sends what was written before the stream opened, and a close of the output requested then.
    private func flushHeldWrites(context: ChannelHandlerContext) {
        let writes = heldWrites
        heldWrites = []
        for (buffer, promise) in writes {
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(buffer)))), promise: promise)
        }
        context.flush()
        if let promise = outputClosePending {
            outputClosePending = nil
            closeOutput(context: context, promise: promise)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        // No empty DATA frames: NIOHTTP2 closes a connection whose peer sends two in a row without
        // END_STREAM (a flood guard), and concurrent streams' empty writes would trip it.
        guard buffer.readableBytes > 0 else {
            promise?.succeed(())
            return
        }
        switch state {
        case .open:
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(buffer)))), promise: promise)
        case .deciding, .awaitingRequest, .awaitingAnswer:
            heldWrites.append((buffer, promise))
        case .done:
            promise?.fail(LinkError.closed)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .output else {
            context.close(mode: mode, promise: promise)
            return
        }
        switch state {
        case .open:
            closeOutput(context: context, promise: promise)
        case .awaitingAnswer, .awaitingRequest, .deciding:
            // Sent after the held writes once the stream opens.
            outputClosePending = .some(promise)
        case .done:
            promise?.fail(LinkError.closed)
        }
    }

    private func closeOutput(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        guard !outputClosed else {
            promise?.succeed(())
            return
        }
        outputClosed = true
        context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))), promise: promise)
    }
}

@available(*, unavailable)
extension LinkStreamHandler: Sendable {}

/// The user inbound event a stream's handlers receive when the stream has opened (the answer was
/// 2xx). Bytes written before it are held in memory until then; a writer that produces a lot
/// should start on this event.
public struct LinkStreamOpened: Sendable, Equatable {
    public init() {}
}
