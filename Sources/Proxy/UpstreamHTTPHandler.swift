// The upstream half of HTTP proxying: response parts back to the client's handler, with backpressure.

import NIOCore
import NIOHTTP1

/// What the upstream side tells the client side's `HTTPProxyHandler` (through `UpstreamEventSink`,
/// as the two channels may live on different event loops). `upstream`, a number the client side
/// gives each upstream connection, tells a stale upstream's late events from the current one's.
enum UpstreamHTTPEvent: Sendable {
    case response(HTTPClientResponsePart, upstream: Int)
    case readComplete(upstream: Int)
    case writable(upstream: Int)
    case closed(upstream: Int)
    /// The upstream answered 101 and now carries raw bytes through a holding `SpliceHandler`.
    case upgraded(upstream: Int)
}

/// Hands an upstream's events to the client's `HTTPProxyHandler` itself, not through the client's
/// pipeline: a request costs several events, and each would otherwise pass every handler in front
/// of the proxy handler as a boxed `Any`. Events are delivered in batches, a read's worth at a
/// time, so an upstream on another event loop costs one task on the client's loop per read.
struct UpstreamEventSink: Sendable {
    let eventLoop: any EventLoop
    /// Called on `eventLoop` only.
    let deliver: @Sendable ([UpstreamHTTPEvent]) -> Void

    func send(_ events: [UpstreamHTTPEvent]) {
        guard !events.isEmpty else { return }
        if self.eventLoop.inEventLoop {
            self.deliver(events)
        } else {
            let deliver = self.deliver
            self.eventLoop.execute { deliver(events) }
        }
    }
}

/// What the client side tells the upstream side.
enum UpstreamHTTPControl: Sendable {
    /// The client can take more response bytes: resume reading if a read was held back.
    case clientWritable
}

/// Last handler of an upstream channel used for HTTP: after `HTTPRequestEncoder` and the
/// response decoder (which observes requests written, so HEAD responses decode right).
final class UpstreamHTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private let client: any Channel
    private let sink: UpstreamEventSink
    private let id: Int
    private let encoder: HTTPRequestEncoder
    private let decoder: ByteToMessageHandler<HTTPResponseDecoder>
    private var readPending = false
    private var switching = false
    private var upgradeAnswered = false
    /// Events of the read in progress, sent at its end (or before any other event).
    private var batch: [UpstreamHTTPEvent] = []

    init(client: any Channel, sink: UpstreamEventSink, id: Int, encoder: HTTPRequestEncoder, decoder: ByteToMessageHandler<HTTPResponseDecoder>) {
        self.client = client
        self.sink = sink
        self.id = id
        self.encoder = encoder
        self.decoder = decoder
    }

    /// Installs the HTTP client codec and this handler on a fresh upstream channel.
    static func install(on upstream: any Channel, client: any Channel, sink: UpstreamEventSink, id: Int) throws {
        let encoder = HTTPRequestEncoder()
        let decoder = ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))
        let handler = UpstreamHTTPHandler(client: client, sink: sink, id: id, encoder: encoder, decoder: decoder)
        try upstream.pipeline.syncOperations.addHandlers([encoder, decoder, handler])
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        self.batch.append(.response(part, upstream: self.id))
        switch part {
        case .head(let head) where head.status == .switchingProtocols:
            self.upgradeAnswered = true
        case .end where self.upgradeAnswered:
            self.sendBatch()
            self.switchToBytes(context: context)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.send(.readComplete(upstream: self.id))
        context.fireChannelReadComplete()
    }

    /// Sends `event` after the events of the read in progress.
    private func send(_ event: UpstreamHTTPEvent) {
        self.batch.append(event)
        self.sendBatch()
    }

    private func sendBatch() {
        guard !self.batch.isEmpty else { return }
        let events = self.batch
        self.batch.removeAll(keepingCapacity: true)
        self.sink.send(events)
    }

    func read(context: ChannelHandlerContext) {
        if self.client.isWritable, !self.switching {
            context.read()
        } else {
            self.readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.send(.writable(upstream: self.id))
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case UpstreamHTTPControl.clientWritable:
            if self.readPending, self.client.isWritable {
                self.readPending = false
                context.read()
            }
        case ChannelEvent.inputClosed:
            // The app finished its side; an HTTP response is complete by then (the decoder saw EOF).
            context.close(promise: nil)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.send(.closed(upstream: self.id))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// After a 101: the codec leaves, a holding splice half takes the bytes (including any the
    /// decoder read past the response), and the client side is told to switch too.
    ///
    /// The decoder hands over the bytes it read past the 101 only as it leaves, in a later
    /// event-loop tick. The client side is told once that is done, so those bytes are held and
    /// go out, flushed, when the halves are attached; told earlier, it could attach first, and the
    /// app's first bytes would be written after the attach without a flush and sit there.
    private func switchToBytes(context: ChannelHandlerContext) {
        self.switching = true
        let channel = context.channel
        let decoderRemoved: EventLoopFuture<Void>
        do {
            decoderRemoved = try Splice.replaceHTTP(context, removing: [self.encoder], decoder: self.decoder)
        } catch {
            channel.close(promise: nil)
            return
        }
        let sink = self.sink
        let id = self.id
        decoderRemoved.whenComplete { _ in
            sink.send([.upgraded(upstream: id)])
        }
    }
}

@available(*, unavailable)
extension UpstreamHTTPHandler: Sendable {}
