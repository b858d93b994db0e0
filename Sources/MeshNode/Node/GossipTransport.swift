import Foundation
import Gossip
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Gossip's UDP socket: sealed datagrams in and out. It only moves bytes; `MeshState` seals,
/// opens and decides. Datagrams arrive on `datagrams`, which the mesh's service consumes; when the
/// consumer falls behind, the oldest waiting datagrams are dropped (gossip repeats itself) and
/// counted in `dropped`.
final class GossipTransport: Sendable {
    /// How many received datagrams may wait for the mesh.
    static let bufferedDatagrams = 1024

    private let channel: any Channel
    let datagrams: AsyncStream<[UInt8]>
    private let counter: DropCounter

    private init(channel: any Channel, datagrams: AsyncStream<[UInt8]>, counter: DropCounter) {
        self.channel = channel
        self.datagrams = datagrams
        self.counter = counter
    }

    /// Datagrams dropped because the mesh was behind.
    var dropped: Int { counter.count.withLockedValue { $0 } }

    /// Binds `host:port` (UDP).
    static func bind(host: String, port: Int) async throws -> GossipTransport {
        let (datagrams, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .bufferingNewest(bufferedDatagrams))
        let counter = DropCounter()
        let channel: any Channel
        do {
            channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(Inbound(continuation: continuation, counter: counter))
                    }
                }
                .bind(host: host, port: port)
                .get()
        } catch {
            continuation.finish()
            throw error
        }
        // The stream ends when the socket closes: the consumer's loop ends with it.
        channel.closeFuture.whenComplete { _ in continuation.finish() }
        return GossipTransport(channel: channel, datagrams: datagrams, counter: counter)
    }

    /// Sends one datagram to `address` ("host:port"); an unparsable address is dropped.
    /// The returned future completes when the datagram is written (or failed to be).
    @discardableResult
    func send(_ bytes: [UInt8], to address: String) -> EventLoopFuture<Void> {
        guard let target = Self.socketAddress(address) else { return channel.eventLoop.makeSucceededVoidFuture() }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return channel.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: buffer))
    }

    func close() async {
        try? await channel.close()
    }

    /// "127.0.0.2:7420" or "[::1]:7420".
    static func socketAddress(_ address: String) -> SocketAddress? {
        guard let (host, port) = HostPort.parse(address) else { return nil }
        return try? SocketAddress(ipAddress: host, port: port)
    }

    final class DropCounter: Sendable {
        let count = NIOLockedValueBox(0)
    }

    final class Inbound: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let continuation: AsyncStream<[UInt8]>.Continuation
        let counter: DropCounter

        init(continuation: AsyncStream<[UInt8]>.Continuation, counter: DropCounter) {
            self.continuation = continuation
            self.counter = counter
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var envelope = unwrapInboundIn(data)
            let bytes = envelope.data.readBytes(length: envelope.data.readableBytes) ?? []
            if case .dropped = continuation.yield(bytes) {
                counter.count.withLockedValue { $0 += 1 }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // A UDP error (e.g. ICMP unreachable for an earlier datagram) concerns one peer only.
        }
    }
}

@available(*, unavailable)
extension GossipTransport.Inbound: Sendable {}

/// "host:port" addresses as the mesh writes them.
enum HostPort {
    static func parse(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }

    static func format(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
