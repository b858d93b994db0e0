// The runner's side of a tunnelled connection: dial the app on loopback and splice.

public import NIOCore
import NIOPosix

/// Dials the app behind a route on the runner's loopback interface for an inbound byte channel
/// (an HTTP/2 stream of a link, or a `LoopbackTunnelRunner` connection of ProxyTestSupport), with
/// the same contract as `UpstreamConnector`'s channels.
public struct AppDialer: Sendable {
    public var host: String
    public var connectTimeout: TimeAmount

    public init(host: String = "127.0.0.1", connectTimeout: TimeAmount = .seconds(5)) {
        self.host = host
        self.connectTimeout = connectTimeout
    }

    /// Connects to the app. Both `inbound` and the app channel get a splice half that holds bytes
    /// until `Splice.attach(inbound, app)`, so the caller can first answer the gateway (for
    /// instance with HEADERS). Fails with `ProxyError.appRefused` when nothing accepts.
    ///
    /// `preamble` (a PROXY protocol header) is written to the app before any byte of the client:
    /// the future succeeds once it is written.
    public func dial(appPort: Int, for inbound: any Channel, preamble: ByteBuffer? = nil) -> EventLoopFuture<any Channel> {
        let host = self.host
        return inbound.eventLoop.submit {
            try inbound.pipeline.syncOperations.addHandler(SpliceHandler(partner: nil))
        }.flatMap {
            ClientBootstrap(group: inbound.eventLoop)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelOption(.recvAllocator, value: SpliceSocket.receiveAllocator)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(self.connectTimeout)
                .channelInitializer { app in
                    app.eventLoop.makeCompletedFuture {
                        try app.pipeline.syncOperations.addHandler(SpliceHandler(partner: nil))
                    }
                }
                .connect(host: host, port: appPort)
        }.flatMap { app in
            guard let preamble else { return inbound.eventLoop.makeSucceededFuture(app) }
            return app.writeAndFlush(preamble).map { app }.flatMapError { error in
                app.close(promise: nil)
                return inbound.eventLoop.makeFailedFuture(error)
            }
        }.flatMapErrorThrowing { error in
            throw ProxyError.appRefused(port: appPort, reason: "\(error)")
        }
    }
}
