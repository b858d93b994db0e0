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

    init(endpoint: LinkEndpoint, logger: Logger, gatewayLinkLimit: Int? = nil,
         gateways: @escaping @Sendable () async -> Set<NodeID> = { [] }) {
        self.endpoint = endpoint
        self.logger = logger
        self.gatewayLinkLimit = gatewayLinkLimit
        self.gateways = gateways
    }

    /// The newest live link to `peer` (in either direction), if one is up. A peer that dialled
    /// again holds only its newest link; an older one may be silent until it is found dead.
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

    /// A link to the gateway `peer` for lease calls, kept up while the node has fewer than
    /// `gatewayLinkLimit` gateways linked directly; past the bound, or while a direct link can't be
    /// made, a link relayed by a member linked to it (`relayed(to:)`).
    func gatewayLink(to peer: NodeID, address: String) async throws -> Link {
        if let link = existing(peer) { return link }
        if let limit = gatewayLinkLimit, maintained[peer] == nil {
            let gateways = await gateways()
            let direct = Set(endpoint.links.filter { $0.isActive && $0.relay == nil }.map(\.peer)).union(maintained.keys)
            if direct.intersection(gateways).count >= limit { return try await relayed(to: peer) }
        }
        keep(peer, address: address)
        do {
            return try await link(to: peer, address: address)
        } catch let dialError {
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
