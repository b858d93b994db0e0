import Foundation
import Gossip
import Logging
import NIOCore
import NIOPosix

/// Gossip's UDP socket: sealed datagrams in and out. It only moves bytes; `MeshState` seals,
/// opens and decides.
final class GossipTransport: Sendable {
    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Binds `host:port` (UDP) and hands every datagram to `receive`.
    static func bind(host: String, port: Int, receive: @escaping @Sendable ([UInt8], SocketAddress) -> Void) async throws -> GossipTransport {
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Inbound(receive: receive))
                }
            }
            .bind(host: host, port: port)
            .get()
        return GossipTransport(channel: channel)
    }

    /// Sends one datagram to `address` ("host:port"); an unparsable address is dropped.
    func send(_ bytes: [UInt8], to address: String) {
        guard let target = Self.socketAddress(address) else { return }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: buffer), promise: nil)
    }

    func close() async {
        try? await channel.close()
    }

    /// "127.0.0.2:7420" or "[::1]:7420".
    static func socketAddress(_ address: String) -> SocketAddress? {
        guard let (host, port) = HostPort.parse(address) else { return nil }
        return try? SocketAddress(ipAddress: host, port: port)
    }

    final class Inbound: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let receive: @Sendable ([UInt8], SocketAddress) -> Void

        init(receive: @escaping @Sendable ([UInt8], SocketAddress) -> Void) {
            self.receive = receive
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var envelope = unwrapInboundIn(data)
            let bytes = envelope.data.readBytes(length: envelope.data.readableBytes) ?? []
            receive(bytes, envelope.remoteAddress)
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
