// The seam between the Proxy and the link layer that carries connections to runners.

public import NIOCore

/// Opens a byte stream to the app behind a route. MeshNode implements it with an HTTP/2 stream on
/// the runner's link; tests and the standalone bench use `LoopbackTunnelConnector` (ProxyTestSupport).
///
/// Contract of the returned channel: its pipeline reads and writes `ByteBuffer`; `close(mode: .output)`
/// half-closes (END_STREAM); a half-close from the far side arrives as `ChannelEvent.inputClosed`.
/// `initializer` must run before the channel delivers any byte (it installs the Proxy's handlers),
/// and the future succeeds only once the app accepted the connection. Failures are typed:
/// `ProxyError.upstreamNotConnected` (no link to the runner) and `ProxyError.upstreamRefused`
/// (the app refused). The channel may live on another event loop than `eventLoop`; the Proxy's
/// handlers only talk to it through thread-safe `Channel` calls.
///
/// `clientAddress` is the client's address and `serverAddress` the gateway address it reached:
/// what the runner puts in the PROXY protocol header of a service that asked for one.
public protocol UpstreamConnector: Sendable {
    func connect(
        to route: Route,
        clientAddress: SocketAddress?,
        serverAddress: SocketAddress?,
        on eventLoop: any EventLoop,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel>
}
