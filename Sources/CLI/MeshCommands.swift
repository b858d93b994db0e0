import ArgumentParser
import Foundation
import MeshNode

/// `warren peers`: the members this node knows, as gossip sees them.
struct PeersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "peers", abstract: "List the mesh's members and their state.")
    @OptionGroup var node: NodeOptions

    func run() async throws {
        let client = node.client
        let (me, others): (NodeInfo, [PeerInfo]) = try reportingFailures { (try client.get("/v1/node"), try client.get("/v1/peers")) }
        // This node first: the mesh as this node sees it includes itself.
        let peers = [PeerInfo(id: me.id, address: me.listen, state: "alive", isGateway: me.isGateway, linked: false, isSelf: true)] + others
        if node.json { try Output.json(peers); return }
        Output.line(Output.table(["node", "address", "state", "role", "link"], peers.map {
            [NodeIDText.short($0.id), $0.address, $0.state, $0.isGateway ? "gateway" : "runner",
             $0.isSelf == true ? "(this node)" : $0.linked ? "linked" : "-"]
        }))
    }
}

/// `warren domains`: the domain claims this node has heard, and which run owns each domain.
struct DomainsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "domains", abstract: "List the domains services claim, and which run owns each.",
        discussion: "A domain belongs to one run across all gateways: the earliest claim, then the lowest run ID.")
    @OptionGroup var node: NodeOptions

    func run() async throws {
        let claims: [DomainClaimInfo] = try reportingFailures { try node.client.get("/v1/domains") }
        if node.json { try Output.json(claims); return }
        if claims.isEmpty { Output.line("No domain claims: no running service is routed by a domain."); return }
        Output.line(Output.table(["domain", "run", "node", "claimed", "owner"], claims.map {
            [$0.domain, $0.run, NodeIDText.short($0.node), Output.age($0.claimed), $0.owner ? "yes" : "no (will fail)"]
        }))
    }
}

/// `warren leases`: every binding granted on any gateway, as gossip has spread them.
struct LeasesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "leases", abstract: "List the gateway ports and domains held by services.")
    @OptionGroup var node: NodeOptions

    func run() async throws {
        let leases: [LeaseInfo] = try reportingFailures { try node.client.get("/v1/leases") }
        if node.json { try Output.json(leases); return }
        if leases.isEmpty { Output.line("No leases: no service holds a gateway port."); return }
        Output.line(Output.table(["gateway", "port", "host", "run", "node", "lease"], leases.map {
            [$0.gateway, String($0.port), $0.host ?? "*", $0.run, NodeIDText.short($0.node), Self.state(of: $0)]
        }))
    }

    /// "held (renewed every 10s)" while the holder renews; the time left only once it has missed
    /// renewals (less than half the TTL left, where renewals come every third).
    static func state(of lease: LeaseInfo, now: Date = Date()) -> String {
        guard let ttl = lease.ttlSeconds, ttl > 0 else { return "expires \(Output.remaining(lease.expires, now: now))" }
        let left = lease.expires.timeIntervalSince(now)
        if left > ttl / 2 { return "held (renewed every \(Int((ttl / 3).rounded()))s)" }
        return left > 0 ? "renewals stopped: expires in \(Int(left.rounded()))s" : "renewals stopped: expired"
    }
}

enum NodeIDText {
    static func short(_ id: String) -> String { String(id.prefix(8)) }
}
