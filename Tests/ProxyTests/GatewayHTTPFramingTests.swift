import Foundation
import NIOCore
import Testing
@testable import Proxy

/// Responses without a body, and clients that stall inside a request head.
@Suite("Gateway: HTTP framing and request-head timeout", .timeLimit(.minutes(10)))
struct GatewayHTTPFramingTests {
    /// A shared port routing "a.example" to `app`, and the gateway's address.
    @Test func headResponseWithoutContentLengthGetsNoChunkedTerminator() async throws {
        let app = try await TestServer.start { try $0.pipeline.syncOperations.addHandler(RawHTTPApp()) }
        let (lab, address) = try await Lab.hosting("a.example", app: app)
        let requests = "HEAD /x HTTP/1.1\r\nHost: a.example\r\n\r\n"
            + "GET /y HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"
        let response = try await withTimeout(60) {
            String(buffer: try await TestClient.exchange(address, send: ByteBuffer(string: requests), halfClose: false))
        }
        // The HEAD response is its head alone; the next bytes are the GET's response.
        let parts = response.components(separatedBy: "\r\n\r\n")
        #expect(parts.count == 3, "\(response.debugDescription)")
        #expect(parts.first?.hasPrefix("HTTP/1.1 200 OK") == true)
        #expect(parts.dropFirst().first?.hasPrefix("HTTP/1.1 200 OK") == true, "\(response.debugDescription)")
        #expect(parts.last == "hello")
        await app.close()
        await lab.stop()
    }

    @Test func clientStallingInARequestHeadIsClosed() async throws {
        let app = try await TestServer.http(name: "app")
        var configuration = ProxyConfiguration()
        configuration.requestHeadTimeout = .milliseconds(300)
        let (lab, address) = try await Lab.hosting("a.example", app: app, configuration: configuration)
        // Half a head, then silence: the gateway answers 408 and closes (the idle timeout is 300 s).
        let received = try await withTimeout(60) {
            let connection = try await TestClient.connect(address)
            return try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "GET /hello HTTP/1.1\r\nHost: a.exa"))
                var received = ByteBuffer()
                for try await var chunk in inbound { received.writeBuffer(&chunk) }
                return received
            }
        }
        #expect(String(buffer: received).hasPrefix("HTTP/1.1 408 Request Timeout"), "\(String(buffer: received).debugDescription)")
        await app.close()
        await lab.stop()
    }

    @Test func idleKeepAliveConnectionOutlivesTheHeadTimeout() async throws {
        let app = try await TestServer.http(name: "app")
        var configuration = ProxyConfiguration()
        configuration.requestHeadTimeout = .milliseconds(300)
        let (lab, address) = try await Lab.hosting("a.example", app: app, configuration: configuration)
        let answers = try await withTimeout(60) {
            let connection = try await TestClient.connect(address)
            return try await connection.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                var answers: [String] = []
                for close in [false, true] {
                    let connectionHeader = close ? "Connection: close\r\n" : ""
                    try await outbound.write(ByteBuffer(string: "GET /hello HTTP/1.1\r\nHost: a.example\r\n\(connectionHeader)\r\n"))
                    var text = ""
                    while !text.contains("hello from app") {
                        guard let chunk = try await iterator.next() else { break }
                        text += String(buffer: chunk)
                    }
                    answers.append(text)
                    // Idle between requests for longer than the head timeout: not a stalled head.
                    if !close { try await Task.sleep(for: .seconds(1)) }
                }
                return answers
            }
        }
        #expect(answers.count == 2)
        #expect(answers.allSatisfy { $0.hasPrefix("HTTP/1.1 200 OK") && $0.contains("hello from app") })
        await app.close()
        await lab.stop()
    }
}

/// Answers each request head it reads: HEAD with a head that has neither Content-Length nor
/// Transfer-Encoding (allowed: a HEAD response has no body), anything else with "hello".
final class RawHTTPApp: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var pending = ""

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.pending += String(buffer: self.unwrapInboundIn(data))
        while let end = self.pending.range(of: "\r\n\r\n") {
            let head = self.pending[..<end.lowerBound]
            self.pending = String(self.pending[end.upperBound...])
            let answer = head.hasPrefix("HEAD ")
                ? "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n"
                : "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
            context.write(self.wrapOutboundOut(ByteBuffer(string: answer)), promise: nil)
        }
        context.flush()
    }
}

/// Timeouts a slow client or a silent app cannot stretch, with short injected values.
@Suite("Gateway: HTTP timeouts", .timeLimit(.minutes(3)))
struct GatewayHTTPTimeoutTests {
    @Test func aHeadSentAByteAtATimeGets408WhenItsTimeIsUp() async throws {
        let app = try await TestServer.http(name: "app")
        var configuration = ProxyConfiguration()
        configuration.requestHeadTimeout = .milliseconds(500)
        let (lab, address) = try await Lab.hosting("a.example", app: app, configuration: configuration)
        // 600 bytes at one per 50 ms would take 30 s: each byte is progress, but the head's time
        // counts from its first byte.
        let head = "GET /hello HTTP/1.1\r\nHost: a.example\r\nX-Pad: \(String(repeating: "a", count: 550))\r\n\r\n"
        let (received, sent) = try await withTimeout(60) {
            let connection = try await TestClient.connect(address)
            return try await connection.executeThenClose { inbound, outbound in
                let writer = Task {
                    var sent = 0
                    for byte in head.utf8 {
                        guard (try? await outbound.write(ByteBuffer(bytes: [byte]))) != nil else { break }
                        sent += 1
                        try? await Task.sleep(for: .milliseconds(50))
                        if Task.isCancelled { break }
                    }
                    return sent
                }
                var received = ""
                do {
                    for try await chunk in inbound { received += String(buffer: chunk) }
                } catch {}  // a reset after the answer is a close too
                writer.cancel()
                return (received, await writer.value)
            }
        }
        #expect(received.hasPrefix("HTTP/1.1 408 Request Timeout"), "\(received.debugDescription)")
        #expect(received.contains("the request head was not complete within 0.5 s"), "\(received.debugDescription)")
        #expect(sent < head.utf8.count, "the whole head went out before the gateway answered")
        #expect(lab.gateway.connectionCounts.requestHeadTimeouts == 1)
        await app.close()
        await lab.stop()
    }

    @Test(arguments: Lab.UpstreamLoops.allCases)
    func anAppThatAcceptsButNeverAnswersGets504(upstreams: Lab.UpstreamLoops) async throws {
        // Reads requests and never answers.
        let silent = try await TestServer.start { channel in
            try channel.pipeline.syncOperations.addHandler(SilentApp())
        }
        var configuration = ProxyConfiguration()
        configuration.answerTimeout = .milliseconds(500)
        let (lab, address) = try await Lab.hosting("quiet.example", app: silent, configuration: configuration, upstreams: upstreams)
        let (status, response) = try await withTimeout(60) { try await TestClient.http(address, host: "quiet.example") }
        #expect(status == 504, "\(response)")
        #expect(response.contains("service \"run-1\" did not answer: its app accepted the connection but sent no response within 0.5 s"), "\(response)")
        #expect(lab.gateway.connectionCounts.answerTimeouts == 1)
        await silent.close()
        await lab.stop()
    }

    @Test func anAppThatAnswersInTimeIsNotCutOff() async throws {
        let app = try await TestServer.http(name: "app")
        var configuration = ProxyConfiguration()
        configuration.answerTimeout = .seconds(30)
        let (lab, address) = try await Lab.hosting("a.example", app: app, configuration: configuration)
        let (status, response) = try await withTimeout(60) { try await TestClient.http(address, host: "a.example") }
        #expect(status == 200, "\(response)")
        await app.close()
        await lab.stop()
    }
}

/// Reads and drops everything; never writes.
final class SilentApp: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
