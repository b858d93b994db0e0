import Foundation
import Gossip
import Trust

/// A gateway as it announces itself to the mesh (entry kind `gateway`, key: its node ID).
struct GatewayEntry: Codable, Sendable, Equatable {
    var name: String
    /// The public address services name it by.
    var address: String
    var domains: [String]
    /// Where its links and gossip are reached ("host:port").
    var meshAddress: String
    var backend: String
    var region: String?
    /// The release it serves to new gateways, by SHA-256, and where (`ReleaseServer`).
    var releaseSHA256: String?
    var releaseURL: String?
    /// Its HTTP port for names (nil from older gateways: 80), and its HTTPS port when it
    /// terminates TLS (it has ACME), so a runner prints the URL the gateway really serves.
    var httpPort: Int? = nil
    var httpsPort: Int? = nil
}

/// What this node knows of the mesh's gateways and leases, from the replicated entries.
actor MeshView {
    private var announced: [NodeID: GatewayEntry] = [:]
    private var leases: [String: Lease] = [:]
    /// Who wrote each lease entry: a gateway trusts only its own for its table.
    private var leaseAuthors: [String: NodeID] = [:]
    /// Nodes removed from the mesh for good: their gateway entries no longer count.
    private var removed: Set<NodeID> = []
    /// Domain claims by entry key (`domain|runID`); the gate let in only those whose holder wrote them.
    private var claims: [String: DomainClaim] = [:]

    /// The gateways of the mesh's members.
    var gateways: [NodeID: GatewayEntry] { announced.filter { !removed.contains($0.key) } }

    /// Follows the roster's removals (`warren mesh remove`, `gateway delete`).
    func setRemoved(_ nodes: Set<NodeID>) {
        removed = nodes
    }

    /// The entry key of a lease: one binding on one gateway address.
    static func leaseKey(_ b: Binding) -> String { "\(b.address)|\(b.port)|\(b.host ?? "")" }

    func apply(_ entry: Entry) {
        switch entry.kind {
        case .gateway:
            guard let id = NodeID(entry.key) else { return }
            announced[id] = entry.value.flatMap { try? JSONDecoder().decode(GatewayEntry.self, from: Data($0)) }
        case .lease:
            leases[entry.key] = entry.value.flatMap { try? JSONDecoder().decode(Lease.self, from: Data($0)) }
            leaseAuthors[entry.key] = entry.value == nil ? nil : entry.author
        case .domainClaim:
            claims[entry.key] = entry.value.flatMap(DomainClaim.decode).flatMap { claim in
                claim.key == entry.key && claim.holder == entry.author.description ? claim : nil
            }
        default:
            break
        }
    }

    /// The live domain claims, none of a removed node.
    func domainClaims(now: Date = Date()) -> DomainClaims {
        DomainClaims(claims.values.filter { claim in claim.isLive(at: now) && !removed.contains { $0.description == claim.holder } }
            .sorted { $0.key < $1.key })
    }

    var knownGateways: [KnownGateway] {
        gateways.values.map {
            KnownGateway(name: $0.name, address: $0.address, domains: $0.domains, httpPort: $0.httpPort ?? 80, httpsPort: $0.httpsPort)
        }.sorted { $0.name < $1.name }
    }

    func gateway(address: String) -> (id: NodeID, entry: GatewayEntry)? {
        gateways.first { $0.value.address == address }.map { ($0.key, $0.value) }
    }

    /// The gateway that announced `address`, removed from the mesh or not: to say what became of it.
    func announcedGateway(address: String) -> (id: NodeID, entry: GatewayEntry, removed: Bool)? {
        announced.first { $0.value.address == address }.map { ($0.key, $0.value, removed.contains($0.key)) }
    }

    /// Live leases as gossip has them, but none held by a removed node; only those `author` wrote
    /// when given (a gateway never takes another node's word for what it granted).
    func leaseTable(now: Date = Date(), authoredBy author: NodeID? = nil) -> LeaseTable {
        let live = leases.filter { key, lease in
            lease.isLive(at: now) && !removed.contains { $0.description == lease.holder } && (author == nil || leaseAuthors[key] == author)
        }
        return LeaseTable(leases: live.values.sorted { $0.binding.port < $1.binding.port })
    }

    /// The announced gateways whose members gossip knows, with their states (as `gatewayInfos`).
    func meshGateways(members: [NodeID: MemberState]) -> [MeshGateway] {
        gateways.compactMap { id, g in
            members[id].map { MeshGateway(name: g.name, node: id.description, address: g.address, state: $0, releaseSHA256: g.releaseSHA256, releaseURL: g.releaseURL) }
        }.sorted { $0.name < $1.name }
    }

    /// The gateways for `gateway list`, with their members' states. A gateway whose member gossip
    /// has forgotten (it left or died longer ago than `GossipConfig.deadMemberRetention`) is not
    /// listed: its announcement stays in the replica, but it names a machine that is gone.
    func gatewayInfos(members: [NodeID: String]) -> [GatewayInfo] {
        let live = leaseTable().leases
        return gateways.filter { members[$0.key] != nil }.sorted { $0.value.name < $1.value.name }.map { id, g in
            GatewayInfo(
                name: g.name, address: g.address, domains: g.domains, node: id.description, backend: g.backend, region: g.region,
                status: members[id] ?? "unknown",
                bindings: live.filter { $0.binding.address == g.address }.map { lease in
                    lease.binding.host.map { "\($0):\(lease.binding.port)" } ?? "\(lease.binding.port)"
                }, releaseSHA256: g.releaseSHA256, releaseURL: g.releaseURL)
        }
    }
}
