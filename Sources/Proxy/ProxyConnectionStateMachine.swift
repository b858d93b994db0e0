// The life of one proxied HTTP client connection as a value: events in, actions out.

import NIOCore
import NIOHTTP1

/// Decides everything `HTTPProxyHandler` does for one client connection: which request parts go
/// upstream and when, which upstream to connect, what the client is answered, when reads are held,
/// when the answer timeout runs, and when the connection closes. It owns no channel and no timer:
/// the handler feeds it events (request parts, upstream events, timeouts, closes) and carries out
/// the actions it returns, so every path can be driven and checked without a socket.
///
/// Requests are handled one at a time: a pipelined request's head waits in the queue until the
/// exchange before it is over, since its response may come from another upstream.
struct ProxyConnectionStateMachine {
    struct Configuration {
        /// An HTTP/2 stream: the stream codec frames, a head arrives as HTTP/2.0, no upgrades.
        var isHTTP2: Bool
        var retryAfterSeconds: Int
        var answerTimeout: TimeAmount
        var maxHeaderBytes: Int
    }

    /// What the upstream channel looks like now, read by the executor when it passes an event in.
    struct UpstreamStatus: Equatable {
        var isActive: Bool
        var isWritable: Bool
        /// No upstream channel (none, or still connecting).
        static let absent = UpstreamStatus(isActive: false, isWritable: false)
    }

    /// A short plain-text answer from the gateway itself; the connection closes after it.
    struct Answer: Equatable {
        var status: HTTPResponseStatus
        var text: String
        var headers: [Header] = []

        struct Header: Equatable {
            var name: String
            var value: String
        }

        /// What the client is told when the upstream for `route` could not be connected.
        static func connectFailed(_ error: any Error, route: Route, retryAfterSeconds retry: Int) -> Answer {
            let service = "service \"\(route.runID)\""
            let retryHeaders = [Header(name: "retry-after", value: "\(retry)")]
            switch error {
            case ProxyError.upstreamNotConnected:
                return Answer(
                    status: .serviceUnavailable,
                    text: "\(service) is unreachable: its runner is not connected to this gateway; retry in \(retry) s\n",
                    headers: retryHeaders)
            case ProxyError.overloaded(_, let limit):
                return Answer(
                    status: .serviceUnavailable, text: "\(service) is at this gateway's limit of \(limit); retry in \(retry) s\n",
                    headers: retryHeaders)
            case ProxyError.upstreamTimedOut(_, let seconds):
                return Answer(
                    status: .gatewayTimeout,
                    text: "\(service) did not answer: its runner did not accept the connection within \(seconds) s\n")
            default:
                return Answer(
                    status: .badGateway,
                    text: "\(service) refused the connection: its app does not accept on port \(route.appPort) of its runner\n")
            }
        }
    }

    /// Where a request head goes, as the ingress decides it (host lookup, TLS rules).
    enum Routing: Equatable {
        case answer(Answer)
        case forward(Route)
    }

    enum Action {
        /// Tell the request head timer: a head is complete (stop timing), or a request ended (the
        /// next byte starts the next head).
        case headReceived
        case requestEnded
        /// Connect a new upstream for `route`; report back with `upstreamConnected`/`upstreamConnectFailed(id:)`.
        case connect(Route, id: Int)
        case writeUpstream(HTTPClientRequestPart, flush: Bool)
        case flushUpstream
        /// Close the current upstream channel (if any) and forget it.
        case closeUpstream
        /// The client can take more response bytes: the upstream may read again.
        case notifyUpstreamWritable
        case writeClient(HTTPServerResponsePart)
        /// Write and flush; with `thenClose`, close the client once the write is done.
        case writeAndFlushClient(HTTPServerResponsePart, thenClose: Bool)
        case flushClient
        case closeClient
        /// Answer from the gateway, half-close, keep draining, close for good after a grace time.
        case answer(Answer)
        case scheduleAnswerTimeout(upstream: Int)
        case cancelAnswerTimeout
        case countTimeout(ProxyTimeout)
        /// Issue the read that was held back.
        case read
        /// A 101 went out: hand the connection to a byte splice; `readPending` is a read held here.
        case switchToBytes(readPending: Bool)
    }

    /// Whether a freshly connected upstream is used or closed (this connection moved on meanwhile).
    enum Connected {
        case use([Action])
        case discard
    }

    private enum Upstream: Equatable {
        case none
        case connecting(Route, id: Int)
        case ready(Route, id: Int)
    }

    private let configuration: Configuration
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
    private var answerTimerArmed = false

    init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// The upstream connection number whose events count now, if one is connected.
    var currentUpstream: Int? {
        if case .ready(_, let id) = self.upstream { return id }
        return nil
    }

    // MARK: Events from the client

    /// A request part was read. `route` decides where a head goes when its turn comes (it may
    /// add forwarding headers to the head).
    mutating func requestPart(
        _ part: HTTPServerRequestPart,
        upstream status: UpstreamStatus,
        route: (inout HTTPRequestHead) -> Routing
    ) -> [Action] {
        guard !self.answered else { return [] }  // draining what the client still sends after an error answer
        var actions: [Action] = []
        switch part {
        case .head: actions.append(.headReceived)
        case .end: actions.append(.requestEnded)
        case .body: break
        }
        self.queue.append(part)
        self.processQueue(status, route: route, into: &actions)
        return actions
    }

    /// The client read a batch: what went upstream is flushed.
    func clientReadComplete() -> [Action] {
        if case .ready = self.upstream { return [.flushUpstream] }
        return []
    }

    /// The pipeline asks for a read: true to read now, false to hold it until reading may resume.
    mutating func readRequested(upstream status: UpstreamStatus) -> Bool {
        if self.mayRead(status) { return true }
        self.readPending = true
        return false
    }

    func clientWritable() -> [Action] {
        if case .ready = self.upstream { return [.notifyUpstreamWritable] }
        return []
    }

    /// The client half-closed its side.
    mutating func clientInputClosed() -> [Action] {
        if self.answered || (!self.requestInFlight && !self.responseInFlight) { return [.closeClient] }
        self.keepAlive = false  // answer this request, then close
        return []
    }

    mutating func clientInactive() -> [Action] {
        var actions = self.cancelAnswerTimer()
        let previous = self.upstream
        self.upstream = .none
        if case .ready = previous { actions.append(.closeUpstream) }
        return actions
    }

    /// An error in the client's pipeline (a malformed request, mostly).
    mutating func clientError(_ error: any Error, upstream status: UpstreamStatus) -> [Action] {
        if self.answered { return [] }  // the decoder after an error answer: nothing more to say
        if let error = error as? HTTPParserError, !self.responseHeadSent {
            switch error {
            case .headerOverflow:
                return self.answer(
                    Answer(status: .requestHeaderFieldsTooLarge, text: "request headers exceed \(self.configuration.maxHeaderBytes) bytes\n"),
                    status)
            default:
                return self.answer(Answer(status: .badRequest, text: "malformed HTTP request: \(error)\n"), status)
            }
        }
        return [.closeClient]
    }

    // MARK: Timeouts

    /// A request head that began did not end in time (a slow or stalled client).
    mutating func requestHeadTimedOut(after timeout: TimeAmount, upstream status: UpstreamStatus) -> [Action] {
        guard !self.answered else { return [] }
        // A pipelined head is late while a response is being relayed: no status line can be put
        // in the middle of it.
        guard !self.responseInFlight else { return [.closeClient] }
        return [.countTimeout(.requestHead)] + self.answer(
            Answer(
                status: .requestTimeout,
                text: "the request head was not complete within \(Self.seconds(timeout)) s; send it whole, then retry\n"),
            status)
    }

    /// The answer timeout scheduled for upstream `id` ran out.
    mutating func answerTimedOut(upstream id: Int, upstream status: UpstreamStatus) -> [Action] {
        self.answerTimerArmed = false
        guard case .ready(let route, let current) = self.upstream, current == id, !self.responseHeadSent, !self.answered else {
            return []
        }
        return [.countTimeout(.answer)] + self.answer(
            Answer(
                status: .gatewayTimeout,
                text: "service \"\(route.runID)\" did not answer: its app accepted the connection but sent no response "
                    + "within \(Self.seconds(self.configuration.answerTimeout)) s\n"),
            status)
    }

    // MARK: Events from the upstream

    /// The upstream numbered `id` connected; `status` is its channel's.
    mutating func upstreamConnected(id: Int, clientActive: Bool, upstream status: UpstreamStatus) -> Connected {
        guard case .connecting(let route, let current) = self.upstream, id == current, clientActive else { return .discard }
        self.upstream = .ready(route, id: id)
        var actions: [Action] = self.pending.map { .writeUpstream($0, flush: false) }
        self.pending = []
        actions.append(.flushUpstream)
        actions += self.startAnswerTimer()
        actions += self.resumeReading(status)
        return .use(actions)
    }

    /// Connecting the upstream numbered `id` failed: the client is told why, in its terms.
    mutating func upstreamConnectFailed(id: Int, error: any Error, clientActive: Bool) -> [Action] {
        guard case .connecting(let route, let current) = self.upstream, id == current, clientActive else { return [] }
        self.upstream = .none
        self.pending = []
        let answer = Answer.connectFailed(error, route: route, retryAfterSeconds: self.configuration.retryAfterSeconds)
        return self.answer(answer, .absent)
    }

    /// An event of the upstream numbered by it; events of an upstream no longer used are ignored.
    /// `route` decides where a pipelined head goes when a response's end lets it through.
    mutating func upstreamEvent(
        _ event: UpstreamHTTPEvent,
        upstream status: UpstreamStatus,
        route: (inout HTTPRequestHead) -> Routing
    ) -> [Action] {
        guard case .ready(_, let current) = self.upstream else { return [] }
        switch event {
        case .response(let part, let id) where id == current:
            return self.respond(part, status, route: route)
        case .readComplete(let id) where id == current:
            return [.flushClient]
        case .writable(let id) where id == current:
            return self.resumeReading(status)
        case .closed(let id) where id == current:
            self.upstream = .none
            var actions = self.cancelAnswerTimer()
            actions.append(.closeUpstream)
            guard self.responseInFlight || self.upgrading else { return actions }
            if self.responseHeadSent || self.upgrading {
                // What the service sent before it went is delivered first: an empty body part
                // completes after the writes queued ahead of it.
                actions.append(.writeAndFlushClient(.body(.byteBuffer(ByteBuffer())), thenClose: true))
                return actions
            }
            return actions + self.answer(Answer(status: .badGateway, text: "the service closed the connection without an answer\n"), .absent)
        case .upgraded(let id) where id == current:
            return [.switchToBytes(readPending: self.readPending)]
        default:
            return []  // an event of an upstream this connection no longer uses
        }
    }

    // MARK: Requests

    private mutating func processQueue(_ status: UpstreamStatus, route: (inout HTTPRequestHead) -> Routing, into actions: inout [Action]) {
        while let part = self.queue.first {
            if case .head = part, self.requestInFlight || self.responseInFlight { return }
            self.queue.removeFirst()
            self.handle(part, status, route: route, into: &actions)
            if self.answered || self.upgrading {
                self.queue.removeAll()
                return
            }
        }
    }

    private mutating func handle(
        _ part: HTTPServerRequestPart, _ status: UpstreamStatus, route: (inout HTTPRequestHead) -> Routing, into actions: inout [Action]
    ) {
        switch part {
        case .head(var head):
            self.requestInFlight = true
            self.responseInFlight = true
            self.responseHeadSent = false
            self.keepAlive = head.isKeepAlive
            self.answeringHead = head.method == .HEAD
            if head.method == .CONNECT {
                // A gateway is no forward proxy; forwarded, the app would hang until the idle timeout.
                actions += self.answer(
                    Answer(
                        status: .methodNotAllowed,
                        text: "CONNECT is not supported by this gateway (it is not a forward proxy); send requests to the service directly\n",
                        headers: [.init(name: "allow", value: "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS")]),
                    status)
                return
            }
            if self.configuration.isHTTP2 {
                // The app speaks HTTP/1.1; the stream codec made an HTTP/2.0 head.
                head.version = .http1_1
                head.headers.remove(name: "upgrade")
                self.keepAlive = true
            }
            switch route(&head) {
            case .answer(let answer):
                actions += self.answer(answer, status)
            case .forward(let target):
                self.upgradeRequested = head.headers.contains(name: "upgrade")
                self.forward(.head(head), route: target, status, into: &actions)
            }
        case .body(let body):
            self.forward(.body(.byteBuffer(body)), route: nil, status, into: &actions)
        case .end(let trailers):
            self.requestInFlight = false
            self.forward(.end(trailers), route: nil, status, into: &actions)
            actions += self.startAnswerTimer()
        }
    }

    /// Sends a request part upstream, connecting first when the head names another route.
    private mutating func forward(_ part: HTTPClientRequestPart, route: Route?, _ status: UpstreamStatus, into actions: inout [Action]) {
        if let route {
            switch self.upstream {
            case .ready(let current, _) where current == route && status.isActive:
                break
            case .ready:
                // The state moves on before the old upstream is closed (the actions run after this
                // returns): its close may report back synchronously, as a stale upstream's event.
                let connect = self.connect(route)
                actions += [.closeUpstream, connect]
            case .connecting, .none:
                actions.append(self.connect(route))
            }
        }
        switch self.upstream {
        case .ready:
            if case .end = part {
                actions.append(.writeUpstream(part, flush: true))
            } else {
                actions.append(.writeUpstream(part, flush: false))
            }
        case .connecting:
            self.pending.append(part)
        case .none:
            break  // the upstream went away mid-request; the answer is already on its way
        }
    }

    private mutating func connect(_ route: Route) -> Action {
        self.upstreamCount += 1
        self.upstream = .connecting(route, id: self.upstreamCount)
        return .connect(route, id: self.upstreamCount)
    }

    // MARK: Responses

    private mutating func respond(
        _ part: HTTPClientResponsePart, _ status: UpstreamStatus, route: (inout HTTPRequestHead) -> Routing
    ) -> [Action] {
        guard !self.answered else { return [] }
        switch part {
        case .head(var head):
            var actions = self.cancelAnswerTimer()
            self.responseHeadSent = true
            if head.status == .switchingProtocols && self.upgradeRequested {
                self.upgrading = true
            } else if self.configuration.isHTTP2 {
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
            actions.append(.writeClient(.head(head)))
            return actions
        case .body(let body):
            return [.writeClient(.body(.byteBuffer(body)))]
        case .end(let trailers):
            // The encoder doesn't know the request was a HEAD: a response without Content-Length
            // would get a chunked terminator, which the client would read as the start of the
            // next response. Nothing follows a HEAD response's head.
            let last: HTTPServerResponsePart = self.answeringHead ? .body(.byteBuffer(ByteBuffer())) : .end(trailers)
            // A response that ends the connection closes it only once written: a close drops
            // what a slow client hasn't taken yet (seen as a truncated 200 MiB download).
            let closing = !self.upgrading && !self.keepAlive
            var actions: [Action] = [.writeAndFlushClient(last, thenClose: closing)]
            guard !self.upgrading else { return actions }
            self.responseInFlight = false
            self.responseHeadSent = false
            if !closing && !self.requestInFlight {
                self.processQueue(status, route: route, into: &actions)
                actions += self.resumeReading(status)
            }
            return actions
        }
    }

    // MARK: Reading

    private func mayRead(_ status: UpstreamStatus) -> Bool {
        if self.answered { return true }  // drain, so that closing doesn't reset the answer away
        if self.upgrading || !self.queue.isEmpty { return false }
        if !self.requestInFlight && self.responseInFlight { return false }
        switch self.upstream {
        case .none: return true
        case .connecting: return false
        case .ready: return status.isWritable
        }
    }

    private mutating func resumeReading(_ status: UpstreamStatus) -> [Action] {
        guard self.readPending, self.mayRead(status) else { return [] }
        self.readPending = false
        return [.read]
    }

    // MARK: Answers and timers

    /// Answers the current request from the gateway, then closes the connection.
    private mutating func answer(_ answer: Answer, _ status: UpstreamStatus) -> [Action] {
        self.answered = true
        var actions = self.cancelAnswerTimer()
        let previous = self.upstream
        self.upstream = .none
        self.pending = []
        if case .ready = previous { actions.append(.closeUpstream) }
        actions.append(.answer(answer))
        actions += self.resumeReading(status)
        return actions
    }

    /// Starts the answer timeout once the whole request is written to a connected app.
    private mutating func startAnswerTimer() -> [Action] {
        guard !self.answerTimerArmed, !self.answered, !self.requestInFlight, self.responseInFlight, !self.responseHeadSent,
              case .ready(_, let id) = self.upstream else { return [] }
        self.answerTimerArmed = true
        return [.scheduleAnswerTimeout(upstream: id)]
    }

    private mutating func cancelAnswerTimer() -> [Action] {
        guard self.answerTimerArmed else { return [] }
        self.answerTimerArmed = false
        return [.cancelAnswerTimeout]
    }

    /// `30` for 30 s, `0.5` for 500 ms: a timeout as a person reads it.
    static func seconds(_ amount: TimeAmount) -> String {
        let seconds = Double(amount.nanoseconds) / 1e9
        return seconds == seconds.rounded() ? "\(Int(seconds))" : "\(seconds)"
    }

    /// Whether the upstream's response leaves the connection open. The response decoder judges
    /// keep-alive before it knows a HEAD response has no body: a head without a length looks like
    /// a body running to EOF, hence "close". For HEAD, only the Connection header and version count.
    static func keepsAlive(_ head: HTTPResponseHead, answeringHead: Bool) -> Bool {
        guard answeringHead else { return head.isKeepAlive }
        let headers = HTTPHeaders(head.headers.map { ($0.name, $0.value) })
        return HTTPResponseHead(version: head.version, status: head.status, headers: headers).isKeepAlive
    }
}
