public import NIOCore

/// Settings of links. The defaults are those measured to move bulk data fast (see BENCHMARKS.md).
public struct LinkConfiguration: Sendable {
    /// Stream resets (and stream errors) a link takes in 30 s before it is closed as a flood.
    public static let maximumStreamResetsPer30Seconds = 100_000

    /// How long the Noise handshake may take before the connection is closed.
    public var handshakeTimeout: TimeAmount = .seconds(5)
    /// Accepted connections that may be in their handshake at once; more are closed on arrival.
    /// Each costs a few KiB and lives at most `handshakeTimeout`, so this bounds what a flood of
    /// silent or slow connections can hold, while links already up are untouched.
    public var maxPendingHandshakes: Int = 256
    /// After this long without a byte from the peer, a link sends an HTTP/2 PING; after three such
    /// silent intervals it closes (nil: never).
    public var keepaliveInterval: TimeAmount? = .seconds(10)
    /// How long a dial may wait for the TCP connection.
    public var connectTimeout: TimeAmount = .seconds(5)
    /// The suite the dialler asks for; nil picks AES-GCM when the processor has AES instructions.
    public var suite: LinkSuite? = nil
    /// Records between rekeys of each direction's record key (both sides count the same records).
    public var rekeyInterval: UInt64 = 1 << 20
    /// The HTTP/2 stream flow-control window (the 64 KiB default caps a stream near 3 Gbit/s).
    public var streamWindow: Int = 16 << 20
    /// The HTTP/2 connection flow-control window.
    public var connectionWindow: Int = 64 << 20
    /// Concurrent streams a peer may open on one link.
    public var maxConcurrentStreams: Int = 1024
    /// A stream channel becomes unwritable above this many buffered outbound bytes.
    public var streamHighWatermark: Int = 1 << 20
    public var streamLowWatermark: Int = 512 << 10
    /// The size of socket reads.
    public var socketReadSize: Int = 256 << 10

    public init() {}
}
