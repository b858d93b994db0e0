import NIOCore
import NIOHTTP1
import Testing
@testable import Proxy

/// The framing of HTTP/1.x on exclusive ports as values: requests rewritten with the forwarding
/// headers, responses followed, each split at every byte.
@Suite("HTTP/1.x framing of exclusive ports")
struct HTTP1FramingTests {
    /// Everything the framer forwards for `stream` fed in pieces cut at `cuts`, and what it saw.
    static func frame(
        _ stream: String, cuts: [Int] = [], client: String? = "192.0.2.7", limit: Int = 1024
    ) -> (forwarded: String, requests: [ExclusiveRequestKind], refusal: ProxyConnectionStateMachine.Answer?, heads: Int) {
        var framer = ExclusiveRequestFramer(maxHeaderBytes: limit, clientAddress: client)
        let bytes = Array(stream.utf8)
        var forwarded = ""
        var requests: [ExclusiveRequestKind] = []
        var refusal: ProxyConnectionStateMachine.Answer?
        var heads = 0
        var start = 0
        for end in cuts + [bytes.count] where end >= start {
            let output = framer.feed(ByteBuffer(bytes: bytes[start..<end]))
            for buffer in output.forward { forwarded += String(buffer: buffer) }
            requests += output.requests
            if output.headCompleted { heads += 1 }
            if let answer = output.refusal { refusal = refusal ?? answer }
            start = end
        }
        return (forwarded, requests, refusal, heads)
    }

    static let pipelined =
        "GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n"
        + "POST /b HTTP/1.1\r\nhost: app.example\r\nContent-Length: 5\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-proto: https\r\n\r\nhello"
        + "PUT /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nTrailer: 1\r\n\r\n"
        + "\r\nHEAD /d HTTP/1.0\r\n\r\n"

    static let rewritten =
        "GET /a HTTP/1.1\r\nHost: app.example\r\nx-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\nx-forwarded-host: app.example\r\n\r\n"
        + "POST /b HTTP/1.1\r\nhost: app.example\r\nContent-Length: 5\r\nx-forwarded-for: 10.0.0.1, 192.0.2.7\r\nx-forwarded-proto: http\r\nx-forwarded-host: app.example\r\n\r\nhello"
        + "PUT /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nx-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\n\r\n5;x=y\r\nhello\r\n0\r\nTrailer: 1\r\n\r\n"
        + "HEAD /d HTTP/1.0\r\nx-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\n\r\n"

    @Test func pipelinedRequestsGetTheForwardingHeadersWhereverTheReadsSplitThem() {
        let whole = Self.frame(Self.pipelined)
        #expect(whole.forwarded == Self.rewritten)
        #expect(whole.requests == [.plain, .plain, .plain, .head])
        #expect(whole.refusal == nil)
        let count = Self.pipelined.utf8.count
        for cut in 1..<count {
            let split = Self.frame(Self.pipelined, cuts: [cut])
            #expect(split.forwarded == Self.rewritten, "cut at \(cut)")
            #expect(split.requests == [.plain, .plain, .plain, .head], "cut at \(cut)")
        }
        let byteByByte = Self.frame(Self.pipelined, cuts: Array(1..<count))
        #expect(byteByByte.forwarded == Self.rewritten)
        #expect(byteByByte.refusal == nil)
    }

    @Test func aRequestThatAsksToCloseEndsTheConversation() {
        for request in ["GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n", "GET / HTTP/1.0\r\n\r\n"] {
            var framer = ExclusiveRequestFramer(maxHeaderBytes: 1024, clientAddress: nil)
            let output = framer.feed(ByteBuffer(string: request + "GET /dropped HTTP/1.1\r\n\r\n"))
            #expect(output.lastRequestCloses, "\(request.debugDescription)")
            #expect(output.requests == [.plain])
            #expect(!output.forward.map { String(buffer: $0) }.joined().contains("dropped"))
            #expect(framer.isBetweenRequests)
        }
        var framer = ExclusiveRequestFramer(maxHeaderBytes: 1024, clientAddress: nil)
        #expect(!framer.feed(ByteBuffer(string: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")).lastRequestCloses)
        // The response to the second of two requests, the one that asked to close, is complete.
        var follower = ExclusiveResponseFollower()
        follower.requestForwarded(.plain)
        follower.requestForwarded(.plain, closes: true)
        #expect(follower.follow(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")).isEmpty)
        #expect(follower.follow(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n")).isEmpty)
        #expect(follower.follow(ByteBuffer(string: "b")) == [.closingResponseEnded])
    }

    @Test func withoutAClientAddressNoForwardedForIsAdded() {
        let framed = Self.frame("GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n", client: nil)
        #expect(framed.forwarded == "GET / HTTP/1.1\r\nx-forwarded-proto: http\r\n\r\n")
    }

    /// Each of these could be read two ways by two parsers (request smuggling) or breaks the
    /// grammar: it is refused whole, and nothing of it is forwarded.
    @Test(arguments: [
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n folded: value\r\n\r\n",
        "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\u{0}\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nno colon\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET /a b HTTP/1.1\r\n\r\n",
    ])
    func anAmbiguousOrMalformedRequestIsRefusedWhole(_ request: String) {
        for cuts in [[], Array(1..<request.utf8.count)] {
            let framed = Self.frame(request, cuts: cuts)
            #expect(framed.refusal?.status == .badRequest, "\(request.debugDescription) cut \(cuts.count) times: \(String(describing: framed.refusal))")
            #expect(!framed.forwarded.contains("x-forwarded-for"), "\(request.debugDescription) was forwarded: \(framed.forwarded.debugDescription)")
        }
    }

    /// The head is fine and goes; the chunked body's framing breaks: nothing from the bad byte on
    /// goes, so no request can hide behind it.
    @Test(arguments: [
        "zz\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        "5\r\nhelloXXGET /smuggled HTTP/1.1\r\n\r\n",
        "1000000000000000\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        "5\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        "0\r\nbad\u{1}trailer\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    ])
    func aBodyErrorStopsForwardingAtTheBadByte(_ body: String) {
        let request = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        for cuts in [[], Array(1..<request.utf8.count)] {
            let framed = Self.frame(request, cuts: cuts)
            #expect(framed.refusal?.status == .badRequest, "\(body.debugDescription)")
            #expect(framed.forwarded.hasPrefix("POST / HTTP/1.1\r\n"))
            #expect(!framed.forwarded.contains("smuggled"), "\(body.debugDescription)")
        }
    }

    @Test func aHeadOverTheLimitGets431AndConnectGets405() {
        let big = "GET / HTTP/1.1\r\nX-Pad: \(String(repeating: "a", count: 2000))\r\n\r\n"
        #expect(Self.frame(big).refusal?.status == .requestHeaderFieldsTooLarge)
        #expect(Self.frame(big, cuts: Array(stride(from: 100, to: 2000, by: 100))).refusal?.status == .requestHeaderFieldsTooLarge)
        let connect = Self.frame("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")
        #expect(connect.refusal?.status == .methodNotAllowed)
        #expect(connect.forwarded.isEmpty)
    }

    @Test func bytesAfterAnUpgradeRequestWaitForTheAppsAnswer() {
        let upgrade = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        // Accepted: what follows passes as it is, however much it looks like HTTP.
        var framer = ExclusiveRequestFramer(maxHeaderBytes: 1024, clientAddress: "192.0.2.7")
        var output = framer.feed(ByteBuffer(string: upgrade + "\u{81}\u{05}frame GET / HTTP/1.1\r\n\r\n"))
        #expect(output.requests == [.upgrade])
        #expect(output.forward.count == 1)
        #expect(framer.isHolding)
        output = framer.feed(ByteBuffer(string: "more"))
        #expect(output.forward.isEmpty)
        output = framer.upgradeAnswered(switched: true)
        #expect(output.forward.map { String(buffer: $0) }.joined() == "\u{81}\u{05}frame GET / HTTP/1.1\r\n\r\nmore")
        #expect(!framer.isHolding && framer.isTunnel)

        // Declined: what follows is read as requests again, with the forwarding headers.
        framer = ExclusiveRequestFramer(maxHeaderBytes: 1024, clientAddress: "192.0.2.7")
        _ = framer.feed(ByteBuffer(string: upgrade + "GET /next HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"))
        output = framer.upgradeAnswered(switched: false)
        #expect(output.forward.map { String(buffer: $0) }.joined()
            == "GET /next HTTP/1.1\r\nx-forwarded-for: 6.6.6.6, 192.0.2.7\r\nx-forwarded-proto: http\r\n\r\n")
        #expect(output.requests == [.plain])
    }

    // MARK: Responses

    /// Follows `stream` cut at `cuts` after `requests` were forwarded; the events, and whether it
    /// ends idle.
    static func follow(_ stream: String, after requests: [ExclusiveRequestKind], cuts: [Int] = []) -> (events: [ExclusiveResponseFollower.Event], idle: Bool, awaiting: Bool) {
        var follower = ExclusiveResponseFollower()
        for kind in requests { follower.requestForwarded(kind) }
        let bytes = Array(stream.utf8)
        var events: [ExclusiveResponseFollower.Event] = []
        var start = 0
        for end in cuts + [bytes.count] where end >= start {
            events += follower.follow(ByteBuffer(bytes: bytes[start..<end]))
            start = end
        }
        return (events, follower.isIdle, follower.isAwaitingAnswer)
    }

    static let responses =
        "HTTP/1.1 100 Continue\r\n\r\n"
        + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        + "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"  // to a HEAD: no body
        + "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        + "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
        + "HTTP/1.1 304 Not Modified\r\n\r\n"

    @Test func responsesAreFollowedToTheirEndsWhereverTheReadsSplitThem() {
        let requests: [ExclusiveRequestKind] = [.plain, .head, .plain, .plain, .plain]
        let count = Self.responses.utf8.count
        for cuts in [[]] + (1..<count).map({ [$0] }) + [Array(1..<count)] {
            let followed = Self.follow(Self.responses, after: requests, cuts: cuts)
            #expect(followed.events.isEmpty, "cuts \(cuts)")
            #expect(followed.idle, "cuts \(cuts)")
        }
        // One response short: the last request is still owed its answer.
        let owed = Self.follow(Self.responses, after: requests + [.plain])
        #expect(!owed.idle && owed.awaiting)
        // In the middle of a body: neither idle nor awaiting a first byte.
        let inBody = Self.follow("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", after: [.plain])
        #expect(!inBody.idle && !inBody.awaiting)
    }

    @Test func anUpgradeAnswerIsRecognized() {
        let switched = Self.follow("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\u{81}\u{02}hi", after: [.upgrade], cuts: [5, 30])
        #expect(switched.events == [.switched])
        let declined = Self.follow("HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno", after: [.upgrade])
        #expect(declined.events == [.upgradeDeclined])
        #expect(declined.idle)
        // A 101 nobody asked for, an answer nobody asked for, or something else than HTTP/1.x: lost.
        #expect(Self.follow("HTTP/1.1 101 Switching Protocols\r\n\r\n", after: [.plain]).events == [.lost])
        #expect(Self.follow("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", after: []).events == [.lost])
        #expect(Self.follow("SSH-2.0-OpenSSH\r\n", after: [.plain]).events == [.lost])
        #expect(Self.follow("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", after: [.plain]).events == [.lost])
    }

    /// A header line longer than the 8 KiB kept of it is read by its start, whether it came in
    /// one read or in several: a long ordinary header passes, a framing header that long can't be
    /// trusted.
    @Test func aHeaderLineLongerThanTheLimitIsReadTheSameWhateverTheReads() {
        let long = "HTTP/1.1 200 OK\r\nX-Padding: " + String(repeating: "p", count: 10_000) + "\r\nContent-Length: 2\r\n\r\nok"
        let longLength = "HTTP/1.1 200 OK\r\nContent-Length: " + String(repeating: " ", count: 10_000) + "2\r\n\r\nok"
        let count = long.utf8.count
        for cuts in [[], [20], [8_000], [8_300], [10_020], [20, 8_200, 10_025], Array(stride(from: 1, to: count, by: 997))] {
            let followed = Self.follow(long, after: [.plain], cuts: cuts)
            #expect(followed.events.isEmpty && followed.idle, "cuts \(cuts)")
            #expect(Self.follow(longLength, after: [.plain], cuts: cuts).events == [.lost], "cuts \(cuts)")
        }
    }

    @Test func aBodyThatEndsWithTheConnectionIsNeverIdle() {
        let followed = Self.follow("HTTP/1.0 200 OK\r\n\r\nall of it until the close", after: [.plain, .plain])
        #expect(followed.events.isEmpty)
        #expect(!followed.idle && !followed.awaiting)
    }
}
