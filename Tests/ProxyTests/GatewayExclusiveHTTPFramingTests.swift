import Foundation
import NIOCore
import Testing
@testable import Proxy

/// HTTP on an exclusive port through a real gateway: requests carry the forwarding headers, the
/// app's bytes pass untouched, and the gateway's own answers land between responses, never in one.
@Suite("Gateway: HTTP framing on exclusive ports", .timeLimit(.minutes(5)))
struct GatewayExclusiveHTTPFramingTests {
    static func exchange(_ address: SocketAddress, _ text: String) async throws -> String {
        try await withTimeout(30) {
            String(buffer: try await TestClient.exchange(address, send: ByteBuffer(string: text), halfClose: false))
        }
    }

    /// A HEAD (a response head with no body although nothing says so), a GET, then a request
    /// with two Host headers: the 400 comes after both responses, whole.
    @Test(arguments: Lab.UpstreamLoops.allCases)
    func aRefusalWaitsForTheResponsesOwedBeforeIt(upstreams: Lab.UpstreamLoops) async throws {
        let app = try await TestServer.start { try $0.pipeline.syncOperations.addHandler(RawHTTPApp()) }
        let (lab, address) = try await Lab.exclusive(app: app, upstreams: upstreams)
        let response = try await Self.exchange(
            address,
            "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\nGET /z HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        let parts = response.components(separatedBy: "HTTP/1.1 ")
        #expect(parts.count == 4, "\(response.debugDescription)")
        #expect(parts.dropFirst().first?.hasPrefix("200 OK\r\ncontent-type: text/plain\r\n\r\n") == true, "\(response.debugDescription)")
        #expect(parts.dropFirst(2).first == "200 OK\r\ncontent-length: 5\r\n\r\nhello", "\(response.debugDescription)")
        #expect(parts.last?.hasPrefix("400 Bad Request\r\n") == true, "\(response.debugDescription)")
        #expect(parts.last?.contains("more than one Host header") == true)
        await app.close()
        await lab.stop()
    }

    /// A request that two parsers could read two ways never reaches the app, nor what hides in it.
    @Test func aSmugglingAttemptGets400AndTheAppSeesNothing() async throws {
        let seen = HeadLog()
        let app = try await TestServer.start { try $0.pipeline.syncOperations.addHandler(HeadEchoApp(log: seen)) }
        let (lab, address) = try await Lab.exclusive(app: app)
        let response = try await Self.exchange(
            address,
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(response.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(response.debugDescription)")
        #expect(response.contains("both Content-Length and Transfer-Encoding"))
        #expect(!response.contains("/admin"))
        #expect(seen.heads.isEmpty, "the app saw \(seen.heads)")
        await app.close()
        await lab.stop()
    }

    /// A chunked body and the client's own forwarding headers: the app gets the body unchanged,
    /// the client's X-Forwarded-For with the gateway's address added, and the request after it.
    @Test func aChunkedBodyPassesAndTheNextRequestIsFramedAfterIt() async throws {
        let seen = HeadLog()
        let app = try await TestServer.start { try $0.pipeline.syncOperations.addHandler(HeadEchoApp(log: seen)) }
        let (lab, address) = try await Lab.exclusive(app: app)
        let response = try await Self.exchange(
            address,
            "POST /up HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: evil\r\n\r\n"
                + "4\r\nGET \r\n0\r\n\r\n"
                + "GET /after HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
        let heads = seen.heads
        #expect(heads.count == 2, "\(heads) / \(response.debugDescription)")
        #expect(heads.first?.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\r\n") == true, "\(heads)")
        #expect(heads.first?.contains("x-forwarded-host: a.example\r\n") == true)
        #expect(heads.first?.contains("evil") == false)
        #expect(heads.last?.hasPrefix("GET /after HTTP/1.1\r\n") == true)
        #expect(heads.last?.contains("x-forwarded-for: 127.0.0.1\r\n") == true)
        #expect(seen.bodies.first == "4\r\nGET \r\n0\r\n\r\n", "\(seen.bodies)")
        await app.close()
        await lab.stop()
    }

    /// The app answers an upgrade request without switching: the next request is read as HTTP
    /// again and gets the forwarding headers (a client can't slip past them by asking to upgrade).
    @Test func aDeclinedUpgradeLeavesTheConnectionSpeakingHTTP() async throws {
        let seen = HeadLog()
        let app = try await TestServer.start { try $0.pipeline.syncOperations.addHandler(HeadEchoApp(log: seen)) }
        let (lab, address) = try await Lab.exclusive(app: app)
        _ = try await Self.exchange(
            address,
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                + "GET /next HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n")
        let heads = seen.heads
        #expect(heads.count == 2, "\(heads)")
        #expect(heads.last?.contains("x-forwarded-for: 6.6.6.6, 127.0.0.1\r\n") == true, "\(heads)")
        await app.close()
        await lab.stop()
    }

    @Test(arguments: Lab.UpstreamLoops.allCases)
    func anAppThatNeverAnswersGets504(upstreams: Lab.UpstreamLoops) async throws {
        let silent = try await TestServer.start { try $0.pipeline.syncOperations.addHandler(SilentApp()) }
        var configuration = ProxyConfiguration()
        configuration.answerTimeout = .milliseconds(500)
        let (lab, address) = try await Lab.exclusive(app: silent, configuration: configuration, upstreams: upstreams)
        let response = try await Self.exchange(address, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(response.hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"), "\(response.debugDescription)")
        #expect(response.contains("service \"run-1\" did not answer: its app accepted the connection but sent no response within 0.5 s"))
        #expect(lab.gateway.connectionCounts.answerTimeouts == 1)
        await silent.close()
        await lab.stop()
    }

    @Test func aStalledHeadGets408() async throws {
        let app = try await TestServer.http(name: "app")
        var configuration = ProxyConfiguration()
        configuration.requestHeadTimeout = .milliseconds(300)
        let (lab, address) = try await Lab.exclusive(app: app, configuration: configuration)
        let response = try await Self.exchange(address, "GET /hello HTTP/1.1\r\nHost: a.exa")
        #expect(response.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(response.debugDescription)")
        #expect(lab.gateway.connectionCounts.requestHeadTimeouts == 1)
        await app.close()
        await lab.stop()
    }

    @Test func anAppThatClosesWithoutAnAnswerGets502() async throws {
        let closing = try await TestServer.start { try $0.pipeline.syncOperations.addHandler(CloseOnReadApp()) }
        let (lab, address) = try await Lab.exclusive(app: closing)
        let response = try await Self.exchange(address, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(response.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(response.debugDescription)")
        #expect(response.contains("the service closed the connection without an answer"))
        await closing.close()
        await lab.stop()
    }

    @Test func aRunnerWithoutALinkGets503WithRetryAfter() async throws {
        let lab = try await Lab.start()
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addExclusive(Route(runID: "api-1", upstream: "absent-runner", appPort: 1), on: listen)
        #expect(await lab.gateway.apply(table).isEmpty)
        let response = try await Self.exchange(try await lab.socketAddress(of: listen), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(response.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), "\(response.debugDescription)")
        #expect(response.lowercased().contains("retry-after: 5\r\n"))
        #expect(response.contains("service \"api-1\" is unreachable"))
        await lab.stop()
    }
}

extension Lab {
    /// A lab whose gateway holds a port of its own exclusively for `app`; the port's address.
    static func exclusive(
        app: TestServer, configuration: ProxyConfiguration = .init(), upstreams: UpstreamLoops = .clientLoop
    ) async throws -> (Lab, SocketAddress) {
        let lab = try await Lab.start(configuration: configuration, upstreams: upstreams)
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addExclusive(lab.route(app), on: listen)
        #expect(await lab.gateway.apply(table).isEmpty)
        return (lab, try await lab.socketAddress(of: listen))
    }
}

/// The request heads and bodies an app received, in order.
final class HeadLog: @unchecked Sendable {
    private let lock = NSLock()
    private var storedHeads: [String] = []
    private var storedBodies: [String] = []
    var heads: [String] { self.lock.withLock { self.storedHeads } }
    var bodies: [String] { self.lock.withLock { self.storedBodies } }
    func add(head: String) { self.lock.withLock { self.storedHeads.append(head) } }
    func add(body: String) { self.lock.withLock { self.storedBodies.append(body) } }
}

/// Answers each request with its own head as the body. Bodies: `Content-Length`, or chunked up
/// to the first empty chunk (enough for the tests that use it).
final class HeadEchoApp: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let log: HeadLog
    private var pending = ""

    init(log: HeadLog) {
        self.log = log
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.pending += String(buffer: self.unwrapInboundIn(data))
        while let end = self.pending.range(of: "\r\n\r\n") {
            let head = String(self.pending[..<end.upperBound])
            var rest = String(self.pending[end.upperBound...])
            let lower = head.lowercased()
            if lower.contains("transfer-encoding: chunked") {
                guard let last = rest.range(of: "0\r\n\r\n") else { return }
                self.log.add(body: String(rest[..<last.upperBound]))
                rest = String(rest[last.upperBound...])
            } else if let line = lower.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                      let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) {
                guard rest.utf8.count >= length else { return }
                self.log.add(body: String(rest.prefix(length)))
                rest = String(rest.dropFirst(length))
            }
            self.pending = rest
            self.log.add(head: head)
            let close = lower.contains("connection: close")
            let answer = "HTTP/1.1 200 OK\r\ncontent-length: \(head.utf8.count)\r\n\(close ? "connection: close\r\n" : "")\r\n\(head)"
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: answer))).whenComplete { _ in
                if close { channel.close(promise: nil) }
            }
        }
    }
}

/// Closes each connection as soon as anything arrives.
final class CloseOnReadApp: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.close(promise: nil)
    }
}
