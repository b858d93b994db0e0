// Limits of the data plane.

public import NIOCore

/// Limits that keep a slow or hostile client from holding unbounded memory or connections.
public struct ProxyConfiguration: Sendable {
    /// A connection with no byte read or written for this long is closed.
    public var idleTimeout: TimeAmount = .seconds(300)
    /// On a shared port: a request head that has started must be complete within this time, or
    /// the connection is closed (a client that sends part of a head and stalls).
    public var requestHeadTimeout: TimeAmount = .seconds(30)
    /// Largest HTTP request head (all header names and values); larger answers 431.
    public var maxHeaderBytes: Int = 32 * 1024
    /// Largest TLS ClientHello read to find the SNI name; larger closes the connection.
    public var maxClientHelloBytes: Int = 16 * 1024
    /// Listen backlog of each gateway listener.
    public var backlog: Int32 = 1024

    public init() {}
}

/// Socket settings of the byte channels the Proxy splices: reads of up to 256 KiB (fewer system
/// calls on bulk transfers; a buffer lives only until it is written on) and TCP_NODELAY.
enum SpliceSocket {
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16 * 1024, maximum: 256 * 1024)
}
