// TLS termination on a host-routed port: the SNI name picks the certificate, ALPN picks HTTP/2 or
// HTTP/1.1, and each request is proxied like a plain one (with X-Forwarded-Proto: https).

import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL
import NIOTLS

enum TLSTermination {
    /// Puts TLS and, once ALPN is done, the HTTP handlers after `position` on a client connection
    /// whose ClientHello is still unread.
    static func install(
        on channel: any Channel, position: ChannelPipeline.SynchronousOperations.Position,
        sslContext: NIOSSLContext, ingress: IngressContext
    ) throws {
        let alpn = ApplicationProtocolNegotiationHandler { result, channel in
            channel.eventLoop.makeCompletedFuture {
                switch result {
                case .negotiated("h2"):
                    try Self.addHTTP2(to: channel, ingress: ingress)
                default:
                    try IngressPipeline.addHTTPHandlers(to: channel, position: .last, context: ingress, secure: true)
                }
            }
        }
        try channel.pipeline.syncOperations.addHandlers([NIOSSLServerHandler(context: sslContext), alpn], position: position)
    }

    /// HTTP/2 towards the client: each stream is one request, proxied as HTTP/1.1 to the app.
    private static func addHTTP2(to channel: any Channel, ingress: IngressContext) throws {
        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                // Streams have no byte stage for the head timer; the connection's idle timeout bounds them.
                let headTimer = RequestHeadTimeoutHandler(timeout: ingress.configuration.requestHeadTimeout)
                let proxy = HTTPProxyHandler(ingress: ingress, headTimer: headTimer, decoder: nil, encoder: nil, secure: true)
                try stream.pipeline.syncOperations.addHandlers([HTTP2FramePayloadToHTTP1ServerCodec(), proxy])
            }
        }
    }
}
