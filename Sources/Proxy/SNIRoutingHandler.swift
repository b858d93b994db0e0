// Routes a TLS connection by the SNI name of its ClientHello, without terminating TLS.

import Logging
import NIOCore

/// Collects the ClientHello (bounded), looks its server name up, then splices the connection,
/// replaying the bytes it read. Unknown or missing names get a TLS `unrecognized_name` alert.
final class SNIRoutingHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A fatal TLS 1.0-framed alert record: unrecognized_name (112).
    static let unrecognizedNameAlert: [UInt8] = [21, 3, 1, 0, 2, 2, 112]

    private let ingress: IngressContext
    private var collected = ByteBuffer()
    private var routed = false

    init(ingress: IngressContext) {
        self.ingress = ingress
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.routed else {
            context.fireChannelRead(data)
            return
        }
        var buffer = self.unwrapInboundIn(data)
        self.collected.writeBuffer(&buffer)
        let name: String?
        do {
            switch try ClientHello.peek(self.collected, limit: self.ingress.configuration.maxClientHelloBytes) {
            case .needMoreData: return
            case .complete(let serverName): name = serverName
            }
        } catch {
            self.ingress.logger.debug("closing TLS connection", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        guard case .route(let route) = self.ingress.lookup(host: name) else {
            self.ingress.logger.debug("no route for SNI name", metadata: ["tls.sni": "\(name ?? "(none)")"])
            self.refuse(context: context)
            return
        }
        self.routed = true
        if route.terminatesTLS {
            guard let sslContext = self.ingress.configuration.tls?.context(for: name) else {
                self.ingress.logger.info("no certificate yet for a TLS-terminated name", metadata: ["tls.sni": "\(name ?? "(none)")"])
                self.refuse(context: context)
                return
            }
            self.handOver(context: context) {
                try TLSTermination.install(on: context.channel, position: .after(self), sslContext: sslContext, ingress: self.ingress)
            }
            return
        }
        if self.handOver(context: context, install: {
            try context.pipeline.syncOperations.addHandler(SpliceHandler(partner: nil), position: .after(self))
        }) {
            self.ingress.spliceToUpstream(context.channel, route: route)
        }
    }

    /// Answers with the `unrecognized_name` alert and closes: no route, or no certificate yet.
    private func refuse(context: ChannelHandlerContext) {
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: Self.unrecognizedNameAlert)), promise: nil)
        context.close(promise: nil)
    }

    /// Puts what `install` adds after this handler, replays the bytes read so far to it and
    /// leaves the pipeline; false (the connection closed) when `install` fails.
    @discardableResult
    private func handOver(context: ChannelHandlerContext, install: () throws -> Void) -> Bool {
        do {
            try install()
        } catch {
            context.close(promise: nil)
            return false
        }
        context.fireChannelRead(NIOAny(self.collected))
        self.collected = ByteBuffer()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        return true
    }
}

@available(*, unavailable)
extension SNIRoutingHandler: Sendable {}
