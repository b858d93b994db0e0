public import Gossip
internal import Logging
public import NIOCore
internal import NIOHTTP2

/// An established, authenticated link to another node: one TCP connection, Noise-encrypted,
/// carrying HTTP/2 streams.
public final class Link: Sendable, CustomStringConvertible {
    public enum Direction: Sendable { case inbound, outbound }

    /// The node at the other end, proved by the handshake.
    public let peer: NodeID
    public let direction: Direction
    /// The cipher suite of this link.
    public let suite: LinkSuite
    /// The address of the peer's end of the TCP connection (for a relayed link, the relay's).
    public let remoteAddress: SocketAddress?
    /// For a relayed link, the member it runs through: its bytes are a stream of this node's link
    /// to that member, which splices them to a stream of its own link to the peer. The handshake
    /// and every record run end to end, so the relay carries ciphertext. Nil for a direct link.
    public let relay: NodeID?
    /// Succeeds when the link has closed, for any reason.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Bytes and streams this link carried so far.
    public let traffic: LinkTraffic

    let channel: any Channel
    /// When the link was established: of two links to one peer, the newer is used.
    package let established = NIODeadline.now()
    private let multiplexer: NIOHTTP2Handler.StreamMultiplexer
    private let logger: Logger

    init(peer: NodeID, direction: Direction, suite: LinkSuite, channel: any Channel,
         multiplexer: NIOHTTP2Handler.StreamMultiplexer, traffic: LinkTraffic, relay: NodeID? = nil, logger: Logger) {
        self.traffic = traffic
        self.relay = relay
        self.peer = peer
        self.direction = direction
        self.suite = suite
        self.channel = channel
        self.remoteAddress = channel.remoteAddress
        self.multiplexer = multiplexer
        self.logger = logger
    }

    public var description: String {
        let through = relay.map { " through \($0.short)" } ?? ""
        return "link \(direction == .inbound ? "from" : "to") \(peer.short)\(through) (\(remoteAddress.map { "\($0)" } ?? "?"))"
    }

    /// The event loop of the link's connection (and of all its streams).
    public var eventLoop: any EventLoop { channel.eventLoop }

    /// True until the link has closed.
    public var isActive: Bool { channel.isActive }

    /// Opens a stream: sends `headers` as the request (HTTP/2 pseudo-headers such as `:method`,
    /// `:path` and `:authority` are filled in when absent) and waits for the peer's answer.
    ///
    /// - Parameter initializer: adds your handlers to the stream's pipeline; it runs before the
    ///   request is sent, so no byte of the answer can be missed.
    /// - Returns: the open stream, once the peer answered 2xx.
    /// - Throws: `LinkError.streamRefused(status:)` for another status, `LinkError.closed` when the
    ///   link or the stream closes first.
    public func openStream(
        headers: [(String, String)],
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void> = { $0.eventLoop.makeSucceededVoidFuture() }
    ) async throws -> LinkStream {
        let request = Self.requestHeaders(headers)
        let answered = channel.eventLoop.makePromise(of: Void.self)
        let logger = self.logger
        let traffic = self.traffic
        let link = channel
        let streamChannel: any Channel
        do {
            streamChannel = try await multiplexer.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    // A multiplexer whose connection already closed still makes the stream, but
                    // never tells it of the close: its answer would be awaited forever.
                    guard link.isActive, stream.parent?.isActive != false else { throw LinkError.closed }
                    try stream.pipeline.syncOperations.addHandlers(
                        LinkStreamCounter(traffic: traffic), LinkStreamHandler(role: .opener(headers: request, answered: answered), logger: logger))
                }.flatMap { initializer(stream) }
            }.get()
        } catch {
            // A link that closed before the stream was set up never ran the initializer, so no
            // handler holds `answered`.
            answered.fail(error)
            throw error
        }
        do {
            try await answered.futureResult.get()
        } catch {
            streamChannel.close(promise: nil)
            throw error
        }
        return LinkStream(channel: streamChannel, peer: peer, relay: relay, linkChannel: channel)
    }

    /// Closes the link and every stream on it.
    public func close() async {
        try? await channel.close()
    }

    static func requestHeaders(_ headers: [(String, String)]) -> [(String, String)] {
        var out: [(String, String)] = []
        for name in [":method", ":scheme", ":path", ":authority"] where !headers.contains(where: { $0.0 == name }) {
            switch name {
            case ":method": out.append((name, "POST"))
            case ":scheme": out.append((name, "warren"))
            case ":path": out.append((name, "/"))
            default: out.append((name, "link"))
            }
        }
        // Pseudo-headers first, as HTTP/2 requires.
        return headers.filter { $0.0.hasPrefix(":") } + out + headers.filter { !$0.0.hasPrefix(":") }
    }
}
