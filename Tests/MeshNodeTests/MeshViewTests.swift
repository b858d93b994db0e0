import Foundation
import Gossip
@testable import MeshNode
@testable import Provisioning
@testable import Link
import Testing
import Trust
import TrustTestSupport

@Suite struct MeshViewTests {
    static func gatewayEntry(_ node: NodeID, name: String, address: String) throws -> Entry {
        let value = GatewayEntry(name: name, address: address, domains: ["api.example.com"], meshAddress: address + ":7420", backend: "local", region: nil)
        return Entry(kind: EntryKind.gateway, key: node.description,
                     value: Array(try JSONEncoder().encode(value)), timestamp: HLCTimestamp(wallMillis: 1, logical: 0), author: node, signature: [])
    }

    /// A removed node's gateway is no longer offered: not listed, not found for a run's `gateway:`.
    @Test func aRemovedNodesGatewayIsNoLongerOffered() async throws {
        let kept = TestNode().id, gone = TestNode().id
        let view = MeshView()
        await view.apply(try Self.gatewayEntry(kept, name: "gw-kept", address: "127.0.0.2"))
        await view.apply(try Self.gatewayEntry(gone, name: "gw-gone", address: "127.0.0.3"))
        #expect(await view.knownGateways.map(\.name) == ["gw-gone", "gw-kept"])

        await view.setRemoved([gone])
        #expect(await view.knownGateways.map(\.name) == ["gw-kept"])
        #expect(await view.gateway(address: "127.0.0.3") == nil)
        #expect(await view.gateway(address: "127.0.0.2")?.id == kept)
        #expect(await view.gatewayInfos(members: [kept: "alive", gone: "alive"]).map(\.name) == ["gw-kept"])
    }

    /// A gateway whose member gossip forgot (it left longer ago than the retention) is no longer
    /// listed; one that left recently is, as `left`.
    @Test func aForgottenMembersGatewayIsNoLongerListed() async throws {
        let stays = TestNode().id, left = TestNode().id
        let view = MeshView()
        await view.apply(try Self.gatewayEntry(stays, name: "gw-stays", address: "127.0.0.2"))
        await view.apply(try Self.gatewayEntry(left, name: "gw-left", address: "127.0.0.3"))
        let recently = await view.gatewayInfos(members: [stays: "alive", left: "left"])
        #expect(recently.map(\.name) == ["gw-left", "gw-stays"])
        #expect(recently.first?.status == "left")
        #expect(await view.gatewayInfos(members: [stays: "alive"]).map(\.name) == ["gw-stays"])
        // What became of it is still known, for a run bound to its address.
        #expect(await view.announcedGateway(address: "127.0.0.3")?.entry.name == "gw-left")
    }
}
