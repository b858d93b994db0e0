// The client half of HTTP proxying on a shared port: route each request by Host, forward it.

import Logging
import NIOCore
import NIOHTTP1

/// Proxies HTTP/1.1 requests of one client connection, one at a time, each to the route of its
/// `Host`. The upstream connection is kept while consecutive requests go to the same route.
///
/// Backpressure: reads from the client are held while the upstream is being connected or can't
/// take more, and while a response is still coming (no pipelining across upstreams); the
/// upstream half holds its reads while the client can't take more.
/// An answered `101 Switching Protocols` turns the connection into a byte splice.
final class HTTPProxyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private typealias Machine = ProxyConnectionStateMachine

    private let ingress: IngressContext
    private let headTimer: RequestHeadTimeoutHandler
    /// Nil on an HTTP/2 stream (the stream codec does the framing; no upgrades there).
    private let decoder: ByteToMessageHandler<HTTPRequestDecoder>?
    private let encoder: HTTPResponseEncoder?
    /// The client came over TLS the gateway terminated: no redirect, `X-Forwarded-Proto: https`.
    private let secure: Bool
    /// Every decision about this connection; this handler carries out its actions.
    private var machine: Machine
    /// The upstream channel the machine's current upstream runs on.
    private var upstream: (any Channel)?
    /// When the app's answer to the request in flight is late, and that request's upstream.
    private var answerDue: (deadline: NIODeadline, upstream: Int)?
    /// At most one timer, which may be due before `answerDue` (an answer that came in time leaves
    /// it running): it looks at `answerDue` when it fires and sets itself again if needed, so
    /// keep-alive requests cost a clock read each, not a timer set and cancelled each.
    private var answerTimer: Scheduled<Void>?
    /// False once this handler has left the pipeline; the upstream's late events are dropped then.
    private var inPipeline = true
    /// Request parts for an upstream on another event loop, written there as one task when the
    /// actions of an event are done (a task per part would cost a cross-thread wake-up each).
    private var outgoing: [HTTPClientRequestPart] = []
    private var outgoingFlush = false

    init(ingress: IngressContext, headTimer: RequestHeadTimeoutHandler,
         decoder: ByteToMessageHandler<HTTPRequestDecoder>?, encoder: HTTPResponseEncoder?, secure: Bool = false) {
        self.ingress = ingress
        self.headTimer = headTimer
        self.decoder = decoder
        self.encoder = encoder
        self.secure = secure
        self.machine = Machine(configuration: .init(
            isHTTP2: decoder == nil,
            retryAfterSeconds: ingress.configuration.retryAfterSeconds,
            answerTimeout: ingress.configuration.answerTimeout,
            maxHeaderBytes: ingress.configuration.maxHeaderBytes))
    }

    private var upstreamStatus: Machine.UpstreamStatus {
        guard let upstream = self.upstream else { return .absent }
        return .init(isActive: upstream.isActive, isWritable: upstream.isWritable)
    }

    // MARK: Events in

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        let actions = self.machine.requestPart(part, upstream: self.upstreamStatus, route: self.router(context: context))
        self.execute(actions, context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.execute(self.machine.clientReadComplete(), context: context)
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if self.machine.readRequested(upstream: self.upstreamStatus) {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let expired as RequestHeadTimeoutHandler.Expired:
            self.execute(self.machine.requestHeadTimedOut(after: expired.timeout, upstream: self.upstreamStatus), context: context)
        case ChannelEvent.inputClosed:
            self.execute(self.machine.clientInputClosed(), context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.execute(self.machine.clientWritable(), context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.execute(self.machine.clientInactive(), context: context)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.inPipeline = false
        self.answerTimer?.cancel()
        self.answerTimer = nil
    }

    /// A batch of the upstream's events, in order (see `UpstreamEventSink`). Once this handler
    /// has left the pipeline (a splice took over, or the channel closed), they concern no one.
    private func upstreamEvents(_ events: [UpstreamHTTPEvent], context: ChannelHandlerContext) {
        for event in events {
            guard self.inPipeline else { return }
            let actions = self.machine.upstreamEvent(event, upstream: self.upstreamStatus, route: self.router(context: context))
            self.execute(actions, context: context)
        }
    }

    /// How long an error answer waits for the client to finish sending before the connection closes.
    static let lingerTime = TimeAmount.seconds(2)

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.execute(self.machine.clientError(error, upstream: self.upstreamStatus), context: context)
    }

    /// Where a request head goes: the ACME challenge, the HTTPS redirect, the host's route.
    /// Adds the forwarding headers to a head that is forwarded.
    private func router(context: ChannelHandlerContext) -> (inout HTTPRequestHead) -> Machine.Routing {
        let ingress = self.ingress
        let secure = self.secure
        let client = context.channel.remoteAddress
        return { head in
            // An exclusive port routes by port alone, so a request without Host (HTTP/1.0) is fine there.
            let hostHeader = head.headers.first(name: "host")
            let host = hostHeader.map { HostName.fromHostHeader($0) }
            if let tls = ingress.configuration.tls {
                if head.method == .GET || head.method == .HEAD, let keyAuthorization = tls.challengeAnswer(for: head.uri) {
                    return .answer(.init(status: .ok, text: keyAuthorization))
                }
                if !secure, let host, tls.hasCertificate(for: host) {
                    let location = tls.redirectLocation(host: host, uri: head.uri)
                    return .answer(.init(
                        status: .permanentRedirect, text: "this service is served over HTTPS: \(location)\n",
                        headers: [.init(name: "location", value: location)]))
                }
            }
            switch ingress.lookup(host: host) {
            case .unknownHost where hostHeader == nil:
                return .answer(.init(status: .badRequest, text: "the request has no Host header\n"))
            case .unknownHost, .noBinding:
                return .answer(.init(status: .notFound, text: "no service for host \"\(host ?? "")\" on this gateway\n"))
            case .route(let route):
                Self.addForwardingHeaders(&head.headers, client: client, host: hostHeader, secure: secure)
                return .forward(route)
            }
        }
    }

    // MARK: Actions out

    private func execute(_ actions: [Machine.Action], context: ChannelHandlerContext) {
        defer { self.sendOutgoing() }
        for action in actions {
            switch action {
            case .headReceived:
                self.headTimer.headReceived()
            case .requestEnded:
                self.headTimer.requestEnded()
            case .connect(let route, let id):
                self.connect(route, id: id, context: context)
            case .writeUpstream(let part, let flush):
                self.writeUpstream(part, flush: flush)
            case .flushUpstream:
                self.writeUpstream(nil, flush: true)
            case .closeUpstream:
                self.sendOutgoing()
                let previous = self.upstream
                self.upstream = nil
                previous?.close(promise: nil)
            case .notifyUpstreamWritable:
                self.sendOutgoing()
                self.upstream?.pipeline.fireUserInboundEventTriggered(UpstreamHTTPControl.clientWritable)
            case .writeClient(let part):
                context.write(self.wrapOutboundOut(part), promise: nil)
            case .writeAndFlushClient(let part, let thenClose):
                if thenClose {
                    let channel = context.channel
                    context.writeAndFlush(self.wrapOutboundOut(part)).whenComplete { _ in channel.close(promise: nil) }
                } else {
                    context.writeAndFlush(self.wrapOutboundOut(part), promise: nil)
                }
            case .flushClient:
                context.flush()
            case .closeClient:
                context.close(promise: nil)
            case .answer(let answer):
                self.answer(answer, context: context)
            case .scheduleAnswerTimeout(let id):
                let deadline = NIODeadline.now() + self.ingress.configuration.answerTimeout
                self.answerDue = (deadline, id)
                if self.answerTimer == nil { self.scheduleAnswerTimer(at: deadline, context: context) }
            case .cancelAnswerTimeout:
                self.answerDue = nil
            case .countTimeout(let timeout):
                self.ingress.limits.countTimeout(timeout)
            case .read:
                context.read()
            case .switchToBytes(let readPending):
                guard let upstream = self.upstream else {
                    context.close(promise: nil)
                    return
                }
                self.sendOutgoing()
                self.switchToBytes(upstream: upstream, readPending: readPending, context: context)
                return  // this handler has left the pipeline
            }
        }
    }

    private func scheduleAnswerTimer(at deadline: NIODeadline, context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.answerTimer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = bound.value
            handler.answerTimer = nil
            guard handler.inPipeline, let due = handler.answerDue else { return }
            if due.deadline > .now() {
                handler.scheduleAnswerTimer(at: due.deadline, context: context)
                return
            }
            handler.answerDue = nil
            handler.execute(handler.machine.answerTimedOut(upstream: due.upstream, upstream: handler.upstreamStatus), context: context)
        }
    }

    /// Writes `part` (and flushes) to the upstream now when it is on this event loop, or adds it to
    /// the parts `sendOutgoing` writes there in one task.
    private func writeUpstream(_ part: HTTPClientRequestPart?, flush: Bool) {
        guard let upstream = self.upstream else { return }
        if upstream.eventLoop.inEventLoop {
            if let part { upstream.write(part, promise: nil) }
            if flush { upstream.flush() }
            return
        }
        if let part { self.outgoing.append(part) }
        self.outgoingFlush = self.outgoingFlush || flush
    }

    private func sendOutgoing() {
        guard !self.outgoing.isEmpty || self.outgoingFlush else { return }
        let parts = self.outgoing
        let flush = self.outgoingFlush
        self.outgoing.removeAll(keepingCapacity: true)
        self.outgoingFlush = false
        guard let upstream = self.upstream else { return }
        upstream.eventLoop.execute {
            for part in parts { upstream.write(part, promise: nil) }
            if flush { upstream.flush() }
        }
    }

    private func connect(_ route: Route, id: Int, context: ChannelHandlerContext) {
        let client = context.channel
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let sink = UpstreamEventSink(eventLoop: context.eventLoop) { events in
            let (handler, context) = bound.value
            handler.upstreamEvents(events, context: context)
        }
        self.ingress.connectUpstream(
            for: client,
            route: route,
            initializer: { upstream in
                upstream.eventLoop.makeCompletedFuture {
                    try UpstreamHTTPHandler.install(on: upstream, client: client, sink: sink, id: id)
                }
            }
        ).hop(to: context.eventLoop).whenComplete { result in
            let (handler, context) = bound.value
            handler.connected(result, id: id, context: context)
        }
    }

    private func connected(_ result: Result<any Channel, any Error>, id: Int, context: ChannelHandlerContext) {
        switch result {
        case .success(let channel):
            let status = Machine.UpstreamStatus(isActive: channel.isActive, isWritable: channel.isWritable)
            switch self.machine.upstreamConnected(id: id, clientActive: context.channel.isActive, upstream: status) {
            case .use(let actions):
                self.upstream = channel
                self.execute(actions, context: context)
            case .discard:
                channel.close(promise: nil)
            }
        case .failure(let error):
            self.execute(self.machine.upstreamConnectFailed(id: id, error: error, clientActive: context.channel.isActive), context: context)
        }
    }

    /// Answers with a short plain-text body, then closes the connection: half-closes, keeps
    /// draining what the client still sends (a close with unread bytes would reset the connection
    /// and could destroy the answer), and closes for good after a grace time.
    private func answer(_ answer: Machine.Answer, context: ChannelHandlerContext) {
        self.headTimer.cancel()
        self.ingress.logger.debug(
            "answering from the gateway",
            metadata: ["http.status": "\(answer.status.code)", "listen.address": "\(self.ingress.address)"]
        )
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: "\(answer.text.utf8.count)")
        headers.add(name: "connection", value: "close")
        for header in answer.headers { headers.add(name: header.name, value: header.value) }
        let head = HTTPResponseHead(version: .http1_1, status: answer.status, headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: answer.text)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
        }
        context.eventLoop.scheduleTask(in: Self.lingerTime) { channel.close(promise: nil) }
    }

    static func addForwardingHeaders(_ headers: inout HTTPHeaders, client: SocketAddress?, host: String?, secure: Bool = false) {
        if let ip = client?.ipAddress {
            if let previous = headers.first(name: "x-forwarded-for") {
                headers.replaceOrAdd(name: "x-forwarded-for", value: "\(previous), \(ip)")
            } else {
                headers.add(name: "x-forwarded-for", value: ip)
            }
        }
        headers.replaceOrAdd(name: "x-forwarded-proto", value: secure ? "https" : "http")
        if let host {
            headers.replaceOrAdd(name: "x-forwarded-host", value: host)
        } else {
            headers.remove(name: "x-forwarded-host")
        }
    }

    /// After the 101 went out: the HTTP codec leaves, a splice half takes over (with any bytes the
    /// decoder read past the request), and the two halves are attached.
    ///
    /// The decoder hands over the bytes it read past the request head (a client may send its first
    /// frame in the same segment as the upgrade) only as it leaves, in a later event-loop tick.
    /// The halves are attached once that is done, so those bytes are held by the splice half and
    /// written, flushed and in order, by the attach.
    private func switchToBytes(upstream: any Channel, readPending: Bool, context: ChannelHandlerContext) {
        let channel = context.channel
        let decoderRemoved: EventLoopFuture<Void>
        do {
            guard let encoder = self.encoder, let decoder = self.decoder else { throw ProxyError.upgradeOverHTTP2 }
            decoderRemoved = try Splice.replaceHTTP(context, removing: [encoder, self.headTimer], decoder: decoder)
        } catch {
            channel.close(promise: nil)
            upstream.close(promise: nil)
            return
        }
        decoderRemoved.whenComplete { _ in
            Splice.attach(channel, upstream)
            // An upstream that went before the attach can no longer say so through its pipeline.
            if !upstream.isActive {
                channel.pipeline.fireUserInboundEventTriggered(SpliceEvent.partnerClosed)
            }
        }
        // The splice half starts holding reads; a read that was held here is handed over.
        if readPending { channel.read() }
    }
}

@available(*, unavailable)
extension HTTPProxyHandler: Sendable {}
