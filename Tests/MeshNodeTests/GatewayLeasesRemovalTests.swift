import Foundation
import Gossip
@testable import MeshNode
@testable import Provisioning
@testable import Trust
import TrustTestSupport
@testable import Link
import Testing

/// A member removed from the mesh: its leases on a gateway are released at once; no other member
/// frees or takes them.
struct GatewayLeasesRemovalTests {
    @Test func leasesOfARemovedHolderAreReleased() async throws {
        let dir = try StateTestDirectory("warren-leases-removal")
        defer { dir.remove() }
        let store = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))
        let leases = GatewayLeases(addresses: ["127.0.0.2"], store: store, hooks: .init(changed: { _, _, _ in }, gossiped: { LeaseTable() }), logger: .quiet("l"))
        _ = try await leases.grant(LeaseRequest(binding: Binding(address: "127.0.0.2", port: 5001), runID: "r1", runName: "a", holder: "removed", appPort: 1))
        _ = try await leases.grant(LeaseRequest(binding: Binding(address: "127.0.0.2", port: 5002), runID: "r2", runName: "b", holder: "kept", appPort: 1))
        await leases.release(heldBy: "removed")
        #expect(await leases.leases.map(\.holder) == ["kept"])
    }

    /// The gateway's side of `/lease/grant` and `/lease/release` takes the holder from the link's
    /// authenticated peer, never from the request: another member sending the victim's run ID (and
    /// even its node ID as `holder`) neither frees nor takes the victim's binding.
    @Test func aLinkPeerCannotReleaseOrTakeAnotherNodesLease() async throws {
        let dir = try StateTestDirectory("warren-leases-hijack")
        defer { dir.remove() }
        let store = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))
        let leases = GatewayLeases(addresses: ["127.0.0.2"], store: store, hooks: .init(changed: { _, _, _ in }, gossiped: { LeaseTable() }), logger: .quiet("l"))
        let victim = NodeIdentity.generate().id, attacker = NodeIdentity.generate().id
        let binding = Binding(address: "127.0.0.2", port: 5001)
        let victims = LeaseRequest(binding: binding, runID: "r1", runName: "app", holder: victim.description, appPort: 8000)
        let granted = try JSONDecoder().decode(LeaseReply.self, from: Data(
            await LinkLeases.serve("/lease/grant", Array(try JSONEncoder().encode(victims)), leases: leases, from: victim)))
        #expect(granted.lease?.holder == victim.description)

        // The attacker claims to be the holder; the link says otherwise.
        var forged = victims
        forged.appPort = 9000
        _ = await LinkLeases.serve("/lease/release", Array(try JSONEncoder().encode(forged)), leases: leases, from: attacker)
        #expect(await leases.leases.map(\.holder) == [victim.description])
        let taken = try JSONDecoder().decode(LeaseReply.self, from: Data(
            await LinkLeases.serve("/lease/grant", Array(try JSONEncoder().encode(forged)), leases: leases, from: attacker)))
        #expect(taken.lease == nil)
        #expect(taken.conflict?.holder.holder == victim.description)
        #expect(await leases.leases.map(\.appPort) == [8000])

        // The holder itself still releases it.
        _ = await LinkLeases.serve("/lease/release", Array(try JSONEncoder().encode(victims)), leases: leases, from: victim)
        #expect(await leases.leases.isEmpty)
    }
}
