import Foundation
import Testing

/// A node that is a gateway and runs a service published on itself: the public connection is
/// dialled to the app on loopback, as no node holds a link to itself.
@Suite(.serialized) struct GatewayOwnRunTests {
    @Test func aGatewayNodeServesARunOfItsOwn() async throws {
        try await RunLifecycleProcessTests.withLab { lab in
            let gw = "127.\(Int.random(in: 100...250)).\(Int.random(in: 1...254)).1"
            let gateway = try lab.startNode("gateway", [
                "--state-dir", lab.gatewayHome, "--listen", "\(gw):\(try freePort(on: gw))", "--gateway", "--public-address", gw, "--name", "own-gw",
            ])
            let listed = try await eventually(within: 30) {
                try await lab.warren(["gateway", "list"], home: lab.gatewayHome).stdout.contains("own-gw")
            }
            try #require(listed, "the gateway never listed itself\n\(gateway.log)")
            let external = try freePort(on: gw)
            let started = try await lab.run("own", gateway: gw, external: external, home: lab.gatewayHome)
            #expect(started.output.contains("http://\(gw):\(external)"), "\(started.output)")
            let body = await fetch("http://\(gw):\(external)/own.txt")
            #expect(body == "own\n", "the gateway did not serve its own run\n\(gateway.log)")
        }
    }
}
