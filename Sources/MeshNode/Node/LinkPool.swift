import Gossip
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
        links.filter { $0.peer == peer && $0.isActive }.max { $0.established < $1.established }
    }

    /// A link to `peer`, dialling `address` when none is up.
    func link(to peer: NodeID, address: String) async throws -> Link {
        if let link = existing(peer) { return link }
        if let dial = dialling[peer] { return try await dial.value }
        guard let (host, port) = HostPort.parse(address) else {
            throw LeaseUnavailable(address: address, reason: "its mesh address \(address) is not host:port")
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

    func shutdown() {
        for task in maintained.values { task.cancel() }
        maintained = [:]
        for task in dialling.values { task.cancel() }
    }
}
