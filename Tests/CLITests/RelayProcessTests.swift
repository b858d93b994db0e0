import Foundation
import Gossip
import Link
import Testing

/// One relay hop between real `warren` processes on loopback: two gateways (127.X.Y.1 and .2)
/// announcing one domain, and a runner (.3) joined through gw1 that keeps a direct link to one
/// gateway only (`--max-gateway-links 1`). Its lease on gw2 and gw2's streams to it go over a
/// link relayed by gw1, authenticated end to end.
@Suite(.serialized) struct RelayProcessTests {
    static let domain = "relay.e2e.test"

    struct Mesh {
        let base: String
        var gw1: String { base + ".1" }
        var gw2: String { base + ".2" }
        let listens: [String]
        /// The gateways' metrics URLs.
        let metrics: [String]
        let runnerHome: String
        let nodes: [NodeProcess]
        var logs: String { nodes.map { "--- \($0.name)\n\($0.log)" }.joined(separator: "\n") }
    }

    static func start(_ lab: Lab) async throws -> Mesh {
        let base = "127.\(Int.random(in: 100...250)).\(Int.random(in: 1...254))"
        let homes = ["gw1", "gw2", "rn"].map { lab.root + "/" + $0 }
        let listens = try (1...3).map { i in "\(base).\(i):\(try freePort(on: "\(base).\(i)"))" }
        let metrics = try (1...2).map { i in "\(base).\(i):\(try freePort(on: "\(base).\(i)"))" }
        var nodes: [NodeProcess] = []
        for i in 0..<2 {
            nodes.append(try lab.startNode("gw\(i + 1)", [
                "--state-dir", homes[i], "--listen", listens[i], "--gateway", "--public-address", "\(base).\(i + 1)", "--name", "rl-gw\(i + 1)",
                "--domain", domain, "--metrics", metrics[i], "--log-level", "debug",
            ] + (i == 1 ? ["--join", listens[0]] : [])))
        }
        nodes.append(try lab.startNode("rn", [
            "--state-dir", homes[2], "--listen", listens[2], "--join", listens[0], "--max-gateway-links", "1", "--log-level", "debug",
        ]))
        let mesh = Mesh(base: base, listens: listens, metrics: metrics.map { "http://\($0)/metrics" }, runnerHome: homes[2], nodes: nodes)
        let both = try await eventually(within: 40) {
            let list = try await lab.warren(["gateway", "list"], home: homes[2]).stdout
            return list.contains("rl-gw1") && list.contains("rl-gw2")
        }
        try #require(both, "the runner never listed both gateways\n\(mesh.logs)")
        return mesh
    }

    static func metric(_ url: String, _ name: String, _ labels: [String: String]) async -> Double {
        MetricsProcessTests.value(await fetch(url) ?? "", name, labels)
    }

    /// A service on both gateways of its domain, on a runner linked to gw1 only: a request to gw2
    /// is answered through gw1, counted as relayed on gw2 (its stream) and on gw1 (the link it
    /// relays). A member that asks gw1 to relay between two non-gateways is refused, and counted.
    @Test func aRunnerLinkedToOneGatewayIsServedThroughTheOtherByOneRelayHop() async throws {
        try await MultiGatewayProcessTests.withLab { lab in
            let mesh = try await Self.start(lab)
            let port = try freePort(on: mesh.gw1)
            let started = try await MultiGatewayProcessTests.run(lab, "relayed", gateway: Self.domain, external: port, home: mesh.runnerHome)
            try #require(started.status == 0, "\(started.stderr)\n\(mesh.logs)")
            #expect(started.stdout.contains("through gateways \(mesh.gw1), \(mesh.gw2)"), "\(started.stdout)")

            let throughGW2 = await eventually(within: 10) {
                await MultiGatewayProcessTests.get(Self.domain, port, at: [mesh.gw2], path: "relayed.txt") == "relayed\n"
            }
            #expect(throughGW2, "gw2 did not serve the runner's service\n\(mesh.logs)")
            #expect(await MultiGatewayProcessTests.get(Self.domain, port, at: [mesh.gw1], path: "relayed.txt") == "relayed\n")

            // gw2's streams to the runner went over a relayed link; gw1 relayed it.
            let counted = await eventually(within: 5) {
                await Self.metric(mesh.metrics[1], "warren_relay_streams_total", ["role": "gateway"]) >= 1
            }
            let gw2Metrics = await fetch(mesh.metrics[1]) ?? ""
            #expect(counted, "gw2 counted no relayed stream:\n\(gw2Metrics)")
            let gw1Metrics = await fetch(mesh.metrics[0]) ?? ""
            #expect(MetricsProcessTests.value(gw1Metrics, "warren_relay_links_total", ["role": "relay"]) >= 1, "gw1 counted no relayed link:\n\(gw1Metrics)")

            // A member (this test's own identity, on a plain link to gw1) asks gw1 to relay to the
            // runner: neither end is a gateway, so gw1 refuses and counts it.
            let runnerID = try await lab.warren(["node", "id", "--state-dir", mesh.runnerHome]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let member = LinkEndpoint(identity: NodeIdentity.generate(), meshID: "warren")
            let (host, linkPort) = try #require(Self.hostPort(mesh.listens[0]))
            let link = try await member.dial(host: host, port: linkPort, expecting: nil)
            await #expect(throws: LinkError.streamRefused(status: 403)) {
                _ = try await link.openStream(headers: [(":path", "/relay"), ("warren-relay-to", runnerID)])
            }
            await member.shutdown()
            let refused = await eventually(within: 5) {
                await Self.metric(mesh.metrics[0], "warren_relay_refused_total", ["reason": "no gateway"]) >= 1
            }
            let after = await fetch(mesh.metrics[0]) ?? ""
            #expect(refused, "gw1 did not count the refused relay:\n\(after)")
        }
    }

    static func hostPort(_ s: String) -> (String, Int)? {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]) else { return nil }
        return (String(s[..<colon]), port)
    }
}
