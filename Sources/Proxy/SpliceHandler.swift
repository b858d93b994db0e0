// Byte splicing between two channels with backpressure and half-close.

public import NIOCore

/// Events that the two halves of a splice send each other through their pipelines.
enum SpliceEvent: Sendable {
    /// Start forwarding to this channel (sent to a handler created without a partner).
    case attach(any Channel)
    /// The partner's output has room again: resume reading if a read was held back.
    case partnerWritable
    /// The partner's input ended: half-close our output.
    case partnerInputClosed
    /// The partner closed for good (reset, error, timeout): deliver what is queued, then close.
    case partnerClosed
}

/// One half of a splice: forwards every `ByteBuffer` read on its channel to its partner channel.
///
/// Reads are held back while the partner is not writable, so at most one read's worth of data is
/// in flight per direction (no unbounded buffering). A half-close on one side becomes a half-close
/// of the other side's output; the channel closes once both directions are done. The partner may
/// live on another event loop: only thread-safe `Channel` calls cross over.
///
/// Created without a partner, the handler keeps the first bytes it reads and then holds reads until
/// `SpliceEvent.attach` arrives (used while the upstream is being connected).
final class SpliceHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: (any Channel)?
    private var held: [ByteBuffer] = []
    private var heldBytes = 0
    private var heldInputClosed = false
    private var readPending = false
    private var inputClosed = false
    private var outputClosed = false
    /// Our output is shut (or being shut) after everything before it was written.
    private var outputShut = false

    init(partner: (any Channel)?) {
        self.partner = partner
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        if let partner = self.partner {
            partner.write(buffer, promise: nil)
        } else {
            self.held.append(buffer)
            self.heldBytes += buffer.readableBytes
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        let mayRead: Bool
        if let partner = self.partner {
            mayRead = partner.isWritable
        } else {
            // Before attach, read until something is held (handshakes below us must still run).
            mayRead = self.held.isEmpty && !self.heldInputClosed
        }
        if mayRead {
            context.read()
        } else {
            self.readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let partner = self.partner {
            partner.pipeline.fireUserInboundEventTriggered(SpliceEvent.partnerWritable)
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let event as SpliceEvent:
            self.handle(event, context: context)
        case ChannelEvent.inputClosed:
            self.inputClosed = true
            if let partner = self.partner {
                partner.pipeline.fireUserInboundEventTriggered(SpliceEvent.partnerInputClosed)
                if self.outputShut { context.close(promise: nil) }
            } else {
                self.heldInputClosed = true
            }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // After an orderly end of both directions the partner finishes on its own (it may still
        // be flushing); any other close (reset, error, idle timeout) ends the whole splice.
        if !(self.inputClosed && self.outputShut) {
            self.partner?.pipeline.fireUserInboundEventTriggered(SpliceEvent.partnerClosed)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func handle(_ event: SpliceEvent, context: ChannelHandlerContext) {
        switch event {
        case .attach(let partner):
            self.partner = partner
            for buffer in self.held { partner.write(buffer, promise: nil) }
            if !self.held.isEmpty { partner.flush() }
            self.held = []
            self.heldBytes = 0
            if !context.channel.isActive {
                partner.pipeline.fireUserInboundEventTriggered(SpliceEvent.partnerClosed)
            } else if self.heldInputClosed {
                self.heldInputClosed = false
                partner.pipeline.fireUserInboundEventTriggered(SpliceEvent.partnerInputClosed)
            } else if self.readPending {
                self.readPending = false
                context.read()
            }
        case .partnerWritable:
            if self.readPending, let partner = self.partner, partner.isWritable {
                self.readPending = false
                context.read()
            }
        case .partnerClosed:
            // What the partner sent before it went is delivered first (a bounded wait: a client
            // that never reads is closed by its idle timeout).
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer())).whenComplete { _ in
                channel.close(promise: nil)
            }
        case .partnerInputClosed:
            guard !self.outputClosed else { return }
            self.outputClosed = true
            // Shut our output only once everything forwarded before is written: an empty write
            // completes after the writes queued ahead of it. (A socket whose input is already
            // shut escalates an output close to a full close, which would drop pending writes.)
            let channel = context.channel
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer())).whenComplete { _ in
                let handler = loopBound.value
                handler.outputShut = true
                if handler.inputClosed {
                    channel.close(promise: nil)
                } else {
                    channel.close(mode: .output, promise: nil)
                }
            }
        }
    }
}

@available(*, unavailable)
extension SpliceHandler: Sendable {}

/// Connecting the two halves of a splice.
public enum Splice {
    /// Starts forwarding between `a` and `b`, both carrying a `SpliceHandler` created without a
    /// partner (see `holdingHandler()`).
    public static func attach(_ a: any Channel, _ b: any Channel) {
        a.pipeline.fireUserInboundEventTriggered(SpliceEvent.attach(b))
        b.pipeline.fireUserInboundEventTriggered(SpliceEvent.attach(a))
    }

    /// A splice half that holds what its channel reads until `attach`.
    public static func holdingHandler() -> any ChannelHandler {
        SpliceHandler(partner: nil)
    }

    /// Turns the HTTP connection of `context` into a holding splice half, after a 101: the
    /// handler of `context` and `handlers` (the encoder, a timer) leave, a `SpliceHandler` takes
    /// their place, then `decoder` leaves. The future completes once it has: a decoder hands over
    /// the bytes it read past the last message only as it leaves, in a later event-loop tick.
    static func replaceHTTP(
        _ context: ChannelHandlerContext, removing handlers: [any RemovableChannelHandler], decoder: any RemovableChannelHandler
    ) throws -> EventLoopFuture<Void> {
        let sync = context.channel.pipeline.syncOperations
        sync.removeHandler(context: context, promise: nil)
        try sync.addHandler(SpliceHandler(partner: nil))
        for handler in handlers { sync.removeHandler(handler, promise: nil) }
        let decoderRemoved = context.eventLoop.makePromise(of: Void.self)
        sync.removeHandler(decoder, promise: decoderRemoved)
        return decoderRemoved.futureResult
    }
}
