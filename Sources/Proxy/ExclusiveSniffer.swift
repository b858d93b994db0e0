// On an exclusive port: HTTP/1.x clients get the forwarding headers (so the app learns the client's
// address), every other protocol is spliced as bytes.

import NIOCore

/// What the first bytes of a connection on an exclusive port say about its protocol.
enum FirstBytes: Equatable {
    /// A complete HTTP/1.0 or HTTP/1.1 request line.
    case http
    /// Not HTTP/1.x (or a request line longer than the limit).
    case other
    /// So far an uppercase method token, or a request line without its end yet.
    case needMore

    /// Classifies `buffer`: a method token (uppercase letters, `-` or `_`, at most 24) and a space,
    /// then a line ending in ` HTTP/1.0` or ` HTTP/1.1`, within `limit` bytes.
    static func classify(_ buffer: ByteBuffer, limit: Int) -> FirstBytes {
        let bytes = buffer.readableBytesView
        var index = bytes.startIndex
        var methodLength = 0
        while index < bytes.endIndex, bytes[index] != UInt8(ascii: " ") {
            let byte = bytes[index]
            let tokenByte = (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            guard tokenByte, methodLength < 24 else { return .other }
            methodLength += 1
            index += 1
        }
        if index == bytes.endIndex { return .needMore }
        if methodLength == 0 { return .other }
        guard let newline = bytes[index...].firstIndex(of: UInt8(ascii: "\n")) else {
            return bytes.count >= limit ? .other : .needMore
        }
        var end = newline
        if end > bytes.startIndex, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        let line = bytes[bytes.startIndex..<end]
        for version in [" HTTP/1.1", " HTTP/1.0"] where line.count > version.utf8.count {
            if line.suffix(version.utf8.count).elementsEqual(version.utf8) { return .http }
        }
        return .other
    }
}

/// First handler of a connection on an exclusive port: reads until the first bytes tell HTTP/1.x
/// from anything else, then installs a splice, behind `ExclusiveHTTPHandler` for HTTP/1.x (the
/// forwarding headers), replays what it read, connects the port's upstream, and leaves.
///
/// A client that sends nothing within `exclusiveSniffWait` is spliced at once: in protocols where
/// the server speaks first (SSH, SMTP, databases) the client waits for the app, so its upstream
/// must not wait for the client. The same wait bounds a client whose first line does not end.
final class ExclusiveSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let ingress: IngressContext
    private let route: Route
    private var collected = ByteBuffer()
    private var timer: Scheduled<Void>?
    private var decided = false

    init(ingress: IngressContext, route: Route) {
        self.ingress = ingress
        self.route = route
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.timer = context.eventLoop.scheduleTask(in: self.ingress.configuration.exclusiveSniffWait) {
            let (handler, context) = bound.value
            handler.decide(.other, context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.decided else {
            context.fireChannelRead(data)
            return
        }
        var buffer = self.unwrapInboundIn(data)
        self.collected.writeBuffer(&buffer)
        switch FirstBytes.classify(self.collected, limit: self.ingress.configuration.maxHeaderBytes) {
        case .needMore: return
        case let verdict: self.decide(verdict, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A client that ends its side before it could be told apart is spliced: the app sees the
        // bytes and the half-close in order.
        if case ChannelEvent.inputClosed = event, !self.decided {
            self.decide(.other, context: context, then: event)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timer?.cancel()
        context.fireChannelInactive()
    }

    /// Installs what `verdict` calls for, replays the bytes read so far and `event` (if any) into
    /// it, and leaves the pipeline.
    private func decide(_ verdict: FirstBytes, context: ChannelHandlerContext, then event: Any? = nil) {
        guard !self.decided, context.channel.isActive else { return }
        self.decided = true
        self.timer?.cancel()
        self.timer = nil
        let channel = context.channel
        do {
            if verdict == .http {
                let headTimer = RequestHeadTimeoutHandler(timeout: self.ingress.configuration.requestHeadTimeout)
                let http = ExclusiveHTTPHandler(
                    ingress: self.ingress, route: self.route, headTimer: headTimer, clientAddress: channel.remoteAddress?.ipAddress)
                try context.pipeline.syncOperations.addHandlers([headTimer, http, SpliceHandler(partner: nil)], position: .after(self))
            } else {
                try context.pipeline.syncOperations.addHandler(SpliceHandler(partner: nil), position: .after(self))
            }
        } catch {
            context.close(promise: nil)
            return
        }
        if self.collected.readableBytes > 0 {
            context.fireChannelRead(self.wrapInboundOut(self.collected))
            context.fireChannelReadComplete()
        }
        self.collected = ByteBuffer()
        if let event { context.fireUserInboundEventTriggered(event) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        self.ingress.spliceToUpstream(channel, route: self.route, answeringFailure: verdict == .http)
    }
}

@available(*, unavailable)
extension ExclusiveSniffer: Sendable {}
