import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Proxy

/// A ClientHello built by hand: TLS 1.2 framing, one cipher suite, the given extensions.
func handBuiltClientHello(serverName: String?, recordSplit: Int? = nil) -> ByteBuffer {
    var extensions = ByteBuffer()
    if let serverName {
        let name = Array(serverName.utf8)
        extensions.writeInteger(UInt16(0))  // server_name
        extensions.writeInteger(UInt16(name.count + 5))
        extensions.writeInteger(UInt16(name.count + 3))
        extensions.writeInteger(UInt8(0))  // host_name
        extensions.writeInteger(UInt16(name.count))
        extensions.writeBytes(name)
    }
    extensions.writeBytes([0x00, 0x0b, 0x00, 0x02, 0x01, 0x00])  // ec_point_formats
    var body = ByteBuffer()
    body.writeBytes([3, 3])
    body.writeBytes([UInt8](repeating: 7, count: 32))
    body.writeInteger(UInt8(0))
    body.writeInteger(UInt16(2))
    body.writeBytes([0x13, 0x01])
    body.writeBytes([1, 0])
    body.writeInteger(UInt16(extensions.readableBytes))
    body.writeImmutableBuffer(extensions)
    var handshake = ByteBuffer(bytes: [1, 0, UInt8(body.readableBytes >> 8), UInt8(body.readableBytes & 0xff)])
    handshake.writeImmutableBuffer(body)
    let fragments: [ByteBuffer]
    if let split = recordSplit {
        fragments = [handshake.getSlice(at: 0, length: split)!, handshake.getSlice(at: split, length: handshake.readableBytes - split)!]
    } else {
        fragments = [handshake]
    }
    var records = ByteBuffer()
    for fragment in fragments {
        records.writeBytes([22, 3, 1])
        records.writeInteger(UInt16(fragment.readableBytes))
        records.writeImmutableBuffer(fragment)
    }
    return records
}

/// The first bytes `openssl s_client -servername NAME` sends, captured by a local listener.
func opensslClientHello(serverName: String) async throws -> ByteBuffer? {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { return nil }
    let captured = NIOLockedValueBoxed()
    let server = try await TestServer.start { channel in
        try channel.pipeline.syncOperations.addHandler(CaptureHandler(into: captured))
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    process.arguments = ["s_client", "-connect", "127.0.0.1:\(server.port)", "-servername", serverName]
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    // Bounded: 20 s, for a loaded machine.
    for _ in 0..<400 {
        if (try? ClientHello.peek(captured.bytes)) != ClientHelloPeek.needMoreData { break }
        try await Task.sleep(for: .milliseconds(50))
    }
    // openssl may ignore SIGTERM while it waits for the server: end it for sure, then reap it.
    kill(process.processIdentifier, SIGKILL)
    await waitForExit(process)
    await server.close()
    let bytes = captured.bytes
    // A ClientHello that did not arrive whole is no fixture.
    return (try? ClientHello.peek(bytes)) == ClientHelloPeek.needMoreData ? nil : bytes
}

final class NIOLockedValueBoxed: @unchecked Sendable {
    private let lock = NSLock()
    private var value = ByteBuffer()
    var bytes: ByteBuffer { self.lock.withLock { self.value } }
    func append(_ buffer: ByteBuffer) { self.lock.withLock { _ = self.value.writeImmutableBuffer(buffer) } }
}

final class CaptureHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let into: NIOLockedValueBoxed
    init(into: NIOLockedValueBoxed) { self.into = into }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.into.append(self.unwrapInboundIn(data))
        // Once the ClientHello is whole, hang up: openssl then exits on its own.
        if (try? ClientHello.peek(self.into.bytes)) != ClientHelloPeek.needMoreData {
            context.close(promise: nil)
        }
    }
}

@Suite("TLS ClientHello SNI peek")
struct ClientHelloTests {
    @Test func handBuilt() throws {
        #expect(try ClientHello.peek(handBuiltClientHello(serverName: "App.Example.")) == .complete(serverName: "app.example"))
        #expect(try ClientHello.peek(handBuiltClientHello(serverName: nil)) == .complete(serverName: nil))
    }

    @Test func spanningTwoRecords() throws {
        let hello = handBuiltClientHello(serverName: "split.example", recordSplit: 20)
        #expect(try ClientHello.peek(hello) == .complete(serverName: "split.example"))
    }

    @Test func everyPrefixNeedsMoreData() throws {
        let hello = handBuiltClientHello(serverName: "a.example")
        for length in 0..<hello.readableBytes {
            #expect(try ClientHello.peek(hello.getSlice(at: 0, length: length)!) == .needMoreData)
        }
    }

    @Test func rejectsWhatIsNotAClientHello() {
        #expect(throws: ProxyError.self) { try ClientHello.peek(ByteBuffer(string: "GET / HTTP/1.1\r\n")) }
        var serverHello = handBuiltClientHello(serverName: "a.example")
        serverHello.setInteger(UInt8(2), at: 5)  // handshake type ServerHello
        #expect(throws: ProxyError.self) { try ClientHello.peek(serverHello) }
        var truncated = handBuiltClientHello(serverName: "a.example")
        truncated.setInteger(UInt16(0xffff), at: 5 + 4 + 2 + 32 + 1 + 2 + 2 + 2)  // extensions length too big
        #expect(throws: ProxyError.self) { try ClientHello.peek(truncated) }
    }

    @Test func boundedByTheLimit() {
        // A record header announcing a large fragment that never completes.
        var big = ByteBuffer(bytes: [22, 3, 1, 0x40, 0x00, 1, 0, 0x3f, 0xfc])
        big.writeBytes([UInt8](repeating: 0, count: 2000))
        #expect(throws: ProxyError.routingDataTooLarge(limit: 1024)) { try ClientHello.peek(big, limit: 1024) }
    }

    @Test func opensslCapturedHello() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            print("skipping: /usr/bin/openssl not found")
            return
        }
        let hello = try #require(
            try await opensslClientHello(serverName: "Captured.Example"),
            "openssl s_client did not send a whole ClientHello within 20 s"
        )
        #expect(try ClientHello.peek(hello) == .complete(serverName: "captured.example"))
    }
}

@Suite("Gateway: TLS routed by SNI", .timeLimit(.minutes(10)))
struct GatewaySNITests {
    @Test func tlsConnectionsAreRoutedBySNIWithoutTermination() async throws {
        let lab = try await Lab.start()
        let a = try await TestServer.greeter("tls app a")
        let b = try await TestServer.greeter("tls app b")
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addHost("a.example", route: lab.route(a, run: "a"), on: listen)
        try table.addHost("b.example", route: lab.route(b, run: "b"), on: listen)
        await lab.gateway.apply(table)
        let socket = try await lab.socketAddress(of: listen)
        let helloA = try await opensslClientHello(serverName: "A.example") ?? handBuiltClientHello(serverName: "A.example")
        let answerA = try await withTimeout(60) { try await TestClient.exchange(socket, send: helloA, halfClose: false) }
        #expect(String(buffer: answerA) == "tls app a")
        let helloB = handBuiltClientHello(serverName: "b.example", recordSplit: 10)
        let answerB = try await withTimeout(60) { try await TestClient.exchange(socket, send: helloB, halfClose: false) }
        #expect(String(buffer: answerB) == "tls app b")
        let unknown = handBuiltClientHello(serverName: "c.example")
        let alert = try await withTimeout(60) { try await TestClient.exchange(socket, send: unknown, halfClose: false) }
        #expect(Array(alert.readableBytesView) == SNIRoutingHandler.unrecognizedNameAlert)
        await a.close()
        await b.close()
        await lab.stop()
    }
}
