import Foundation
import Testing

/// `warren mesh remove` releases the removed runner's leases at once, end to end: real `warren`
/// processes, a founded mesh of a gateway (127.0.0.81) and two runners (127.0.0.82, .83).
///
/// Leases live for 10 minutes here, far longer than the test waits, so only the release on
/// removal (not expiry) can free the port.
@Suite(.serialized) struct RemovalLeaseProcessTests {
    static let gateway = "127.0.0.81"
    static let runners = ["127.0.0.82", "127.0.0.83"]

    @Test func removingARunnerFreesItsGatewayPortForAnotherMember() async throws {
        let lab = try Lab(leaseTTL: 600)
        do {
            try await removeRunner(lab)
        } catch {
            await lab.tearDown()
            throw error
        }
        await lab.tearDown()
    }

    private func removeRunner(_ lab: Lab) async throws {
        let gw = Self.gateway
        let (gwHome, removedHome, otherHome) = (lab.gatewayHome, lab.runnerHome, lab.root + "/other")
        let gatewayPort = try freePort(on: gw)
        let founded = try await lab.warren(["mesh", "init", "--advertise", "\(gw):\(gatewayPort)"], home: gwHome)
        #expect(founded.status == 0, "\(founded.stderr)")
        let gateway = try lab.startNode("gateway", [
            "--state-dir", gwHome, "--listen", "\(gw):\(gatewayPort)", "--gateway", "--public-address", gw, "--name", "rm-gw",
        ])
        try #require(await eventually(within: 30) { try await lab.warren(["peers"], home: gwHome).status == 0 }, "\(gateway.log)")

        var started: [NodeProcess] = []
        for (home, address) in zip([removedHome, otherHome], Self.runners) {
            let token = try await lab.warren(["invite", "--role", "runner"], home: gwHome)
            try #require(token.status == 0, "\(token.stderr)")
            started.append(try lab.startNode(URL(fileURLWithPath: home).lastPathComponent, [
                "--state-dir", home, "--listen", "\(address):\(try freePort(on: address))",
                "--join", token.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
            ]))
        }
        for (home, node) in zip([removedHome, otherHome], started) {
            let seesGateway = try await eventually(within: 30) {
                try await lab.warren(["gateway", "list"], home: home).stdout.contains("rm-gw")
            }
            try #require(seesGateway, "a runner never listed the gateway\n\(node.log)\n\(gateway.log)")
        }

        // The first runner holds a gateway port.
        let port = try freePort(on: gw)
        let first = try await lab.run("held", gateway: gw, external: port, home: removedHome)
        let held = try await lab.warren(["leases"], home: gwHome).stdout
        #expect(held.contains(first.name), "\(held)")
        #expect(await fetch("http://\(gw):\(port)/")?.contains("held.txt") == true)
        // ... so the other runner is refused it.
        let refused = try await lab.runRaw("refused", gateway: gw, external: port, home: otherHome)
        #expect(refused.status == 1 && refused.stderr.contains(first.name), "\(refused.stderr)")
        #expect(try await lab.warren(["leases"], home: otherHome).stdout.contains(first.name))

        // An admin removes the first runner: the gateway lets its lease go and stops serving it.
        let removedID = try await lab.warren(["node", "id"], home: removedHome).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let removal = try await lab.warren(["mesh", "remove", removedID], home: gwHome)
        #expect(removal.status == 0, "\(removal.stderr)")
        let released = try await eventually(within: 30) {
            !(try await lab.warren(["leases"], home: gwHome).stdout.contains(first.name))
        }
        let leasesAfter = try await lab.warren(["leases"], home: gwHome).stdout
        #expect(released, "the removed runner's lease is still held:\n\(leasesAfter)\n\(gateway.log)")
        #expect(await fetch("http://\(gw):\(port)/")?.contains("held.txt") != true, "the gateway still serves the removed runner")

        // The port is free for another member's service, once the release reached it by gossip
        // (its node refuses early a port it believes held).
        let seenFree = try await eventually(within: 30) {
            !(try await lab.warren(["leases"], home: otherHome).stdout.contains(first.name))
        }
        #expect(seenFree, "the other runner still sees the removed runner's lease")
        let taken = try await lab.run("taker", gateway: gw, external: port, home: otherHome)
        #expect(await fetch("http://\(gw):\(port)/")?.contains("taker.txt") == true, "\(taken.output)")
        let leasesNow = try await lab.warren(["leases"], home: gwHome).stdout
        #expect(leasesNow.contains(taken.name), "\(leasesNow)")
    }
}
