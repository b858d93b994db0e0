// Limits of the data plane.

public import NIOCore

/// Limits that keep a slow or hostile client from holding unbounded memory or connections.
public struct ProxyConfiguration: Sendable {
    /// A connection with no byte read or written for this long is closed.
    public var idleTimeout: TimeAmount = .seconds(300)
    /// On HTTP (shared ports, and exclusive ports whose client speaks HTTP/1.x): a request head
    /// that has started must be complete within this time, counted from its first byte however
    /// slowly the rest comes; then the client gets `408` and the connection closes.
    public var requestHeadTimeout: TimeAmount = .seconds(30)
    /// On HTTP: once the whole request is with the app, the app's response head must start within
    /// this time; then the client gets `504` and the app's connection is closed. Below
    /// `idleTimeout`, so that a client waiting for a silent app is told why.
    public var answerTimeout: TimeAmount = .seconds(120)
    /// Largest HTTP request head (all header names and values); larger answers 431.
    public var maxHeaderBytes: Int = 32 * 1024
    /// Largest TLS ClientHello read to find the SNI name; larger closes the connection.
    public var maxClientHelloBytes: Int = 16 * 1024
    /// On an exclusive port: how long a new connection waits for the client's first line to tell
    /// HTTP/1.x (proxied as HTTP, with `X-Forwarded-*` headers) from other TCP (spliced). A client
    /// silent this long is spliced at once (the server may be the first to speak). Zero splices
    /// every connection without looking.
    public var exclusiveSniffWait: TimeAmount = .milliseconds(250)
    /// Connections one client address may hold to this gateway's listeners at once. Beyond it a
    /// shared (HTTP) port answers `503` with `Retry-After` and an exclusive port closes at once.
    public var maxConnectionsPerClient: Int = 1024
    /// Connections to one route's app (streams to its runner) open at once; beyond it HTTP gets
    /// `503` with `Retry-After` and TCP is closed at once. One service can't use up its runner's link.
    public var maxConnectionsPerRoute: Int = 4096
    /// Connections to one runner's apps, all its routes together. Below the link's stream limit
    /// (`LinkConfiguration.maxConcurrentStreams`), so gossip and lease calls always find a stream.
    public var maxConnectionsPerRunner: Int = 12_288
    /// How long the runner may take to accept a connection (open the stream and reach the app);
    /// then HTTP gets `504` and TCP is closed.
    public var upstreamConnectTimeout: TimeAmount = .seconds(10)
    /// What a `503` tells the client to wait before it tries again, in seconds.
    public var retryAfterSeconds: Int = 5
    /// Listen backlog of each gateway listener.
    public var backlog: Int32 = 1024
    /// Certificates for routes that terminate TLS, and the ACME HTTP-01 answers; nil: no HTTPS.
    public var tls: TLSCertificates? = nil

    public init() {}
}

/// Socket settings of the byte channels the Proxy splices: reads of up to 256 KiB (fewer system
/// calls on bulk transfers; a buffer lives only until it is written on) and TCP_NODELAY. Public
/// for the loopback tunnel of tests and benches, whose sockets must behave as the Proxy's.
public enum SpliceSocket {
    public static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16 * 1024, maximum: 256 * 1024)
}
