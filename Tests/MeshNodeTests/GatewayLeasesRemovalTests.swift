import Foundation
@testable import MeshNode
import Testing

/// A member removed from the mesh: its leases on a gateway are released at once.
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
}
