public import Gossip
public import Logging
public import NIOCore
internal import LibCrypto
internal import NIOConcurrencyHelpers
internal import NIOHTTP2
internal import NIOPosix

/// Something that happened to a link of an endpoint.
public enum LinkEvent: Sendable {
    /// A link completed its handshake (accepted or dialled).
    case up(Link)
    /// A link closed.
    case down(Link)
}

/// Makes and accepts the encrypted links of one node in one mesh.
///
/// ```swift
/// let endpoint = LinkEndpoint(identity: identity, meshID: "m1", acceptStream: { headers, stream in
///     try? await stream.channel.pipeline.addHandler(MyBytesHandler())
///     return 200
/// })
/// let port = try await endpoint.listen(host: "127.0.0.1", port: 0)
/// let link = try await endpoint.dial(host: "127.0.0.2", port: 7946, expecting: gatewayID)
/// let stream = try await link.openStream(headers: [(":path", LinkPath.proxy.rawValue)]) { channel in ... }
/// for await event in endpoint.events { ... }   // .up(link) / .down(link)
/// ```
/// Streams can be opened from either end of a link; streams the peer opens are answered by the
/// acceptor given here, whichever side dialled.
public final class LinkEndpoint: Sendable {
    public let identity: NodeIdentity
    public let meshID: String
    public let configuration: LinkConfiguration
    /// Links going up and down, inbound and outbound. Buffers the newest 1024 events when nobody reads.
    public let events: AsyncStream<LinkEvent>

    private let continuation: AsyncStream<LinkEvent>.Continuation
    private let group: any EventLoopGroup
    private let logger: Logger
    private let admit: @Sendable (NodeID) -> Bool
    private let acceptStream: LinkStreamAcceptor
    private let state = NIOLockedValueBox(State())

    private struct State {
        var listeners: [any Channel] = []
        var links: [ObjectIdentifier: Link] = [:]
        /// Accepted connections still in their handshake (see `maxPendingHandshakes`).
        var pending = PendingHandshakes<ObjectIdentifier, any Channel>()
        var shutDown = false
    }

    /// - Parameters:
    ///   - group: the event loops of the links; NIO's shared singleton by default.
    ///   - admit: whether a node that completed the handshake may keep its inbound link (e.g. is a
    ///     member of the mesh); refused links are closed.
    ///   - acceptStream: answers streams the peer opens (see `LinkStreamAcceptor`); by default every
    ///     stream is refused with 503.
    public init(
        identity: NodeIdentity, meshID: String, configuration: LinkConfiguration = .init(),
        group: (any EventLoopGroup)? = nil,
        logger: Logger = Logger(label: "warren.link"),
        admit: @escaping @Sendable (NodeID) -> Bool = { _ in true },
        acceptStream: @escaping LinkStreamAcceptor = { _, _ in 503 }
    ) {
        self.identity = identity
        self.meshID = meshID
        self.configuration = configuration
        self.group = group ?? MultiThreadedEventLoopGroup.singleton
        self.logger = logger
        self.admit = admit
        self.acceptStream = acceptStream
        (events, continuation) = AsyncStream.makeStream(of: LinkEvent.self, bufferingPolicy: .bufferingNewest(1024))
    }

    /// The links currently up.
    public var links: [Link] { state.withLockedValue { Array($0.links.values) } }

    /// Listens for links on `host:port` (port 0 picks one) and returns the bound port.
    public func listen(host: String, port: Int) async throws -> Int {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 1024, initial: 64 << 10, maximum: configuration.socketReadSize))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    self.beginHandshake(from: channel)
                    let established = channel.eventLoop.makePromise(of: Link.self)
                    // `established` completes either way: the handshake handler fails it on
                    // error, timeout or close.
                    established.futureResult.whenComplete { result in
                        self.state.withLockedValue { $0.pending.end(ObjectIdentifier(channel)) }
                        if case .success(let link) = result { self.register(link) }
                    }
                    do {
                        try self.configure(channel: channel, role: .responder(admit: self.admit), established: established)
                    } catch {
                        established.fail(error)
                        throw error
                    }
                }
            }
            .bind(host: host, port: port)
            .get()
        let shutDown = state.withLockedValue { state in
            if !state.shutDown { state.listeners.append(channel) }
            return state.shutDown
        }
        if shutDown {
            try? await channel.close()
            throw LinkError.closed
        }
        logger.debug("listening for links", metadata: ["link.address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        return channel.localAddress?.port ?? port
    }

    /// Dials `host:port` and completes the handshake; the peer must prove `expecting` (nil: any
    /// node of the mesh, e.g. the seed of a join, whose ID the handshake then reveals).
    public func dial(host: String, port: Int, expecting: NodeID?) async throws -> Link {
        let suite = configuration.suite ?? .preferred
        let established = group.next().makePromise(of: Link.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: established.futureResult.eventLoop)
                .connectTimeout(configuration.connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                    minimum: 1024, initial: 64 << 10, maximum: configuration.socketReadSize))
                .channelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try self.configure(channel: channel, role: .initiator(suite: suite, expecting: expecting), established: established)
                    }
                }
                .connect(host: host, port: port)
                .get()
        } catch {
            established.fail(error)
            throw LinkError.connectFailed(host: host, port: port, reason: "\(error)")
        }
        do {
            let link = try await established.futureResult.get()
            register(link)
            return link
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// Keeps a direct link to `host:port` up until the calling task is cancelled: dials (unless a
    /// direct link to `expecting` is up already; a relayed one does not count), waits for it to
    /// drop, dials again after an exponential backoff with jitter (0.5 s doubling to 10 s; reset
    /// once a link is up). The links appear in `events`. `LinkSetup` decides; this carries its
    /// actions out.
    public func maintainLink(host: String, port: Int, expecting: NodeID, backoff: LinkBackoff = LinkBackoff()) async {
        var random = SystemRandomNumberGenerator()
        var (setup, action) = LinkSetup.start(peer: expecting, backoff: backoff, links: links.map(\.candidate), now: .now())
        var dialled: Link?
        while !Task.isCancelled {
            switch action {
            case .dial:
                do {
                    let link = try await dial(host: host, port: port, expecting: expecting)
                    if Task.isCancelled {
                        link.channel.close(promise: nil)
                        return
                    }
                    dialled = link
                    action = setup.dialled(ObjectIdentifier(link), now: .now())
                } catch {
                    logger.debug("link dial failed", metadata: ["link.address": "\(host):\(port)", "error": "\(error)"])
                    action = setup.dialFailed(now: .now(), using: &random)
                }
            case .watch(let key):
                if let link = dialled.flatMap({ ObjectIdentifier($0) == key ? $0 : nil }) ?? links.first(where: { ObjectIdentifier($0) == key }) {
                    await withTaskCancellationHandler {
                        try? await link.closeFuture.get()
                    } onCancel: {
                        link.channel.close(promise: nil)
                    }
                }
                dialled = nil
                action = setup.linkDown(now: .now(), using: &random)
            case .wait(let until):
                let left = until - .now()
                if left > .zero { try? await Task.sleep(for: .nanoseconds(left.nanoseconds)) }
                action = setup.wokeUp(links: links.map(\.candidate), now: .now())
            }
        }
    }

    /// Makes a link to `expecting` over `stream`, a stream of this node's link to a relay that the
    /// relay spliced to a stream of its own link to that node (`acceptRelayed` is the other end).
    /// The handshake runs end to end through the relay, which sees only ciphertext; this node is
    /// the dialler. The link is registered like a dialled one and closes with the stream.
    public func dialRelayed(over stream: LinkStream, expecting: NodeID) async throws -> Link {
        let suite = configuration.suite ?? .preferred
        let channel = stream.channel
        let established = channel.eventLoop.makePromise(of: Link.self)
        do {
            try await channel.eventLoop.submit {
                try self.configure(channel: channel, role: .initiator(suite: suite, expecting: expecting), established: established,
                                   relay: stream.peer)
            }.get()
            let link = try await established.futureResult.get()
            register(link)
            return link
        } catch {
            established.fail(error)
            try? await channel.close()
            throw error
        }
    }

    /// The far end of `dialRelayed`: runs the handshake as its acceptor on `stream`, a stream the
    /// relay opened on its link to this node, and registers the link once the dialler proved to be
    /// `from` (and is admitted). Call it before answering the stream, so that no byte is missed.
    public func acceptRelayed(on stream: LinkStream, from: NodeID) async throws {
        let channel = stream.channel
        let established = channel.eventLoop.makePromise(of: Link.self)
        established.futureResult.whenSuccess { link in self.register(link) }
        let admit = self.admit
        do {
            try await channel.eventLoop.submit {
                try self.configure(channel: channel, role: .responder(admit: { $0 == from && admit($0) }), established: established,
                                   relay: stream.peer)
            }.get()
        } catch {
            established.fail(error)
            throw error
        }
    }

    /// Stops listening and closes every link.
    public func shutdown() async {
        let (listeners, links) = state.withLockedValue { state in
            state.shutDown = true
            defer { state.listeners = []; }
            return (state.listeners, Array(state.links.values))
        }
        for listener in listeners { try? await listener.close() }
        for link in links { await link.close() }
        continuation.finish()
    }

    /// Counts an accepted connection into its handshake. When its source address already holds
    /// `maxPendingHandshakesPerAddress`, or all `maxPendingHandshakes` places are taken, the
    /// oldest pending handshake of that address (or of all) is closed to make room: a real peer
    /// completes its handshake in a round trip, so a flood of silent connections pushes out only
    /// its own, and one address never holds more than its share.
    private func beginHandshake(from channel: any Channel) {
        let address = channel.remoteAddress?.ipAddress ?? "?"
        let configuration = self.configuration
        let evicted = state.withLockedValue { state in
            state.pending.begin(
                ObjectIdentifier(channel), connection: channel, address: address,
                limit: configuration.maxPendingHandshakes, perAddress: configuration.maxPendingHandshakesPerAddress)
        }
        for (old, reason) in evicted {
            logger.debug("link handshake pushed out by a newer connection", metadata: [
                "link.remote": "\(old.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(reason)",
            ])
            old.close(promise: nil)
        }
    }

    private func register(_ link: Link) {
        let key = ObjectIdentifier(link)
        let (accepted, replaced) = state.withLockedValue { state -> (Bool, [Link]) in
            guard !state.shutDown else { return (false, []) }
            let replaced = LinkSetup.replaced(by: link.candidate, among: state.links.values.map(\.candidate))
                .compactMap { state.links[$0] }
            state.links[key] = link
            return (true, replaced)
        }
        guard accepted else {
            link.channel.close(promise: nil)
            return
        }
        logger.debug("link up", metadata: ["peer.id": "\(link.peer.short)", "link.remote": "\(link.remoteAddress.map { "\($0)" } ?? "?")"])
        continuation.yield(.up(link))
        for old in replaced {
            logger.debug("link replaced by the peer's newer link", metadata: [
                "peer.id": "\(old.peer.short)", "link.remote": "\(old.remoteAddress.map { "\($0)" } ?? "?")",
            ])
            // Its streams fail at once; their users retry on the newest link.
            old.channel.close(promise: nil)
        }
        link.closeFuture.whenComplete { [self] _ in
            state.withLockedValue { _ = $0.links.removeValue(forKey: key) }
            logger.debug("link down", metadata: ["peer.id": "\(link.peer.short)"])
            continuation.yield(.down(link))
        }
    }

    /// Installs the handshake on a new connection; once it completes, the record cipher, HTTP/2
    /// and the error handler replace it, and `established` succeeds with the link.
    ///
    /// HTTP/2 lets only its client open streams, but both ends of a link must: a gateway opens
    /// streams to the runner that dialled it, and the runner asks the gateway for leases. So the
    /// acceptor of the TCP connection is the HTTP/2 client of the link's main session (the bulk
    /// path, gateway → runner), and opens one long-lived stream at `LinkPath.reverse` that
    /// carries a second, nested HTTP/2 session in which the dialler is the client.
    private func configure(channel: any Channel, role: LinkHandshake.Role, established: EventLoopPromise<Link>, relay: NodeID? = nil) throws {
        let configuration = self.configuration
        let logger = self.logger
        // Streams of a relayed link say so: a relay never relays them again (one hop).
        let acceptStream: LinkStreamAcceptor
        if let relay {
            let inner = self.acceptStream
            acceptStream = { headers, stream in await inner(headers, LinkStream(channel: stream.channel, peer: stream.peer, relay: relay, linkChannel: stream.linkChannel)) }
        } else {
            acceptStream = self.acceptStream
        }
        let dialler: Bool
        if case .initiator = role { dialler = true } else { dialler = false }
        let machine = LinkHandshake(role: role, identity: identity, meshID: meshID)
        let traffic = LinkTraffic()
        let handshake = LinkHandshakeHandler(
            machine: machine, timeout: configuration.handshakeTimeout, logger: logger,
            onComplete: { context, result in
                guard let sendKey = result.send.key, let receiveKey = result.receive.key else {
                    throw LinkError.handshakeFailed(.outOfOrder)
                }
                let sealer = try LinkRecordCipher(suite: result.suite, direction: .seal, key: sendKey, rekeyInterval: configuration.rekeyInterval)
                let opener = try LinkRecordCipher(suite: result.suite, direction: .open, key: receiveKey, rekeyInterval: configuration.rekeyInterval)
                let sync = context.pipeline.syncOperations
                let decoder = LinkRecordDecoder(cipher: opener, readSize: configuration.socketReadSize)
                try sync.addHandler(decoder, position: .after(context.handler))
                let encoder = LinkRecordEncoder(cipher: sealer)
                try sync.addHandler(encoder, position: .after(decoder))
                if let interval = configuration.keepaliveInterval {
                    try sync.addHandler(
                        LinkKeepaliveHandler(interval: interval, answerTimeout: configuration.answerTimeout, logger: logger),
                        position: .after(encoder))
                }
                let peer = result.peer
                let channel = context.channel
                let makeLink = { @Sendable (multiplexer: NIOHTTP2Handler.StreamMultiplexer) in
                    Link(peer: peer, direction: dialler ? .outbound : .inbound, suite: result.suite,
                         channel: channel, multiplexer: multiplexer, traffic: traffic, relay: relay, logger: logger)
                }
                if dialler {
                    // Wait for the acceptor's reverse stream, then open streams through it.
                    let reverse = channel.eventLoop.makePromise(of: NIOHTTP2Handler.StreamMultiplexer.self)
                    let reverseTaken = NIOLockedValueBox(false)
                    let decide: LinkStreamAcceptor = { headers, stream in
                        guard LinkPath.of(headers) == LinkPath.reverse.rawValue else {
                            return await acceptStream(headers, stream)
                        }
                        guard reverseTaken.withLockedValue({ taken in defer { taken = true }; return !taken }) else { return 409 }
                        do {
                            try await stream.channel.pipeline.addHandler(ReadReentryGuard()).get()
                            let multiplexer = try await stream.channel.configureHTTP2Pipeline(
                                mode: .client, connectionConfiguration: Self.connectionConfiguration(configuration),
                                streamConfiguration: Self.streamConfiguration(configuration),
                                inboundStreamInitializer: { $0.close() }
                            ).get()
                            reverse.succeed(multiplexer)
                            return 200
                        } catch {
                            reverse.fail(error)
                            return 500
                        }
                    }
                    _ = try sync.configureHTTP2Pipeline(
                        mode: .server,
                        connectionConfiguration: Self.connectionConfiguration(configuration),
                        streamConfiguration: Self.streamConfiguration(configuration),
                        inboundStreamInitializer: Self.acceptingStreams(decide, peer: peer, link: channel, traffic: traffic, logger: logger))
                    try sync.addHandler(LinkErrorHandler(logger: logger))
                    let timeout = channel.eventLoop.scheduleTask(in: configuration.handshakeTimeout) {
                        reverse.fail(LinkError.handshakeTimeout)
                    }
                    channel.closeFuture.whenComplete { _ in reverse.fail(LinkError.closed) }
                    reverse.futureResult.whenComplete { result in
                        timeout.cancel()
                        switch result {
                        case .success(let multiplexer): established.succeed(makeLink(multiplexer))
                        case .failure(let error):
                            established.fail(error)
                            channel.close(promise: nil)
                        }
                    }
                } else {
                    let multiplexer = try sync.configureHTTP2Pipeline(
                        mode: .client,
                        connectionConfiguration: Self.connectionConfiguration(configuration),
                        streamConfiguration: Self.streamConfiguration(configuration),
                        inboundStreamInitializer: { $0.close() })
                    try sync.addHandler(LinkErrorHandler(logger: logger))
                    // The reverse stream, with the nested session's server on it.
                    let answered = channel.eventLoop.makePromise(of: Void.self)
                    let request = Link.requestHeaders([(":path", LinkPath.reverse.rawValue)])
                    multiplexer.createStreamChannel { stream in
                        stream.eventLoop.makeCompletedFuture {
                            let streamSync = stream.pipeline.syncOperations
                            try streamSync.addHandler(LinkStreamCounter(traffic: traffic))
                            try streamSync.addHandler(LinkStreamHandler(role: .opener(headers: request, answered: answered), logger: logger))
                            try streamSync.addHandler(ReadReentryGuard())
                            _ = try streamSync.configureHTTP2Pipeline(
                                mode: .server,
                                connectionConfiguration: Self.connectionConfiguration(configuration),
                                streamConfiguration: Self.streamConfiguration(configuration),
                                inboundStreamInitializer: Self.acceptingStreams(acceptStream, peer: peer, link: channel, traffic: traffic, logger: logger))
                        }
                    }.whenFailure { error in answered.fail(error) }
                    answered.futureResult.whenFailure { error in
                        logger.debug("link peer refused the reverse stream", metadata: ["peer.id": "\(peer.short)", "error": "\(error)"])
                        channel.close(promise: nil)
                    }
                    established.succeed(makeLink(multiplexer))
                }
            },
            onFailure: { error in established.fail(error) })
        try channel.pipeline.syncOperations.addHandlers(LinkByteCounter(traffic: traffic), handshake)
    }

    /// The initializer of streams the peer opens: each is answered by `decide`.
    private static func acceptingStreams(
        _ decide: @escaping LinkStreamAcceptor, peer: NodeID, link: any Channel, traffic: LinkTraffic, logger: Logger
    ) -> NIOChannelInitializer {
        { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandlers(
                    LinkStreamCounter(traffic: traffic), LinkStreamHandler(role: .acceptor(decide: decide, peer: peer, link: link), logger: logger))
            }
        }
    }

    static func connectionConfiguration(_ c: LinkConfiguration) -> NIOHTTP2Handler.ConnectionConfiguration {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: c.maxConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: c.streamWindow),
            HTTP2Setting(parameter: .maxFrameSize, value: 1 << 16),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 64 << 10),
        ]
        connection.targetWindowSize = c.connectionWindow
        return connection
    }

    static func streamConfiguration(_ c: LinkConfiguration) -> NIOHTTP2Handler.StreamConfiguration {
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = c.streamWindow
        stream.outboundBufferSizeHighWatermark = c.streamHighWatermark
        stream.outboundBufferSizeLowWatermark = c.streamLowWatermark
        // swift-nio-http2 closes a connection after 200 stream resets or errors in 30 s (its guard
        // against "rapid reset" floods from anonymous clients). On a link every stream is a public
        // connection of a gateway, and clients that abort reset their streams: a busy gateway
        // would tear down the link to its runner. The peer here is an authenticated mesh member,
        // so the bound is raised to what a busy link can do, not removed.
        stream.streamResetFrameRateLimit.maximumCount = LinkConfiguration.maximumStreamResetsPer30Seconds
        stream.streamErrorRateLimit.maximumCount = LinkConfiguration.maximumStreamResetsPer30Seconds
        return stream
    }
}
