internal import NIOConcurrencyHelpers
internal import NIOCore

/// What one link carried: bytes on the wire (sealed records, handshake included) each way, and its
/// streams (opened by either side, and still open). Read it at any time, from any thread.
public final class LinkTraffic: Sendable {
    public struct Snapshot: Hashable, Sendable {
        public var bytesSent = 0
        public var bytesReceived = 0
        public var streamsOpened = 0
        public var streamsActive = 0

        package init() {}
    }

    private let state = NIOLockedValueBox(Snapshot())

    init() {}

    public var snapshot: Snapshot { state.withLockedValue { $0 } }

    func sent(_ count: Int) { state.withLockedValue { $0.bytesSent += count } }
    func received(_ count: Int) { state.withLockedValue { $0.bytesReceived += count } }
    func streamOpened() { state.withLockedValue { $0.streamsOpened += 1; $0.streamsActive += 1 } }
    func streamClosed() { state.withLockedValue { $0.streamsActive -= 1 } }
}

/// The first handler of a link's connection: counts the bytes that pass, untouched.
final class LinkByteCounter: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let traffic: LinkTraffic

    init(traffic: LinkTraffic) {
        self.traffic = traffic
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        traffic.received(unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        traffic.sent(unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension LinkByteCounter: Sendable {}

/// Counts one stream of a link from the moment its pipeline is set up until it closes.
final class LinkStreamCounter: ChannelInboundHandler {
    typealias InboundIn = Any

    private let traffic: LinkTraffic

    init(traffic: LinkTraffic) {
        self.traffic = traffic
    }

    func handlerAdded(context: ChannelHandlerContext) {
        traffic.streamOpened()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        traffic.streamClosed()
    }
}

@available(*, unavailable)
extension LinkStreamCounter: Sendable {}
