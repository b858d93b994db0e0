import Gossip
import Link
import Logging
import NIOCore

/// Finds or makes the link to a node, and keeps the links that runs depend on up.
actor LinkPool {
    private let endpoint: LinkEndpoint
    private var maintained: [NodeID: Task<Void, Never>] = [:]
    /// Dials in progress: callers that need the same peer at once share one dial.
    private var dialling: [NodeID: Task<Link, any Error>] = [:]
    private let logger: Logger

    init(endpoint: LinkEndpoint, logger: Logger) {
        self.endpoint = endpoint
        self.logger = logger
    }

    /// The newest live link to `peer` (in either direction), if one is up. A peer that dialled
    /// again holds only its newest link; an older one may be silent until it is found dead.
    nonisolated func existing(_ peer: NodeID) -> Link? {
        Self.newest(endpoint.links, to: peer)
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
        for member in Self.linkTargets(among: members, local: local, minimum: minimum, reach: reach) {
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
    }
}
