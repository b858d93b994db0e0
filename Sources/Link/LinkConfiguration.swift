public import NIOCore

/// Settings of links. The defaults are those measured to move bulk data fast (see BENCHMARKS.md).
public struct LinkConfiguration: Sendable {
    /// Stream resets (and stream errors) a link takes in 30 s before it is closed as a flood.
    public static let maximumStreamResetsPer30Seconds = 100_000

    /// How long the Noise handshake may take before the connection is closed.
    public var handshakeTimeout: TimeAmount = .seconds(5)
    /// Accepted connections that may be in their handshake at once. Each costs a few KiB and
    /// lives at most `handshakeTimeout`, so this bounds what a flood of silent or slow
    /// connections can hold, while links already up are untouched. A connection that finds the
    /// places taken pushes out the oldest pending one: a real peer's handshake takes one round
    /// trip, a flood's connections wait, so real peers still get through.
    public var maxPendingHandshakes: Int = 256
    /// Pending handshakes one source address may hold; its next connection pushes out its own
    /// oldest, so one address cannot take the places of others. Nodes behind one NAT share an
    /// address: a handful of them reconnecting at once stays well below this.
    public var maxPendingHandshakesPerAddress: Int = 16
    /// After this long without a byte from the peer, a link sends an HTTP/2 PING; after three such
    /// silent intervals it closes (nil: never).
    public var keepaliveInterval: TimeAmount? = .seconds(10)
    /// A link that sent bytes (a stream's request or data, a PING) and heard nothing back for this
    /// long is closed, pinging the peer after a fifth of it: any live peer answers a PING within
    /// a round trip, while a peer lost behind a NAT never does (nil: only the keepalive above).
    /// Applies when `keepaliveInterval` is set.
    public var answerTimeout: TimeAmount? = .seconds(5)
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
    /// Concurrent streams a peer may open on one link. Every public connection a gateway proxies
    /// to a runner is a stream, so this is no service's ceiling: the gateway caps each runner at
    /// `ProxyConfiguration.maxConnectionsPerRunner` (12,288), below it, leaving room for gossip and
    /// lease calls. An idle stream holds a stream channel and its handlers on each side (a few
    /// KiB; flow-control windows are credit, not buffers), so a full link of idle streams costs
    /// tens of MiB, not more.
    public var maxConcurrentStreams: Int = 16_384
    /// A stream channel becomes unwritable above this many buffered outbound bytes.
    public var streamHighWatermark: Int = 1 << 20
    public var streamLowWatermark: Int = 512 << 10
    /// The size of socket reads.
    public var socketReadSize: Int = 256 << 10

    public init() {}
}
