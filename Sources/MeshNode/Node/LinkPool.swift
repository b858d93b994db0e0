import Gossip
import Link
import Logging
import Metrics
import NIOCore

/// Finds or makes the link to a node, and keeps the links that runs depend on up.
actor LinkPool {
    private let endpoint: LinkEndpoint
    private var maintained: [NodeID: Task<Void, Never>] = [:]
    /// Dials in progress: callers that need the same peer at once share one dial.
    private var dialling: [NodeID: Task<Link, any Error>] = [:]
    /// Relayed links being made, shared the same way.
    private var relaying: [NodeID: Task<Link, any Error>] = [:]
    private let logger: Logger
    /// The members that announced a gateway: asked first to relay, and counted by `gatewayLinkLimit`.
    private let gateways: @Sendable () async -> Set<NodeID>
    /// At most this many gateways are linked directly (`gatewayLink`); nil: no bound.
    private let gatewayLinkLimit: Int?
    /// Members asked in turn for one relayed link, at most.
    static let relayCandidates = 4
    /// How long a relayed link carries no stream before `closeIdleRelayedLinks` may close it.
    static let defaultRelayIdleTimeout: Duration = .seconds(60)
    private let relayIdleTimeout: Duration
    /// Per relayed link: its streams opened when last seen, and since when that count has not moved.
    private var relayUse: [ObjectIdentifier: (opened: Int, since: ContinuousClock.Instant)] = [:]

    init(endpoint: LinkEndpoint, logger: Logger, gatewayLinkLimit: Int? = nil,
         relayIdleTimeout: Duration = LinkPool.defaultRelayIdleTimeout,
         gateways: @escaping @Sendable () async -> Set<NodeID> = { [] }) {
        self.endpoint = endpoint
        self.logger = logger
        self.gatewayLinkLimit = gatewayLinkLimit
        self.relayIdleTimeout = relayIdleTimeout
        self.gateways = gateways
    }

    /// The link to use for `peer`, if one is up: its newest live direct link (in either
    /// direction), or while none is up its newest relayed one. A peer that dialled again holds
    /// only its newest link; an older one may be silent until it is found dead.
    nonisolated func existing(_ peer: NodeID) -> Link? {
        Self.newest(endpoint.links, to: peer)
    }

    /// The newest live direct (not relayed) link to `peer`: the only kind a relay relays over.
    nonisolated func existingDirect(_ peer: NodeID) -> Link? {
        Self.newest(endpoint.links.filter { $0.relay == nil }, to: peer)
    }

    static func newest(_ links: [Link], to peer: NodeID) -> Link? {
        let key = LinkSetup.newest(links.map(\.candidate), to: peer)
        return links.first { ObjectIdentifier($0) == key }
    }

    /// A link to `peer`, dialling `address` when none is up. A member behind NAT (`linksOnly`) on
    /// another network is not dialled: it is reached over the links it holds.
    func link(to peer: NodeID, address: String, linksOnly: Bool = false) async throws -> Link {
        if let link = existing(peer) { return link }
        return try await dial(peer, address: address, linksOnly: linksOnly)
    }

    /// Dials `peer` at `address`, or joins the dial to it already in progress.
    private func dial(_ peer: NodeID, address: String, linksOnly: Bool = false) async throws -> Link {
        if let dial = dialling[peer] { return try await dial.value }
        guard let (host, port) = HostPort.parse(address) else {
            throw LeaseUnavailable(address: address, reason: "its mesh address \(address) is not host:port")
        }
        guard LinkReach.local().mayDial(host, linksOnly: linksOnly) else {
            throw LinkError.connectFailed(
                host: host, port: port,
                reason: "node \(peer.short) is behind NAT on another network; it is reached over the links it holds, not dialled")
        }
        let endpoint = self.endpoint
        let dial = Task { try await endpoint.dial(host: host, port: port, expecting: peer) }
        dialling[peer] = dial
        defer { dialling[peer] = nil }
        return try await dial.value
    }

    /// A link to the gateway `peer` for lease calls. While the node has fewer than
    /// `gatewayLinkLimit` other gateways linked directly, a direct link, kept up (`keep`); past the
    /// bound, while that link is being re-made, or when it can't be dialled, a link relayed by a
    /// member linked to it (`relayed(to:)`). A relayed link already up never stands in for the
    /// direct link kept within the bound.
    func gatewayLink(to peer: NodeID, address: String) async throws -> Link {
        if let link = existingDirect(peer) { return link }
        if maintained[peer] == nil, let limit = gatewayLinkLimit {
            let gateways = await gateways()
            let direct = Set(endpoint.links.filter { $0.isActive && $0.relay == nil }.map(\.peer)).union(maintained.keys)
            if direct.subtracting([peer]).intersection(gateways).count >= limit { return try await relayed(to: peer) }
        }
        if maintained[peer] != nil {
            // The kept link is being dialled (its first dial, or again after it dropped): one
            // relay hop meanwhile, or a dial of this call's own when no member relays.
            do { return try await relayed(to: peer) } catch { return try await link(to: peer, address: address) }
        }
        // One dial serves this call and the kept link: two at once would each be a new inbound
        // link at the gateway, which closes the older one, failing the call that made it.
        let dialled: Result<Link, any Error>
        do { dialled = .success(try await dial(peer, address: address)) } catch { dialled = .failure(error) }
        keep(peer, address: address)
        switch dialled {
        case .success(let link): return link
        case .failure(let dialError):
            logger.debug("no direct link to a gateway; asking for a relayed one", metadata: ["peer.id": "\(peer.short)", "error": "\(dialError)"])
            do { return try await relayed(to: peer) } catch { throw dialError }
        }
    }

    /// A link to `peer` through one relay hop (`LinkRelay`): the members this node is linked to
    /// directly are asked in turn, gateways first, whether they hold a link to `peer`; the first
    /// that relays carries the link. Returns a live link to `peer` if one is up already.
    func relayed(to peer: NodeID) async throws -> Link {
        if let link = existing(peer) { return link }
        if let pending = relaying[peer] { return try await pending.value }
        let gateways = await gateways()
        var candidates: [Link] = []
        for link in endpoint.links.filter({ $0.isActive && $0.relay == nil && $0.peer != peer }).sorted(by: { $0.established > $1.established })
        where !candidates.contains(where: { $0.peer == link.peer }) {
            candidates.append(link)
        }
        candidates = candidates.filter { gateways.contains($0.peer) } + candidates.filter { !gateways.contains($0.peer) }
        let endpoint = self.endpoint, logger = self.logger
        let attempt = Task { () throws -> Link in
            var asked: [(NodeID, String)] = []
            for relay in candidates.prefix(Self.relayCandidates) {
                do {
                    let stream = try await relay.openStream(headers: [(":path", LinkRelay.openPath), (LinkRelay.toHeader, peer.description)])
                    let link = try await endpoint.dialRelayed(over: stream, expecting: peer)
                    Counter(label: "warren_relay_links_total", dimensions: [("role", "origin")]).increment()
                    logger.debug("relayed link up", metadata: ["peer.id": "\(peer.short)", "relay.id": "\(relay.peer.short)"])
                    return link
                } catch {
                    asked.append((relay.peer, "\(error)"))
                }
            }
            throw RelayUnavailable(peer: peer, asked: asked)
        }
        relaying[peer] = attempt
        defer { relaying[peer] = nil }
        return try await attempt.value
    }

    /// Keeps a link to `peer` up (redialling with backoff) until `release` or shutdown: a runner's
    /// link to its gateway, on which the gateway opens the streams of public connections.
    func keep(_ peer: NodeID, address: String) {
        guard maintained[peer] == nil, let (host, port) = HostPort.parse(address) else { return }
        let endpoint = self.endpoint
        maintained[peer] = Task { await endpoint.maintainLink(host: host, port: port, expecting: peer) }
        logger.debug("keeping a link up", metadata: ["peer.id": "\(peer.short)", "link.address": "\(address)"])
    }

    /// For a node behind NAT, which only the links it holds connect to the mesh: keeps links to
    /// every gateway it can dial and to at least `minimum` members in all, so that no single
    /// member's view decides whether it is alive, and every gateway probes it over a link.
    func keepLinks(among members: [Member], local: NodeID, minimum: Int = 2) {
        let reach = LinkReach.local()
        var targets = Self.linkTargets(among: members, local: local, minimum: minimum, reach: reach)
        if let limit = gatewayLinkLimit {
            // Gateways linked now first, so that the bound does not move links about.
            let linked = Set(endpoint.links.filter { $0.isActive && $0.relay == nil }.map(\.peer)).union(maintained.keys)
            let gateways = targets.filter { MemberTraits(metadata: $0.metadata).isGateway }
            let kept = (gateways.filter { linked.contains($0.id) } + gateways.filter { !linked.contains($0.id) }).prefix(limit)
            targets = targets.filter { member in !gateways.contains { $0.id == member.id } || kept.contains { $0.id == member.id } }
        }
        for member in targets {
            keep(member.id, address: member.address)
        }
    }

    /// Closes the relayed links, in either direction, that carried no stream for the pool's
    /// `relayIdleTimeout` and are no longer needed: a direct link to the peer is up, or `wanted`
    /// says the peer is not (it left the mesh or was removed). A relayed link that is still needed
    /// stays, as does a busy one; one closed is made again when a stream needs it. The node calls
    /// this every few seconds; a link is first seen idle on one call and closed on a later one.
    /// Returns the links closed.
    @discardableResult
    func closeIdleRelayedLinks(wanted: @Sendable (NodeID) -> Bool = { _ in true }, now: ContinuousClock.Instant = .now) async -> [Link] {
        let relayedLinks = endpoint.links.filter { $0.isActive && $0.relay != nil }
        let current = Set(relayedLinks.map { ObjectIdentifier($0) })
        relayUse = relayUse.filter { current.contains($0.key) }
        var idle: [Link] = []
        for link in relayedLinks {
            let key = ObjectIdentifier(link), traffic = link.traffic.snapshot
            // Every link holds one stream open for its whole life (`LinkPath.reverse`): any
            // other open stream is a connection in use.
            guard let use = relayUse[key], use.opened == traffic.streamsOpened, traffic.streamsActive <= 1 else {
                relayUse[key] = (traffic.streamsOpened, now)
                continue
            }
            if now - use.since >= relayIdleTimeout, existingDirect(link.peer) != nil || !wanted(link.peer) {
                idle.append(link)
            }
        }
        for link in idle {
            relayUse[ObjectIdentifier(link)] = nil
            let reason = existingDirect(link.peer) != nil ? "direct link up" : "peer not wanted"
            Counter(label: "warren_relay_links_closed_total", dimensions: [("reason", reason)]).increment()
            logger.debug("closing an idle relayed link", metadata: [
                "peer.id": "\(link.peer.short)", "relay.id": "\(link.relay.map { $0.short } ?? "-")", "reason": "\(reason)",
            ])
            await link.close()
        }
        return idle
    }

    static func linkTargets(among members: [Member], local: NodeID, minimum: Int, reach: LinkReach) -> [Member] {
        let candidates = members.filter { member in
            let traits = MemberTraits(metadata: member.metadata)
            guard member.id != local, member.state == .alive || member.state == .suspect,
                  let (host, _) = HostPort.parse(member.address) else { return false }
            return reach.mayDial(host, linksOnly: traits.linksOnly)
        }.sorted { $0.id.description < $1.id.description }
        var targets = candidates.filter { MemberTraits(metadata: $0.metadata).isGateway }
        for member in candidates where targets.count < minimum && !targets.contains(where: { $0.id == member.id }) {
            targets.append(member)
        }
        return targets
    }

    func shutdown() {
        for task in maintained.values { task.cancel() }
        maintained = [:]
        for task in dialling.values { task.cancel() }
        for task in relaying.values { task.cancel() }
    }
}
