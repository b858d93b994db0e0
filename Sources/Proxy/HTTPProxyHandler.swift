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

    private enum Upstream {
        case none
        case connecting(Route)
        case ready(Route, any Channel, id: Int)
    }

    private let ingress: IngressContext
    private let headTimer: RequestHeadTimeoutHandler
    /// Nil on an HTTP/2 stream (the stream codec does the framing; no upgrades there).
    private let decoder: ByteToMessageHandler<HTTPRequestDecoder>?
    private let encoder: HTTPResponseEncoder?
    /// The client came over TLS the gateway terminated: no redirect, `X-Forwarded-Proto: https`.
    private let secure: Bool
    private var isHTTP2: Bool { self.decoder == nil }
    private var upstream = Upstream.none
    /// Numbers the upstream connections of this client, so late events of an old one are ignored.
    private var upstreamCount = 0
    /// Request parts read but not handled yet (bounded: reads are held while it is not empty).
    private var queue = CircularBuffer<HTTPServerRequestPart>()
    /// Request parts read while the upstream connects (bounded: reads are held meanwhile).
    private var pending: [HTTPClientRequestPart] = []
    private var requestInFlight = false
    private var responseInFlight = false
    private var responseHeadSent = false
    private var keepAlive = true
    /// The request being answered is a HEAD: its response has no body, whatever its headers say.
    private var answeringHead = false
    private var upgradeRequested = false
    private var upgrading = false
    /// An error answer was sent: ignore the rest of the request, close when written.
    private var answered = false
    private var readPending = false
    /// Bounds the wait for the app's response head once the whole request is with the app.
    private var answerTimer: Scheduled<Void>?

    init(ingress: IngressContext, headTimer: RequestHeadTimeoutHandler,
         decoder: ByteToMessageHandler<HTTPRequestDecoder>?, encoder: HTTPResponseEncoder?, secure: Bool = false) {
        self.ingress = ingress
        self.headTimer = headTimer
        self.decoder = decoder
        self.encoder = encoder
        self.secure = secure
    }

    // MARK: Requests from the client

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.answered else { return }  // draining what the client still sends after an error answer
        let part = self.unwrapInboundIn(data)
        switch part {
        case .head: self.headTimer.headReceived()
        case .end: self.headTimer.requestEnded()
        case .body: break
        }
        self.queue.append(part)
        self.processQueue(context: context)
    }

    /// Handles queued request parts in order; a pipelined request's head waits until the exchange
    /// before it is over (its response may come from another upstream).
    private func processQueue(context: ChannelHandlerContext) {
        while let part = self.queue.first {
            if case .head = part, self.requestInFlight || self.responseInFlight { return }
            self.queue.removeFirst()
            self.handle(part, context: context)
            if self.answered || self.upgrading {
                self.queue.removeAll()
                return
            }
        }
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(var head):
            self.requestInFlight = true
            self.responseInFlight = true
            self.responseHeadSent = false
            self.keepAlive = head.isKeepAlive
            self.answeringHead = head.method == .HEAD
            if head.method == .CONNECT {
                // A gateway is no forward proxy; forwarded, the app would hang until the idle timeout.
                self.answer(
                    .methodNotAllowed,
                    "CONNECT is not supported by this gateway (it is not a forward proxy); send requests to the service directly\n",
                    headers: [("allow", "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS")],
                    context: context
                )
                return
            }
            // An exclusive port routes by port alone, so a request without Host (HTTP/1.0) is fine there.
            let hostHeader = head.headers.first(name: "host")
            let host = hostHeader.map { HostName.fromHostHeader($0) }
            if let tls = self.ingress.configuration.tls {
                if head.method == .GET || head.method == .HEAD, let keyAuthorization = tls.challengeAnswer(for: head.uri) {
                    self.answer(.ok, keyAuthorization, context: context)
                    return
                }
                if !self.secure, let host, tls.hasCertificate(for: host) {
                    let location = tls.redirectLocation(host: host, uri: head.uri)
                    self.answer(.permanentRedirect, "this service is served over HTTPS: \(location)\n", headers: [("location", location)], context: context)
                    return
                }
            }
            if self.isHTTP2 {
                // The app speaks HTTP/1.1; the stream codec made an HTTP/2.0 head.
                head.version = .http1_1
                head.headers.remove(name: "upgrade")
                self.keepAlive = true
            }
            switch self.ingress.lookup(host: host) {
            case .unknownHost where hostHeader == nil:
                self.answer(.badRequest, "the request has no Host header\n", context: context)
            case .unknownHost, .noBinding:
                self.answer(.notFound, "no service for host \"\(host ?? "")\" on this gateway\n", context: context)
            case .route(let route):
                self.upgradeRequested = head.headers.contains(name: "upgrade")
                Self.addForwardingHeaders(&head.headers, client: context.channel.remoteAddress, host: hostHeader, secure: self.secure)
                self.forward(.head(head), route: route, context: context)
            }
        case .body(let body):
            self.forward(.body(.byteBuffer(body)), route: nil, context: context)
        case .end(let trailers):
            self.requestInFlight = false
            self.forward(.end(trailers), route: nil, context: context)
            self.startAnswerTimer(context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .ready(_, let channel, _) = self.upstream { channel.flush() }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if self.mayRead {
            context.read()
        } else {
            self.readPending = true
        }
    }

    private var mayRead: Bool {
        if self.answered { return true }  // drain, so that closing doesn't reset the answer away
        if self.upgrading || !self.queue.isEmpty { return false }
        if !self.requestInFlight && self.responseInFlight { return false }
        switch self.upstream {
        case .none: return true
        case .connecting: return false
        case .ready(_, let channel, _): return channel.isWritable
        }
    }

    private func resumeReadingIfPossible(context: ChannelHandlerContext) {
        if self.readPending, self.mayRead {
            self.readPending = false
            context.read()
        }
    }

    /// Sends a request part upstream, connecting first when the head names another route.
    private func forward(_ part: HTTPClientRequestPart, route: Route?, context: ChannelHandlerContext) {
        if let route {
            switch self.upstream {
            case .ready(let current, let channel, _) where current == route && channel.isActive:
                break
            case .ready(_, let channel, _):
                // Change state first: closing may report back synchronously.
                self.connect(route, context: context)
                channel.close(promise: nil)
            case .connecting, .none:
                self.connect(route, context: context)
            }
        }
        switch self.upstream {
        case .ready(_, let channel, _):
            if case .end = part {
                channel.writeAndFlush(part, promise: nil)
            } else {
                channel.write(part, promise: nil)
            }
        case .connecting:
            self.pending.append(part)
        case .none:
            break  // the upstream went away mid-request; the answer is already on its way
        }
    }

    private func connect(_ route: Route, context: ChannelHandlerContext) {
        self.upstream = .connecting(route)
        self.upstreamCount += 1
        let id = self.upstreamCount
        let client = context.channel
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.ingress.connectUpstream(
            for: client,
            route: route,
            initializer: { upstream in
                upstream.eventLoop.makeCompletedFuture {
                    try UpstreamHTTPHandler.install(on: upstream, client: client, id: id)
                }
            }
        ).hop(to: context.eventLoop).whenComplete { result in
            let (handler, context) = bound.value
            handler.connected(result, route: route, id: id, context: context)
        }
    }

    private func connected(
        _ result: Result<any Channel, any Error>,
        route: Route,
        id: Int,
        context: ChannelHandlerContext
    ) {
        guard case .connecting = self.upstream, id == self.upstreamCount, context.channel.isActive else {
            if case .success(let channel) = result { channel.close(promise: nil) }
            return
        }
        switch result {
        case .success(let channel):
            self.upstream = .ready(route, channel, id: id)
            for part in self.pending { channel.write(part, promise: nil) }
            self.pending = []
            channel.flush()
            self.startAnswerTimer(context: context)
            self.resumeReadingIfPossible(context: context)
        case .failure(let error):
            self.upstream = .none
            self.pending = []
            let service = "service \"\(route.runID)\""
            let retry = self.ingress.configuration.retryAfterSeconds
            let retryHeaders = [("retry-after", "\(retry)")]
            switch error {
            case ProxyError.upstreamNotConnected:
                self.answer(
                    .serviceUnavailable,
                    "\(service) is unreachable: its runner is not connected to this gateway; retry in \(retry) s\n",
                    headers: retryHeaders, context: context
                )
            case ProxyError.overloaded(_, let limit):
                self.answer(
                    .serviceUnavailable,
                    "\(service) is at this gateway's limit of \(limit); retry in \(retry) s\n",
                    headers: retryHeaders, context: context
                )
            case ProxyError.upstreamTimedOut(_, let seconds):
                self.answer(
                    .gatewayTimeout,
                    "\(service) did not answer: its runner did not accept the connection within \(seconds) s\n",
                    context: context
                )
            default:
                self.answer(
                    .badGateway,
                    "\(service) refused the connection: its app does not accept on port \(route.appPort) of its runner\n",
                    context: context
                )
            }
        }
    }

    // MARK: Responses from the upstream

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? UpstreamHTTPEvent else {
            switch event {
            case let expired as RequestHeadTimeoutHandler.Expired:
                self.requestHeadTimedOut(after: expired.timeout, context: context)
            case ChannelEvent.inputClosed where self.answered || (!self.requestInFlight && !self.responseInFlight):
                context.close(promise: nil)
            case ChannelEvent.inputClosed:
                self.keepAlive = false  // answer this request, then close
            default:
                context.fireUserInboundEventTriggered(event)
            }
            return
        }
        guard case .ready(_, let channel, let current) = self.upstream else { return }
        switch event {
        case .response(let part, let id) where id == current:
            self.respond(part, context: context)
        case .readComplete(let id) where id == current:
            context.flush()
        case .writable(let id) where id == current:
            self.resumeReadingIfPossible(context: context)
        case .closed(let id) where id == current:
            self.upstream = .none
            self.cancelAnswerTimer()
            if self.responseInFlight || self.upgrading {
                if self.responseHeadSent || self.upgrading {
                    // What the service sent before it went is delivered first: an empty body
                    // part completes after the writes queued ahead of it.
                    let channel = context.channel
                    context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer())))).whenComplete { _ in
                        channel.close(promise: nil)
                    }
                } else {
                    self.answer(.badGateway, "the service closed the connection without an answer\n", context: context)
                }
            }
        case .upgraded(let id) where id == current:
            self.switchToBytes(upstream: channel, context: context)
        default:
            break  // an event of an upstream this connection no longer uses
        }
    }

    private func respond(_ part: HTTPClientResponsePart, context: ChannelHandlerContext) {
        guard !self.answered else { return }
        switch part {
        case .head(var head):
            self.cancelAnswerTimer()
            self.responseHeadSent = true
            if head.status == .switchingProtocols && self.upgradeRequested {
                self.upgrading = true
            } else if self.isHTTP2 {
                // A stream ends with its response; the connection's other streams go on.
                head.headers.remove(name: "connection")
                head.headers.remove(name: "keep-alive")
                head.headers.remove(name: "transfer-encoding")
            } else if self.upgradeRequested || !Self.keepsAlive(head, answeringHead: self.answeringHead) {
                // A declined upgrade leaves the request decoder stopped: finish with this response.
                self.keepAlive = false
            }
            if !self.keepAlive && !self.upgrading {
                head.headers.replaceOrAdd(name: "connection", value: "close")
            }
            context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        case .body(let body):
            context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        case .end(let trailers):
            // The encoder doesn't know the request was a HEAD: a response without Content-Length
            // would get a chunked terminator, which the client would read as the start of the
            // next response. Nothing follows a HEAD response's head.
            let last: HTTPServerResponsePart = self.answeringHead ? .body(.byteBuffer(ByteBuffer())) : .end(trailers)
            // Only a response that ends the connection waits for its write (no promise per
            // keep-alive response).
            let closing = !self.upgrading && !self.keepAlive
            let written = closing ? context.eventLoop.makePromise(of: Void.self) : nil
            context.writeAndFlush(self.wrapOutboundOut(last), promise: written)
            guard !self.upgrading else { return }
            self.responseInFlight = false
            self.responseHeadSent = false
            if let written {
                // Only once the response is written: a close drops what a slow client hasn't
                // taken yet (seen as a truncated 200 MiB download on a loaded machine).
                let channel = context.channel
                written.futureResult.whenComplete { _ in channel.close(promise: nil) }
            } else if !self.requestInFlight {
                self.processQueue(context: context)
                self.resumeReadingIfPossible(context: context)
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .ready(_, let channel, _) = self.upstream {
            channel.pipeline.fireUserInboundEventTriggered(UpstreamHTTPControl.clientWritable)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.cancelAnswerTimer()
        let previous = self.upstream
        self.upstream = .none
        if case .ready(_, let channel, _) = previous { channel.close(promise: nil) }
        context.fireChannelInactive()
    }

    /// How long an error answer waits for the client to finish sending before the connection closes.
    static let lingerTime = TimeAmount.seconds(2)

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.answered { return }  // the decoder after an error answer: nothing more to say
        if let error = error as? HTTPParserError, !self.responseHeadSent, !self.answered {
            switch error {
            case .headerOverflow:
                self.answer(.requestHeaderFieldsTooLarge, "request headers exceed \(self.ingress.configuration.maxHeaderBytes) bytes\n", context: context)
            default:
                self.answer(.badRequest, "malformed HTTP request: \(error)\n", context: context)
            }
            return
        }
        context.close(promise: nil)
    }

    // MARK: Timeouts

    /// A request head that began did not end in time (a slow or stalled client).
    private func requestHeadTimedOut(after timeout: TimeAmount, context: ChannelHandlerContext) {
        guard !self.answered else { return }
        guard !self.responseInFlight else {
            // A pipelined head is late while a response is being relayed: no status line can be
            // put in the middle of it.
            context.close(promise: nil)
            return
        }
        self.ingress.limits.countTimeout(.requestHead)
        self.answer(
            .requestTimeout,
            "the request head was not complete within \(Self.seconds(timeout)) s; send it whole, then retry\n",
            context: context
        )
    }

    /// Starts the answer timeout once the whole request is written to a connected app.
    private func startAnswerTimer(context: ChannelHandlerContext) {
        guard self.answerTimer == nil, !self.answered, !self.requestInFlight, self.responseInFlight, !self.responseHeadSent,
              case .ready(let route, _, let id) = self.upstream else { return }
        let timeout = self.ingress.configuration.answerTimeout
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.answerTimer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = bound.value
            handler.answerTimer = nil
            guard case .ready(_, _, let current) = handler.upstream, current == id, !handler.responseHeadSent else { return }
            handler.ingress.limits.countTimeout(.answer)
            handler.answer(
                .gatewayTimeout,
                "service \"\(route.runID)\" did not answer: its app accepted the connection but sent no response "
                    + "within \(Self.seconds(timeout)) s\n",
                context: context
            )
        }
    }

    private func cancelAnswerTimer() {
        self.answerTimer?.cancel()
        self.answerTimer = nil
    }

    /// `30` for 30 s, `0.5` for 500 ms: a timeout as a person reads it.
    static func seconds(_ amount: TimeAmount) -> String {
        let seconds = Double(amount.nanoseconds) / 1e9
        return seconds == seconds.rounded() ? "\(Int(seconds))" : "\(seconds)"
    }

    // MARK: Helpers

    /// Answers the current request with a short plain-text body, then closes the connection.
    private func answer(
        _ status: HTTPResponseStatus,
        _ text: String,
        headers extra: [(String, String)] = [],
        context: ChannelHandlerContext
    ) {
        self.answered = true
        self.headTimer.cancel()
        self.cancelAnswerTimer()
        self.ingress.logger.debug(
            "answering from the gateway",
            metadata: ["http.status": "\(status.code)", "listen.address": "\(self.ingress.address)"]
        )
        let previous = self.upstream
        self.upstream = .none
        if case .ready(_, let channel, _) = previous { channel.close(promise: nil) }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: "\(text.utf8.count)")
        headers.add(name: "connection", value: "close")
        for (name, value) in extra { headers.add(name: name, value: value) }
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        // Half-close, keep draining what the client still sends (a close with unread bytes would
        // reset the connection and could destroy the answer), and close for good after a grace time.
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
        }
        context.eventLoop.scheduleTask(in: Self.lingerTime) { channel.close(promise: nil) }
        self.resumeReadingIfPossible(context: context)
    }

    /// Whether the upstream's response leaves the connection open. The response decoder judges
    /// keep-alive before it knows a HEAD response has no body: a head without a length looks like
    /// a body running to EOF, hence "close". For HEAD, only the Connection header and version count.
    static func keepsAlive(_ head: HTTPResponseHead, answeringHead: Bool) -> Bool {
        guard answeringHead else { return head.isKeepAlive }
        let headers = HTTPHeaders(head.headers.map { ($0.name, $0.value) })
        return HTTPResponseHead(version: head.version, status: head.status, headers: headers).isKeepAlive
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
    private func switchToBytes(upstream: any Channel, context: ChannelHandlerContext) {
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
        if self.readPending { channel.read() }
    }
}

@available(*, unavailable)
extension HTTPProxyHandler: Sendable {}
