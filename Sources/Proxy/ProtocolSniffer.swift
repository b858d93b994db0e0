// On a shared port: tells TLS from HTTP by the first byte, then hands over to the right handler.

import NIOCore

/// Looks at the first byte of a connection on a host-routed port: a TLS handshake record (22)
/// goes to SNI routing, anything else to HTTP/1.1 routing.
final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let ingress: IngressContext

    init(ingress: IngressContext) {
        self.ingress = ingress
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        do {
            if first == ClientHello.handshakeRecord {
                try context.pipeline.syncOperations.addHandler(
                    SNIRoutingHandler(ingress: self.ingress),
                    position: .after(self)
                )
            } else {
                try IngressPipeline.addHTTPHandlers(to: context.channel, position: .after(self), context: self.ingress)
            }
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

@available(*, unavailable)
extension ProtocolSniffer: Sendable {}
