import Foundation
import NIOCore
import Testing
@testable import Proxy

@Suite("Gateway: HTTP host routing and failure answers", .timeLimit(.minutes(10)))
struct GatewayHTTPTests {
    @Test(arguments: Lab.UpstreamLoops.allCases)
    func getIsRoutedByHostWithForwardingHeaders(upstreams: Lab.UpstreamLoops) async throws {
        let lab = try await Lab.start(upstreams: upstreams)
        let appA = try await TestServer.http(name: "app-a")
        let appB = try await TestServer.http(name: "app-b")
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addHost("a.example", route: lab.route(appA, run: "a"), on: listen)
        try table.addHost("b.example", route: lab.route(appB, run: "b"), on: listen)
        #expect(await lab.gateway.apply(table).isEmpty)
        let address = try await lab.socketAddress(of: listen)

        let a = try await withTimeout(60) { try await TestClient.http(address, host: "A.Example.:80") }
        #expect(a.status == 200)
        #expect(a.response.contains("hello from app-a"))
        #expect(a.response.contains("x-forwarded-for: 127.0.0.1"))
        #expect(a.response.contains("x-forwarded-proto: http"))
        #expect(a.response.contains("x-forwarded-host: A.Example.:80"))
        let b = try await withTimeout(60) { try await TestClient.http(address, host: "b.example") }
        #expect(b.response.contains("hello from app-b"))

        await appA.close()
        await appB.close()
        await lab.stop()
    }

    @Test(arguments: Lab.UpstreamLoops.allCases)
    func keepAliveRequestsToTwoHostsOnOneConnection(upstreams: Lab.UpstreamLoops) async throws {
        let lab = try await Lab.start(upstreams: upstreams)
        let appA = try await TestServer.http(name: "app-a")
        let appB = try await TestServer.http(name: "app-b")
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addHost("a.example", route: lab.route(appA, run: "a"), on: listen)
        try table.addHost("b.example", route: lab.route(appB, run: "b"), on: listen)
        await lab.gateway.apply(table)
        let address = try await lab.socketAddress(of: listen)
        let requests = "GET /hello HTTP/1.1\r\nHost: a.example\r\n\r\n"
            + "GET /hello HTTP/1.1\r\nHost: a.example\r\n\r\n"
            + "GET /hello HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n"
        let response = try await withTimeout(60) {
            String(buffer: try await TestClient.exchange(address, send: ByteBuffer(string: requests), halfClose: false))
        }
        #expect(response.components(separatedBy: "hello from app-a").count == 3)
        #expect(response.components(separatedBy: "hello from app-b").count == 2)
        #expect(response.components(separatedBy: "HTTP/1.1 200 OK").count == 4)
        await appA.close()
        await appB.close()
        await lab.stop()
    }

    @Test func unknownHostIs404NamingTheHost() async throws {
        let app = try await TestServer.http(name: "app")
        let (lab, address) = try await Lab.hosting("a.example", app: app)
        let answer = try await withTimeout(60) { try await TestClient.http(address, host: "Nobody.Example") }
        #expect(answer.status == 404)
        #expect(answer.response.contains("no service for host \"nobody.example\""))
        let noHost = try await withTimeout(60) { try await TestClient.http(address, host: nil) }
        #expect(noHost.status == 400)
        await app.close()
        await lab.stop()
    }

    @Test func runnerNotConnectedIs503() async throws {
        let lab = try await Lab.start()
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addHost("a.example", route: Route(runID: "r", upstream: "absent-runner", appPort: 1), on: listen)
        await lab.gateway.apply(table)
        let address = try await lab.socketAddress(of: listen)
        let answer = try await withTimeout(60) { try await TestClient.http(address, host: "a.example") }
        #expect(answer.status == 503)
        await lab.stop()
    }

    @Test func appRefusingIs502() async throws {
        let lab = try await Lab.start()
        let closed = try await TestServer.echo()
        let route = lab.route(closed)
        await closed.close()  // nothing listens on the app port now
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addHost("a.example", route: route, on: listen)
        await lab.gateway.apply(table)
        let address = try await lab.socketAddress(of: listen)
        let answer = try await withTimeout(60) { try await TestClient.http(address, host: "a.example") }
        #expect(answer.status == 502)
        await lab.stop()
    }

    @Test func oversizedHeadersAre431() async throws {
        var configuration = ProxyConfiguration()
        configuration.maxHeaderBytes = 4096
        let lab = try await Lab.start(configuration: configuration)
        let app = try await TestServer.http(name: "app")
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addHost("a.example", route: lab.route(app), on: listen)
        await lab.gateway.apply(table)
        let address = try await lab.socketAddress(of: listen)
        let big = "X-Big: " + String(repeating: "x", count: 8192) + "\r\n"
        let answer = try await withTimeout(60) {
            try await TestClient.http(address, host: "a.example", extraHeaders: big)
        }
        #expect(answer.status == 431)
        await app.close()
        await lab.stop()
    }

    @Test(arguments: Lab.UpstreamLoops.allCases)
    func webSocketUpgradeSwitchesToSplicing(upstreams: Lab.UpstreamLoops) async throws {
        let app = try await TestServer.http(name: "app")
        let (lab, address) = try await Lab.hosting("ws.example", app: app, upstreams: upstreams)

        let (head, echoed) = try await withTimeout(60) {
            let connection = try await TestClient.connect(address)
            return try await connection.executeThenClose { inbound, outbound in
                // The handshake of RFC 6455 §1.3, whose accept key is known.
                let handshake = "GET /ws HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                try await outbound.write(ByteBuffer(string: handshake))
                var received = ByteBuffer()
                var iterator = inbound.makeAsyncIterator()
                var head = ""
                while true {
                    guard var chunk = try await iterator.next() else { break }
                    received.writeBuffer(&chunk)
                    if let end = received.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) {
                        head = received.readString(length: end.upperBound - received.readerIndex) ?? ""
                        break
                    }
                }
                // One masked text frame, "ping through warren".
                let payload = Array("ping through warren".utf8)
                let mask: [UInt8] = [1, 2, 3, 4]
                var frame = ByteBuffer(bytes: [0x81, 0x80 | UInt8(payload.count)] + mask)
                frame.writeBytes(payload.enumerated().map { $0.element ^ mask[$0.offset % 4] })
                try await outbound.write(frame)
                while received.readableBytes < 2 + payload.count {
                    guard var chunk = try await iterator.next() else { break }
                    received.writeBuffer(&chunk)
                }
                return (head, received)
            }
        }
        #expect(head.hasPrefix("HTTP/1.1 101"))
        #expect(head.lowercased().contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="))
        var reply = echoed
        #expect(reply.readBytes(length: 2) == [0x81, UInt8("ping through warren".utf8.count)])
        #expect(reply.readString(length: reply.readableBytes) == "ping through warren")
        await app.close()
        await lab.stop()
    }
}

/// 200 MiB each way. The limits only catch hangs: on a loaded 2-core machine a debug build may take
/// minutes.
@Suite("Gateway: bulk transfers", .timeLimit(.minutes(20)))
struct GatewayBulkTests {
    @Test func bulkUploadAndDownloadKeepTheirChecksums() async throws {
        let app = try await TestServer.http(name: "app")
        let (lab, address) = try await Lab.hosting("bulk.example", app: app)
        let size = 200 * 1024 * 1024
        let expected = Payload.checksum(totalBytes: size)

        // Upload: the app answers the length and checksum of what it received.
        let upload = try await withTimeout(540) {
            let connection = try await TestClient.connect(address)
            return try await connection.executeThenClose { inbound, outbound in
                let head = "POST /upload HTTP/1.1\r\nHost: bulk.example\r\nContent-Length: \(size)\r\nConnection: close\r\n\r\n"
                try await outbound.write(ByteBuffer(string: head))
                var left = size
                var index = 0
                while left > 0 {
                    let chunk = min(left, Payload.chunkSize)
                    try await outbound.write(Payload.chunk(index, size: chunk))
                    left -= chunk
                    index += 1
                }
                var received = ByteBuffer()
                for try await var part in inbound { received.writeBuffer(&part) }
                return String(buffer: received)
            }
        }
        #expect(upload.hasSuffix(expected))

        // Download: the client checks what the app sent.
        let download = try await withTimeout(540) {
            let connection = try await TestClient.connect(address)
            return try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "GET /download/\(size) HTTP/1.1\r\nHost: bulk.example\r\nConnection: close\r\n\r\n"))
                let sum = Checksum()
                var headDone = false
                var pending = ByteBuffer()
                for try await var part in inbound {
                    if headDone {
                        sum.update(part)
                        continue
                    }
                    pending.writeBuffer(&part)
                    if let end = pending.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) {
                        pending.moveReaderIndex(to: end.upperBound)
                        headDone = true
                        sum.update(pending)
                    }
                }
                return sum.finish()
            }
        }
        #expect(download == expected)
        await app.close()
        await lab.stop()
    }
}
