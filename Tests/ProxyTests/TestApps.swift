// Small apps the tests put behind the gateway: a TCP echo, an HTTP app, a WebSocket echo.

import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Sodium
@testable import Proxy

/// The length and BLAKE2b-256 of a byte stream, enough to tell that 200 MiB arrived intact and in
/// order. libsodium does the hashing: a per-byte Swift loop over 200 MiB takes long in debug builds.
final class Checksum {
    private let hash = BLAKE2b(outputLength: 32)
    private(set) var count = 0

    func update(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { self.hash.update(RawBytes(bytes: $0)) }
        self.count += buffer.readableBytes
    }

    /// "LENGTH HEX"; ends the hash, so call it once, after the last update.
    func finish() -> String {
        "\(self.count) \(self.hash.finalize().map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined())"
    }
}

/// A borrowed raw buffer, as libsodium's wrapper takes them.
private struct RawBytes: ContiguousBytes {
    let bytes: UnsafeRawBufferPointer
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self.bytes) }
}

/// Deterministic bytes for bulk transfers: chunk `i` of a stream.
enum Payload {
    static let chunkSize = 64 * 1024

    /// A few pseudo-random chunks, made once: generating 200 MiB byte by byte is slow in debug builds.
    private static let bases: [ByteBuffer] = (0..<7).map { seed in
        var buffer = ByteBuffer()
        buffer.reserveCapacity(chunkSize)
        var x = UInt64(truncatingIfNeeded: seed) &* 0x9e37_79b9_7f4a_7c15 | 1
        for _ in 0..<(chunkSize / 8) {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            buffer.writeInteger(x)
        }
        return buffer
    }

    /// Chunk `index` (at most `chunkSize` bytes): one of the base chunks with `index` stamped at its
    /// start, so that a lost, repeated or reordered chunk changes the checksum.
    static func chunk(_ index: Int, size: Int = chunkSize) -> ByteBuffer {
        precondition((0...chunkSize).contains(size), "a payload chunk is at most \(chunkSize) bytes")
        var buffer = self.bases[index % self.bases.count].getSlice(at: 0, length: size)!
        if size >= 8 { buffer.setInteger(UInt64(truncatingIfNeeded: index), at: buffer.readerIndex) }
        return buffer
    }

    /// The checksum (`Checksum.finish()`) of the first `totalBytes` of the stream.
    static func checksum(totalBytes: Int) -> String {
        let sum = Checksum()
        var index = 0
        var left = totalBytes
        while left > 0 {
            let size = min(left, chunkSize)
            sum.update(self.chunk(index, size: size))
            left -= size
            index += 1
        }
        return sum.finish()
    }
}

/// A running test server on 127.0.0.1.
struct TestServer {
    let channel: any Channel
    var port: Int { self.channel.localAddress!.port! }

    func close() async { try? await self.channel.close() }

    static func start(
        host: String = "127.0.0.1",
        _ configure: @escaping @Sendable (any Channel) throws -> Void
    ) async throws -> TestServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 2048)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try configure(channel) }
            }
            .bind(host: host, port: 0)
            .get()
        return TestServer(channel: channel)
    }

    /// Echoes bytes; answers a half-close with a half-close.
    static func echo() async throws -> TestServer {
        try await self.start { try $0.pipeline.syncOperations.addHandler(EchoHandler()) }
    }

    /// Answers every connection's first bytes with `greeting`, then closes.
    static func greeter(_ greeting: String) async throws -> TestServer {
        try await self.start { try $0.pipeline.syncOperations.addHandler(GreeterHandler(greeting: greeting)) }
    }

    /// An HTTP app named `name` (see `TestHTTPApp`), with a WebSocket echo on `/ws`.
    static func http(name: String) async throws -> TestServer {
        try await self.start { channel in
            let upgrader = NIOWebSocketServerUpgrader(
                shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.removeHandler(sync.handler(type: TestHTTPApp.self), promise: nil)
                        try sync.addHandler(WebSocketEchoHandler())
                    }
                }
            )
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
            )
            try channel.pipeline.syncOperations.addHandler(TestHTTPApp(name: name))
        }
    }
}

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            context.close(mode: .output, promise: nil)
        }
    }
}

final class GreeterHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let greeting: String

    init(greeting: String) { self.greeting = greeting }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: self.greeting))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

/// `GET /hello` → "hello from NAME" and the forwarding headers it saw;
/// `POST /upload` → "LENGTH HASH" of the body (`Checksum.finish()`); `GET /download/N` → N bytes of `Payload`.
final class TestHTTPApp: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let name: String
    private var uri = ""
    private var upload = Checksum()
    private var download: (index: Int, left: Int)?

    init(name: String) { self.name = name }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.uri = head.uri
            self.upload = Checksum()
            if head.uri == "/hello" {
                let text = "hello from \(self.name)\n"
                    + "x-forwarded-for: \(head.headers["x-forwarded-for"].joined(separator: ","))\n"
                    + "x-forwarded-proto: \(head.headers["x-forwarded-proto"].joined(separator: ","))\n"
                    + "x-forwarded-host: \(head.headers["x-forwarded-host"].joined(separator: ","))\n"
                self.respond(text, context: context)
            }
        case .body(let body):
            self.upload.update(body)
        case .end:
            if self.uri == "/upload" {
                self.respond(self.upload.finish(), context: context)
            } else if self.uri.hasPrefix("/download/"), let size = Int(self.uri.dropFirst("/download/".count)) {
                var headers = HTTPHeaders()
                headers.add(name: "content-length", value: "\(size)")
                context.writeAndFlush(self.wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                self.download = (0, size)
                self.pump(context: context)
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.pump(context: context)
    }

    /// Writes the download while the channel takes it: the app itself honours backpressure.
    private func pump(context: ChannelHandlerContext) {
        while let (index, left) = self.download, context.channel.isWritable {
            let size = min(left, Payload.chunkSize)
            if left - size == 0 {
                self.download = nil
                context.write(self.wrapOutboundOut(.body(.byteBuffer(Payload.chunk(index, size: size)))), promise: nil)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            } else {
                self.download = (index + 1, left - size)
                context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(Payload.chunk(index, size: size)))), promise: nil)
            }
        }
    }

    private func respond(_ text: String, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-length", value: "\(text.utf8.count)")
        context.write(self.wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}

final class WebSocketEchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            let reply = WebSocketFrame(fin: true, opcode: frame.opcode, data: frame.unmaskedData)
            context.writeAndFlush(self.wrapOutboundOut(reply), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }
}
