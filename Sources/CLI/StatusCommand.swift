import ArgumentParser
import Foundation
import MeshNode

/// `warren status`: this node, its links, runs and leases at a glance; exit status 1 when no node
/// answers, so scripts and health checks can use it.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show this node (ID, role, mesh, addresses, version, uptime), its links, runs and leases.",
        discussion: "Exit status 0 when the node answers, 1 when it is down.")
    @OptionGroup var node: NodeOptions

    /// `status --json`.
    struct Report: Encodable {
        var node: NodeInfo
        var uptimeSeconds: Int?
        /// Every member but this node, as gossip has them.
        var peers: [PeerInfo]
        var runs: [RunInfo]
        /// The leases this node's runs hold.
        var leases: [LeaseInfo]
    }

    func run() async throws {
        let client = node.client
        let report: Report = try reportingFailures {
            let info: NodeInfo = try client.get("/v1/node")
            let peers: [PeerInfo] = try client.get("/v1/peers")
            let runs: [RunInfo] = try client.get("/v1/runs")
            let leases: [LeaseInfo] = try client.get("/v1/leases")
            return Report(
                node: info, uptimeSeconds: info.started.map { max(0, Int(Date().timeIntervalSince($0))) },
                peers: peers, runs: runs.filter(\.isActive), leases: leases.filter { $0.node == info.id })
        }
        if node.json { try Output.json(report); return }
        Output.line(Self.text(report))
    }

    static func text(_ r: Report) -> String {
        let n = r.node
        let linked = r.peers.filter(\.linked)
        let alive = r.peers.filter { $0.state == "alive" }.count
        var rows: [[String]] = [
            ["node", "\(n.id) (\(n.isGateway ? "gateway" : "runner"))"],
            ["mesh", n.meshID],
            ["listen", n.listen],
        ]
        if let publicAddress = n.publicAddress { rows.append(["public", publicAddress]) }
        rows.append(["version", n.version ?? "unknown (the node does not say)"])
        rows.append(["uptime", r.uptimeSeconds.map(duration) ?? "unknown"])
        rows.append(["state dir", n.stateDirectory])
        rows.append(["members", "\(alive + 1) alive of \(r.peers.count + 1), this node included"])
        rows.append(["links", linked.isEmpty ? "none" : linked.map { "\(NodeIDText.short($0.id)) \($0.address)" }.joined(separator: ", ")])
        rows.append(["runs", r.runs.isEmpty ? "none active" : r.runs.map { "\($0.name) \($0.state.rawValue)\($0.url.map { " \($0)" } ?? "")" }.joined(separator: ", ")])
        rows.append(["leases", r.leases.isEmpty ? "none held" : r.leases.map {
            "\($0.host.map { "\($0) on " } ?? "")\($0.gateway):\($0.port) (\($0.run))"
        }.joined(separator: ", ")])
        return rows.map { " " + $0[0].padding(toLength: 11, withPad: " ", startingAt: 0) + $0[1] }.joined(separator: "\n")
    }

    /// "42s", "3m 12s", "5h 2m", "2d 4h".
    static func duration(_ seconds: Int) -> String {
        switch seconds {
        case ..<60: return "\(seconds)s"
        case ..<3600: return "\(seconds / 60)m \(seconds % 60)s"
        case ..<86400: return "\(seconds / 3600)h \(seconds % 3600 / 60)m"
        default: return "\(seconds / 86400)d \(seconds % 86400 / 3600)h"
        }
    }
}
