import Gossip
import Link
import Logging

/// Finds or makes the link to a node, and keeps the links that runs depend on up.
actor LinkPool {
    private let endpoint: LinkEndpoint
    private var maintained: [NodeID: Task<Void, Never>] = [:]
    private let logger: Logger

    init(endpoint: LinkEndpoint, logger: Logger) {
        self.endpoint = endpoint
        self.logger = logger
    }

    /// A live link to `peer` if one is up (in either direction).
    nonisolated func existing(_ peer: NodeID) -> Link? {
        endpoint.links.first { $0.peer == peer && $0.isActive }
    }

    /// A link to `peer`, dialling `address` when none is up.
    func link(to peer: NodeID, address: String) async throws -> Link {
        if let link = existing(peer) { return link }
        guard let (host, port) = HostPort.parse(address) else {
            throw LeaseUnavailable(address: address, reason: "its mesh address \(address) is not host:port")
        }
        return try await endpoint.dial(host: host, port: port, expecting: peer)
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
    }
}
