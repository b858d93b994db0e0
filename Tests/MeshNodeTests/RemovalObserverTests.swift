import Foundation
import Gossip
@testable import MeshNode
@testable import Provisioning
@testable import Trust
import TrustTestSupport
@testable import Link
import NIOConcurrencyHelpers
import Testing

/// A removal is acted on by every node that learns of it: the roster observers (which close the
/// removed node's links, release its leases and rotate its projects' keys) hear of it however it
/// arrived, even though the gate already took it in while the entry was being merged.
@Suite struct RemovalObserverTests {
    @Test func aRemovalMergedByGossipReachesTheRosterObservers() async throws {
        let dir = try StateTestDirectory("warren-removal-observer")
        defer { dir.remove() }
        let store = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))
        let identity = NodeIdentity.generate()
        let founder = identity.keyPair, runner = TestNode()
        let (roster, founding) = try MeshRoster.found(addresses: ["127.0.0.1:1"], at: Date(), keys: founder)
        let gate = MeshGate(meshID: roster.meshID)
        let mesh = try MeshState(identity: identity, address: "127.0.0.1:1", metadata: [], config: .lan, store: store, logger: .quiet("mesh"))
        await mesh.enforce(gate)
        let heard = NIOLockedValueBox<[(old: MeshRoster?, new: MeshRoster?)]>([])
        await mesh.observeRoster { old, new in heard.withLockedValue { $0.append((old, new)) } }
        try await mesh.restore()
        try await mesh.apply(founding)
        var replica = TestReplica()
        replica.apply(founding, author: identity.id)
        let token = try roster.issueInvite(role: .runner, ttl: 600, now: Date(), inviterKeys: founder)
        var verifier = InviteVerifier(roster: replica.roster(roster.meshID))
        try await mesh.apply(try verifier.admit(token.encoded, joining: runner.id, addresses: [], now: Date(), voucherKeys: founder).intents)
        #expect(heard.withLockedValue { $0.last?.new?.isMember(runner.id) } == true)

        // The removal arrives as gossip merges it: checked by the gate first (which recomputes its
        // roster at once), then applied to the replica.
        let removal = try #require(gate.roster).remove(runner.id, at: Date(), adminKeys: founder)
        #expect(gate.accept(MeshGateTests.entry(removal, author: identity.id)) == .accept)
        #expect(!gate.isMember(runner.id))
        try await mesh.apply([removal])
        let last = try #require(heard.withLockedValue { $0.last })
        #expect(last.old?.isMember(runner.id) == true)
        #expect(last.new?.isRemoved(runner.id) == true)
        let old = try #require(last.old)
        #expect(last.new?.changes(since: old).removed == [runner.id])

        // After a restart the removal is in the database: the observers hear a roster with it,
        // measured against none, and act on every removal it holds (`MeshAdminAPI.rosterChanged`).
        let restarted = try MeshState(identity: identity, address: "127.0.0.1:1", metadata: [], config: .lan, store: store, logger: .quiet("mesh"))
        await restarted.enforce(MeshGate(meshID: roster.meshID))
        let heardAfter = NIOLockedValueBox<[(old: MeshRoster?, new: MeshRoster?)]>([])
        await restarted.observeRoster { old, new in heardAfter.withLockedValue { $0.append((old, new)) } }
        try await restarted.restore()
        let first = try #require(heardAfter.withLockedValue { $0.first }, "the restarted replica's observers heard no roster")
        #expect(first.old == nil)
        #expect(first.new?.isRemoved(runner.id) == true)
        #expect(first.new?.isMember(runner.id) == false)
    }
}
