public import Gossip
public import NIOCore

/// One HTTP/2 stream of a link, seen as a byte channel.
///
/// `channel`'s pipeline reads and writes `ByteBuffer`s. Closing the output
/// (`channel.close(mode: .output)`) sends END_STREAM; the peer's END_STREAM arrives as the user
/// event `ChannelEvent.inputClosed`, and the stream stays writable (half-close is always
/// honoured). `channel.close()` resets the stream. Stream channels support only the `autoRead`
/// option: setting any other option on them traps in swift-nio-http2.
public struct LinkStream: Sendable {
    /// The stream's channel; add your handlers to its pipeline.
    public let channel: any Channel
    /// The node at the other end of the link.
    public let peer: NodeID
    /// The member the stream's link runs through, when it is a relayed link (`Link.relay`).
    public let relay: NodeID?
    /// The channel of the stream's link (its TCP connection, or the stream a relayed link runs
    /// on): it closes when the link does.
    let linkChannel: any Channel

    init(channel: any Channel, peer: NodeID, relay: NodeID? = nil, linkChannel: any Channel) {
        self.channel = channel
        self.peer = peer
        self.relay = relay
        self.linkChannel = linkChannel
    }
}

/// Decides on a stream the peer opened: given the request headers and the stream, returns the
/// status to answer (`200` to accept; e.g. `502` when the local app cannot be reached, `503` when
/// nothing serves the request). Add handlers to `stream.channel` before returning 2xx: the
/// stream's data is held back until the answer is sent.
public typealias LinkStreamAcceptor = @Sendable (_ headers: [(String, String)], _ stream: LinkStream) async -> Int
