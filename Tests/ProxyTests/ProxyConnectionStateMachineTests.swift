import NIOCore
import NIOHTTP1
import Testing
@testable import Proxy

/// `ProxyConnectionStateMachine` driven event by event, without a channel: each test feeds what
/// the handler would see and checks the actions it would carry out.
@Suite("Proxy connection state machine")
struct ProxyConnectionStateMachineTests {
    typealias Machine = ProxyConnectionStateMachine

    static let routeA = Route(runID: "run-a", upstream: "node-a", appPort: 8080)
    static let routeB = Route(runID: "run-b", upstream: "node-b", appPort: 9090)
    static let live = Machine.UpstreamStatus(isActive: true, isWritable: true)

    static func machine(http2: Bool = false) -> Machine {
        Machine(configuration: .init(isHTTP2: http2, retryAfterSeconds: 7, answerTimeout: .seconds(30), maxHeaderBytes: 16384))
    }

    static func head(_ method: HTTPMethod = .GET, host: String = "a.example", _ extra: [(String, String)] = [],
                     version: HTTPVersion = .http1_1) -> HTTPServerRequestPart {
        .head(HTTPRequestHead(version: version, method: method, uri: "/", headers: HTTPHeaders([("host", host)] + extra)))
    }

    /// Routes `b.example` to B and everything else to A, as the ingress's lookup would.
    static func route(_ head: inout HTTPRequestHead) -> Machine.Routing {
        head.headers.first(name: "host") == "b.example" ? .forward(routeB) : .forward(routeA)
    }

    static func response(_ status: HTTPResponseStatus = .ok, _ headers: [(String, String)] = [("content-length", "2")]) -> UpstreamHTTPEvent {
        .response(.head(HTTPResponseHead(version: .http1_1, status: status, headers: HTTPHeaders(headers))), upstream: 1)
    }

    /// A readable name per action, so a whole sequence is compared at once.
    static func names(_ actions: [Machine.Action]) -> [String] {
        actions.map { action in
            switch action {
            case .headReceived: return "head timer: head"
            case .requestEnded: return "head timer: end"
            case .connect(let route, let id): return "connect \(route.runID) #\(id)"
            case .writeUpstream(let part, let flush):
                let name: String
                switch part {
                case .head(let head): name = "head \(head.method)"
                case .body: name = "body"
                case .end: name = "end"
                }
                return flush ? "upstream \(name)+flush" : "upstream \(name)"
            case .flushUpstream: return "flush upstream"
            case .closeUpstream: return "close upstream"
            case .notifyUpstreamWritable: return "upstream may read"
            case .writeClient(let part), .writeAndFlushClient(let part, _):
                let name: String
                switch part {
                case .head(let head): name = "head \(head.status.code)"
                case .body(let body): name = body.readableBytes == 0 ? "empty body" : "body"
                case .end: name = "end"
                }
                if case .writeAndFlushClient(_, let close) = action { return close ? "client \(name)+flush+close" : "client \(name)+flush" }
                return "client \(name)"
            case .flushClient: return "flush client"
            case .closeClient: return "close client"
            case .answer(let answer): return "answer \(answer.status.code)"
            case .scheduleAnswerTimeout(let id): return "answer timeout #\(id)"
            case .cancelAnswerTimeout: return "cancel answer timeout"
            case .countTimeout(let timeout): return "count \(timeout)"
            case .read: return "read"
            case .switchToBytes(let pending): return "splice (read pending: \(pending))"
            }
        }
    }

    static func answers(_ actions: [Machine.Action]) -> [Machine.Answer] {
        actions.compactMap { if case .answer(let answer) = $0 { return answer } else { return nil } }
    }

    static func responseHeads(_ actions: [Machine.Action]) -> [HTTPResponseHead] {
        actions.compactMap { if case .writeClient(.head(let head)) = $0 { return head } else { return nil } }
    }

    static func forwardedHeads(_ actions: [Machine.Action]) -> [HTTPRequestHead] {
        actions.compactMap { if case .writeUpstream(.head(let head), _) = $0 { return head } else { return nil } }
    }

    /// Sends one GET whole and connects its upstream (#1): the state of a request waiting for its answer.
    static func requestSent(_ m: inout Machine, _ extra: [(String, String)] = []) -> [String] {
        var actions = m.requestPart(head(.GET, extra), upstream: .absent, route: route)
        actions += m.requestPart(.end(nil), upstream: .absent, route: route)
        guard case .use(let connected) = m.upstreamConnected(id: 1, clientActive: true, upstream: live) else { return ["discarded"] }
        return names(actions + connected)
    }

    // MARK: One exchange

    @Test func aRequestConnectsItsRouteThenGoesUpstreamWithTheAnswerTimeout() {
        var m = Self.machine()
        #expect(Self.names(m.requestPart(Self.head(), upstream: .absent, route: Self.route)) == ["head timer: head", "connect run-a #1"])
        #expect(m.readRequested(upstream: .absent) == false, "reads are held while the upstream connects")
        #expect(Self.names(m.requestPart(.end(nil), upstream: .absent, route: Self.route)) == ["head timer: end"], "held until connected")
        guard case .use(let connected) = m.upstreamConnected(id: 1, clientActive: true, upstream: Self.live) else {
            Issue.record("the connected upstream was discarded")
            return
        }
        #expect(Self.names(connected) == ["upstream head GET", "upstream end", "flush upstream", "answer timeout #1"])
        #expect(Self.names(m.upstreamEvent(Self.response(), upstream: Self.live, route: Self.route))
            == ["cancel answer timeout", "client head 200"])
        #expect(Self.names(m.upstreamEvent(.response(.body(ByteBuffer(string: "ok")), upstream: 1), upstream: Self.live, route: Self.route))
            == ["client body"])
        #expect(Self.names(m.upstreamEvent(.response(.end(nil), upstream: 1), upstream: Self.live, route: Self.route))
            == ["client end+flush", "read"], "keep-alive: the connection stays open, the held read goes")
        #expect(m.readRequested(upstream: Self.live) == true, "the next request may be read")
    }

    @Test func aHeldReadResumesOnceTheUpstreamConnects() {
        var m = Self.machine()
        _ = m.requestPart(Self.head(), upstream: .absent, route: Self.route)
        #expect(m.readRequested(upstream: .absent) == false)
        guard case .use(let connected) = m.upstreamConnected(id: 1, clientActive: true, upstream: Self.live) else {
            Issue.record("discarded")
            return
        }
        #expect(Self.names(connected) == ["upstream head GET", "flush upstream", "read"])
    }

    @Test func aConnectionThatCompletesAfterTheClientLeftIsDiscarded() {
        var m = Self.machine()
        _ = m.requestPart(Self.head(), upstream: .absent, route: Self.route)
        _ = m.clientInactive()
        guard case .discard = m.upstreamConnected(id: 1, clientActive: false, upstream: Self.live) else {
            Issue.record("an upstream for a closed client was used")
            return
        }
    }

    @Test func aHEADResponseEndsWithoutAChunkedTerminator() {
        var m = Self.machine()
        _ = m.requestPart(Self.head(.HEAD), upstream: .absent, route: Self.route)
        _ = m.requestPart(.end(nil), upstream: .absent, route: Self.route)
        _ = m.upstreamConnected(id: 1, clientActive: true, upstream: Self.live)
        _ = m.upstreamEvent(Self.response(.ok, [("content-length", "100")]), upstream: Self.live, route: Self.route)
        #expect(Self.names(m.upstreamEvent(.response(.end(nil), upstream: 1), upstream: Self.live, route: Self.route))
            == ["client empty body+flush"])
    }

    @Test func connectIsRefusedWith405() {
        var m = Self.machine()
        let actions = m.requestPart(Self.head(.CONNECT), upstream: .absent, route: Self.route)
        #expect(Self.names(actions) == ["head timer: head", "answer 405"])
        #expect(Self.answers(actions).first?.headers.first?.name == "allow")
        #expect(m.requestPart(.end(nil), upstream: .absent, route: Self.route).isEmpty, "the rest of an answered request is drained")
        #expect(m.readRequested(upstream: .absent) == true, "reads go on after an answer, so the close does not reset it away")
    }

    @Test func theRoutersAnswerIsSentAndNothingIsConnected() {
        var m = Self.machine()
        let actions = m.requestPart(Self.head(), upstream: .absent) { _ in
            .answer(.init(status: .notFound, text: "no service\n"))
        }
        #expect(Self.names(actions) == ["head timer: head", "answer 404"])
    }

    // MARK: Pipelining

    @Test func aPipelinedRequestWaitsForTheResponseBeforeIt() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        // The client sends the next request before the first is answered.
        #expect(Self.names(m.requestPart(Self.head(), upstream: Self.live, route: Self.route)) == ["head timer: head"], "queued, not forwarded")
        #expect(Self.names(m.requestPart(.end(nil), upstream: Self.live, route: Self.route)) == ["head timer: end"])
        #expect(m.readRequested(upstream: Self.live) == false, "reads are held while requests are queued")
        _ = m.upstreamEvent(Self.response(), upstream: Self.live, route: Self.route)
        // The first response ends: the queued request goes up the same upstream, no new connection.
        #expect(Self.names(m.upstreamEvent(.response(.end(nil), upstream: 1), upstream: Self.live, route: Self.route))
            == ["client end+flush", "upstream head GET", "upstream end+flush", "answer timeout #1"])
        #expect(m.readRequested(upstream: Self.live) == false, "no third request is read while the second waits for its answer")
    }

    @Test func aPipelinedRequestForAnotherRouteGetsANewUpstreamAndTheOldOnesEventsAreIgnored() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        _ = m.requestPart(Self.head(host: "b.example"), upstream: Self.live, route: Self.route)
        _ = m.requestPart(.end(nil), upstream: Self.live, route: Self.route)
        _ = m.upstreamEvent(Self.response(), upstream: Self.live, route: Self.route)
        #expect(Self.names(m.upstreamEvent(.response(.end(nil), upstream: 1), upstream: Self.live, route: Self.route))
            == ["client end+flush", "close upstream", "connect run-b #2"])
        #expect(m.upstreamEvent(.closed(upstream: 1), upstream: .absent, route: Self.route).isEmpty, "the old upstream's close is stale")
        guard case .use(let connected) = m.upstreamConnected(id: 2, clientActive: true, upstream: Self.live) else {
            Issue.record("discarded")
            return
        }
        #expect(Self.names(connected) == ["upstream head GET", "upstream end", "flush upstream", "answer timeout #2"])
        #expect(m.currentUpstream == 2)
    }

    @Test func aDeadUpstreamOfTheSameRouteIsReplaced() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        _ = m.upstreamEvent(Self.response(), upstream: Self.live, route: Self.route)
        _ = m.upstreamEvent(.response(.end(nil), upstream: 1), upstream: Self.live, route: Self.route)
        let dead = Machine.UpstreamStatus(isActive: false, isWritable: false)
        #expect(Self.names(m.requestPart(Self.head(), upstream: dead, route: Self.route)) == ["head timer: head", "close upstream", "connect run-a #2"])
    }

    // MARK: Timeouts (408, 504)

    @Test func aLateRequestHeadIsAnswered408() {
        var m = Self.machine()
        let actions = m.requestHeadTimedOut(after: .milliseconds(500), upstream: .absent)
        #expect(Self.names(actions) == ["count requestHead", "answer 408"])
        #expect(Self.answers(actions).first?.text.contains("within 0.5 s") == true)
    }

    @Test func aLatePipelinedHeadDuringAResponseClosesTheConnection() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        _ = m.upstreamEvent(Self.response(), upstream: Self.live, route: Self.route)
        #expect(Self.names(m.requestHeadTimedOut(after: .seconds(10), upstream: Self.live)) == ["close client"])
    }

    @Test func anAppThatSendsNoResponseIsAnswered504() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        let actions = m.answerTimedOut(upstream: 1, upstream: Self.live)
        #expect(Self.names(actions) == ["count answer", "close upstream", "answer 504"])
        #expect(Self.answers(actions).first?.text.contains("within 30 s") == true)
        #expect(m.upstreamEvent(Self.response(), upstream: Self.live, route: Self.route).isEmpty, "a response after the 504 is dropped")
    }

    @Test func anAnswerTimeoutOfAnOldUpstreamOrAfterTheHeadIsIgnored() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        #expect(m.answerTimedOut(upstream: 7, upstream: Self.live).isEmpty)
        _ = m.upstreamEvent(Self.response(), upstream: Self.live, route: Self.route)
        #expect(m.answerTimedOut(upstream: 1, upstream: Self.live).isEmpty)
    }

    // MARK: Connection failures (502, 503, 504)

    struct Failure: Sendable {
        var error: ProxyError
        var status: Int
        var text: String
        var retryAfter: Bool
    }

    @Test(arguments: [
        Failure(error: .upstreamNotConnected(routeA), status: 503, text: "is unreachable", retryAfter: true),
        Failure(error: .overloaded(routeA, limit: "10 connections"), status: 503, text: "limit of 10 connections", retryAfter: true),
        Failure(error: .upstreamTimedOut(routeA, seconds: 5), status: 504, text: "within 5 s", retryAfter: false),
        Failure(error: .upstreamRefused(routeA), status: 502, text: "does not accept on port 8080", retryAfter: false),
    ])
    func aFailedConnectionIsAnsweredInTheClientsTerms(failure: Failure) {
        var m = Self.machine()
        _ = m.requestPart(Self.head(), upstream: .absent, route: Self.route)
        let actions = m.upstreamConnectFailed(id: 1, error: failure.error, clientActive: true)
        #expect(Self.names(actions) == ["answer \(failure.status)"])
        let answer = Self.answers(actions).first
        #expect(answer?.text.contains(failure.text) == true, "\(answer?.text ?? "no answer")")
        #expect((answer?.headers.contains { $0.name == "retry-after" && $0.value == "7" } ?? false) == failure.retryAfter)
    }

    @Test func aStaleConnectionFailureIsIgnored() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        #expect(m.upstreamConnectFailed(id: 1, error: ProxyError.upstreamRefused(Self.routeA), clientActive: true).isEmpty)
    }

    // MARK: The upstream closes

    @Test func anUpstreamClosingBeforeItsAnswerIsAnswered502() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        #expect(Self.names(m.upstreamEvent(.closed(upstream: 1), upstream: .absent, route: Self.route))
            == ["cancel answer timeout", "close upstream", "answer 502"])
    }

    @Test func anUpstreamClosingMidBodyDeliversWhatCameThenCloses() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        _ = m.upstreamEvent(Self.response(.ok, [("content-length", "1000")]), upstream: Self.live, route: Self.route)
        _ = m.upstreamEvent(.response(.body(ByteBuffer(string: "part")), upstream: 1), upstream: Self.live, route: Self.route)
        #expect(Self.names(m.upstreamEvent(.closed(upstream: 1), upstream: .absent, route: Self.route))
            == ["close upstream", "client empty body+flush+close"])
    }

    @Test func anIdleUpstreamClosingLeavesTheClientOpen() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        _ = m.upstreamEvent(Self.response(), upstream: Self.live, route: Self.route)
        _ = m.upstreamEvent(.response(.end(nil), upstream: 1), upstream: Self.live, route: Self.route)
        #expect(Self.names(m.upstreamEvent(.closed(upstream: 1), upstream: .absent, route: Self.route)) == ["close upstream"])
        #expect(Self.names(m.requestPart(Self.head(), upstream: .absent, route: Self.route)) == ["head timer: head", "connect run-a #2"])
    }

    // MARK: The client closes

    @Test func anIdleClientsHalfCloseClosesTheConnection() {
        var m = Self.machine()
        #expect(Self.names(m.clientInputClosed()) == ["close client"])
    }

    @Test func aHalfCloseDuringARequestIsAnsweredThenClosed() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        #expect(m.clientInputClosed().isEmpty)
        let head = Self.responseHeads(m.upstreamEvent(Self.response(), upstream: Self.live, route: Self.route)).first
        #expect(head?.headers.first(name: "connection") == "close")
        #expect(Self.names(m.upstreamEvent(.response(.end(nil), upstream: 1), upstream: Self.live, route: Self.route))
            == ["client end+flush+close"])
    }

    @Test func aClientThatGoesClosesItsUpstream() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        #expect(Self.names(m.clientInactive()) == ["cancel answer timeout", "close upstream"])
        #expect(m.currentUpstream == nil)
    }

    @Test func anUpstreamResponseWithoutKeepAliveClosesTheClientAfterIt() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        let head = Self.responseHeads(m.upstreamEvent(Self.response(.ok, [("connection", "close")]), upstream: Self.live, route: Self.route))
        #expect(head.first?.headers.first(name: "connection") == "close")
        #expect(Self.names(m.upstreamEvent(.response(.end(nil), upstream: 1), upstream: Self.live, route: Self.route))
            == ["client end+flush+close"])
    }

    // MARK: Upgrades

    @Test func anAcceptedUpgradeBecomesASplice() {
        var m = Self.machine()
        let sent = Self.requestSent(&m, [("connection", "upgrade"), ("upgrade", "websocket")])
        #expect(sent.contains("connect run-a #1"))
        let head = Self.responseHeads(m.upstreamEvent(
            Self.response(.switchingProtocols, [("connection", "upgrade"), ("upgrade", "websocket")]), upstream: Self.live, route: Self.route))
        #expect(head.first?.headers.first(name: "connection") == "upgrade", "a 101 is passed on as it is")
        #expect(Self.names(m.upstreamEvent(.response(.end(nil), upstream: 1), upstream: Self.live, route: Self.route))
            == ["client end+flush"], "no close after a 101")
        #expect(m.readRequested(upstream: Self.live) == false, "reads are held until the splice takes over")
        #expect(Self.names(m.upstreamEvent(.upgraded(upstream: 1), upstream: Self.live, route: Self.route))
            == ["splice (read pending: true)"])
    }

    @Test func aDeclinedUpgradeEndsTheConnectionAfterItsResponse() {
        var m = Self.machine()
        _ = Self.requestSent(&m, [("connection", "upgrade"), ("upgrade", "websocket")])
        let head = Self.responseHeads(m.upstreamEvent(Self.response(), upstream: Self.live, route: Self.route))
        #expect(head.first?.headers.first(name: "connection") == "close")
        #expect(Self.names(m.upstreamEvent(.response(.end(nil), upstream: 1), upstream: Self.live, route: Self.route))
            == ["client end+flush+close"])
    }

    @Test func anUpstreamThatClosesDuringAnUpgradeClosesTheClientAfterWhatItSent() {
        var m = Self.machine()
        _ = Self.requestSent(&m, [("connection", "upgrade"), ("upgrade", "websocket")])
        _ = m.upstreamEvent(Self.response(.switchingProtocols, [("upgrade", "websocket")]), upstream: Self.live, route: Self.route)
        _ = m.upstreamEvent(.response(.end(nil), upstream: 1), upstream: Self.live, route: Self.route)
        #expect(Self.names(m.upstreamEvent(.closed(upstream: 1), upstream: .absent, route: Self.route))
            == ["close upstream", "client empty body+flush+close"])
    }

    // MARK: HTTP/2 streams

    @Test func anHTTP2StreamIsForwardedAsHTTP11WithoutUpgradeOrHopHeaders() {
        var m = Self.machine(http2: true)
        _ = m.requestPart(Self.head(.GET, [("upgrade", "websocket")], version: .http2), upstream: .absent, route: Self.route)
        guard case .use(let connected) = m.upstreamConnected(id: 1, clientActive: true, upstream: Self.live) else {
            Issue.record("discarded")
            return
        }
        let forwarded = Self.forwardedHeads(connected).first
        #expect(forwarded?.version == .http1_1)
        #expect(forwarded?.headers.contains(name: "upgrade") == false)
        _ = m.requestPart(.end(nil), upstream: Self.live, route: Self.route)
        let head = Self.responseHeads(m.upstreamEvent(
            Self.response(.ok, [("connection", "keep-alive"), ("keep-alive", "timeout=5"), ("transfer-encoding", "chunked")]),
            upstream: Self.live, route: Self.route)).first
        #expect(head?.headers.contains(name: "connection") == false)
        #expect(head?.headers.contains(name: "keep-alive") == false)
        #expect(head?.headers.contains(name: "transfer-encoding") == false)
    }

    // MARK: Malformed requests and backpressure

    @Test func malformedRequestsAreAnswered400Or431() {
        var m = Self.machine()
        let overflow = m.clientError(HTTPParserError.headerOverflow, upstream: .absent)
        #expect(Self.names(overflow) == ["answer 431"])
        #expect(Self.answers(overflow).first?.text.contains("16384 bytes") == true)
        #expect(m.clientError(HTTPParserError.invalidMethod, upstream: .absent).isEmpty, "one answer per connection")
        var other = Self.machine()
        #expect(Self.names(other.clientError(HTTPParserError.invalidMethod, upstream: .absent)) == ["answer 400"])
    }

    @Test func aParserErrorAfterTheResponseHeadClosesTheConnection() {
        var m = Self.machine()
        _ = Self.requestSent(&m)
        _ = m.upstreamEvent(Self.response(), upstream: Self.live, route: Self.route)
        #expect(Self.names(m.clientError(HTTPParserError.invalidMethod, upstream: Self.live)) == ["close client"])
    }

    @Test func readsWaitForAnUpstreamThatCannotTakeMore() {
        var m = Self.machine()
        _ = m.requestPart(Self.head(.POST), upstream: .absent, route: Self.route)
        _ = m.upstreamConnected(id: 1, clientActive: true, upstream: Self.live)
        let full = Machine.UpstreamStatus(isActive: true, isWritable: false)
        #expect(m.readRequested(upstream: full) == false)
        #expect(Self.names(m.upstreamEvent(.writable(upstream: 1), upstream: Self.live, route: Self.route)) == ["read"])
        #expect(Self.names(m.clientWritable()) == ["upstream may read"])
        #expect(Self.names(m.clientReadComplete()) == ["flush upstream"])
    }
}
