import Foundation
import Gossip
@testable import MeshNode
@testable import Provisioning
@testable import Trust
import TrustTestSupport
@testable import Link
import Sodium
import Testing

/// The writer rule of each entry kind (SECURITY.md), as the gate applies it to every entry from
/// elsewhere (gossip, push-pull, held entries) and to the entries a node loads after a restart:
/// each refused entry is never merged, and counted by rule.
@Suite struct WriterRuleTests {
    static func entry(_ kind: EntryKind, _ key: String, _ value: [UInt8]?, by author: NodeID) -> Entry {
        Entry(kind: kind, key: key, value: value,
              timestamp: HLCTimestamp(wallMillis: 1, logical: 0), author: author, signature: [])
    }

    static func gateway(_ address: String) throws -> [UInt8] {
        Array(try JSONEncoder().encode(GatewayEntry(name: "gw", address: address, domains: [], meshAddress: "\(address):1", backend: "local", region: nil)))
    }

    static func lease(_ address: String, port: Int, holder: NodeID, runID: String = "r1") throws -> (key: String, value: [UInt8]) {
        let lease = Lease(binding: Binding(address: address, port: port), runID: runID, runName: "web", holder: holder.description,
                          appPort: 8000, expires: Date().addingTimeInterval(30))
        return (MeshView.leaseKey(lease.binding), Array(try JSONEncoder().encode(lease)))
    }

    @Test func aGatewayEntryIsWrittenOnlyByThatNodeAndNotByARunner() throws {
        let (gate, founder, runner, _) = try MeshGateTests.mesh()
        // Announcing another node as a gateway, or itself with a runner's role: refused.
        #expect(gate.accept(Self.entry(.gateway, founder.id.description, try Self.gateway("203.0.113.10"), by: runner.id)) == .refuse)
        #expect(gate.accept(Self.entry(.gateway, runner.id.description, try Self.gateway("203.0.113.11"), by: runner.id)) == .refuse)
        #expect(gate.refusals["gateway_not_its_node"] == 1)
        #expect(gate.refusals["gateway_role"] == 1)
        // An admin announcing itself: let in.
        #expect(gate.accept(Self.entry(.gateway, founder.id.description, try Self.gateway("203.0.113.10"), by: founder.id)) == .accept)
    }

    @Test func aLeaseIsWrittenOnlyByTheGatewayThatOwnsTheAddress() throws {
        let (gate, founder, runner, _) = try MeshGateTests.mesh()
        #expect(gate.accept(Self.entry(.gateway, founder.id.description, try Self.gateway("203.0.113.10"), by: founder.id)) == .accept)
        // The runner writes a lease on the founder's gateway address, naming itself: refused.
        let forged = try Self.lease("203.0.113.10", port: 5001, holder: runner.id)
        #expect(gate.accept(Self.entry(.lease, forged.key, forged.value, by: runner.id)) == .refuse)
        // Nor may it delete one.
        #expect(gate.accept(Self.entry(.lease, forged.key, nil, by: runner.id)) == .refuse)
        #expect(gate.refusals["lease_not_its_gateway"] == 2)
        // A lease whose key and value disagree on the address: refused even from the gateway.
        let other = try Self.lease("198.51.100.1", port: 5001, holder: runner.id)
        #expect(gate.accept(Self.entry(.lease, forged.key, other.value, by: founder.id)) == .refuse)
        #expect(gate.refusals["lease_malformed"] == 1)
        // The gateway's own grant: let in.
        #expect(gate.accept(Self.entry(.lease, forged.key, forged.value, by: founder.id)) == .accept)
        // A lease by a node whose gateway entry has not arrived, on an address nobody announced: waits.
        let early = try Self.lease("192.0.2.7", port: 1, holder: runner.id)
        #expect(gate.accept(Self.entry(.lease, early.key, early.value, by: runner.id)) == .hold)
    }

    @Test func aDomainClaimNamesItsAuthorAsHolder() throws {
        let (gate, founder, runner, _) = try MeshGateTests.mesh()
        let theirs = Array(try JSONEncoder().encode(MeshEntryGate.DomainClaim(holder: founder.id.description, runID: "r1")))
        let own = Array(try JSONEncoder().encode(MeshEntryGate.DomainClaim(holder: runner.id.description, runID: "r2")))
        #expect(gate.accept(Self.entry(.domainClaim, "app.example.com", theirs, by: runner.id)) == .refuse)
        #expect(gate.refusals["domain_claim_not_own"] == 1)
        #expect(gate.accept(Self.entry(.domainClaim, "app.example.com", own, by: runner.id)) == .accept)
    }

    /// Certificate order claims and shared certificates (key `name|node ID`) are written only by
    /// the gateway the key names, and only by a gateway: a runner can neither win the order lease
    /// nor publish (or delete) a certificate for a name.
    @Test func certificateEntriesAreWrittenOnlyByTheGatewayTheirKeyNames() throws {
        let (gate, founder, runner, _) = try MeshGateTests.mesh()
        func head(_ name: String, _ node: TestNode) throws -> [UInt8] {
            Array(try JSONEncoder().encode(MeshEntryGate.CertificateEntryHead(name: name, gateway: node.id.description)))
        }
        let name = "shop.example.com"
        let founderKey = "\(name)|\(founder.id)", runnerKey = "\(name)|\(runner.id)"
        for kind in [EntryKind.certificateOrder, .certificate] {
            // Before the founder announces its gateway, its own entry waits for that announcement.
            #expect(gate.accept(Self.entry(kind, founderKey, try head(name, founder), by: founder.id)) == .hold, "\(kind)")
        }
        #expect(gate.accept(Self.entry(.gateway, founder.id.description, try Self.gateway("203.0.113.10"), by: founder.id)) == .accept)
        for kind in [EntryKind.certificateOrder, .certificate] {
            // Another node writing or deleting under the gateway's key: refused.
            #expect(gate.accept(Self.entry(kind, founderKey, try head(name, founder), by: runner.id)) == .refuse, "\(kind)")
            #expect(gate.accept(Self.entry(kind, founderKey, nil, by: runner.id)) == .refuse, "\(kind)")
            // A runner under its own key: not a gateway, refused.
            #expect(gate.accept(Self.entry(kind, runnerKey, try head(name, runner), by: runner.id)) == .refuse, "\(kind)")
            // Key and value disagreeing on the name or the gateway: refused even from the gateway.
            #expect(gate.accept(Self.entry(kind, founderKey, try head("other.example.com", founder), by: founder.id)) == .refuse, "\(kind)")
            #expect(gate.accept(Self.entry(kind, founderKey, try head(name, runner), by: founder.id)) == .refuse, "\(kind)")
            #expect(gate.accept(Self.entry(kind, "no-bar", try head(name, founder), by: founder.id)) == .refuse, "\(kind)")
            // The gateway's own: let in, and so is its delete.
            #expect(gate.accept(Self.entry(kind, founderKey, try head(name, founder), by: founder.id)) == .accept, "\(kind)")
            #expect(gate.accept(Self.entry(kind, founderKey, nil, by: founder.id)) == .accept, "\(kind)")
        }
        #expect(gate.refusals["certificate_not_own"] == 4)
        #expect(gate.refusals["certificate_not_gateway"] == 2)
        #expect(gate.refusals["certificate_malformed"] == 6)
    }

    @Test func theMeshsACMESettingIsWrittenOnlyByAnAdmin() throws {
        let (gate, founder, runner, _) = try MeshGateTests.mesh()
        let pebbleLike = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        let setting = MeshACME(directory: "https://ca.example.test/dir", email: "ops@example.com", caBundlePEM: pebbleLike).encoded
        // A runner pointing every gateway at a CA of its choosing, or deleting the admin's: refused.
        #expect(gate.accept(Self.entry(.meshSetting, MeshACME.key, setting, by: runner.id)) == .refuse)
        #expect(gate.accept(Self.entry(.meshSetting, MeshACME.key, nil, by: runner.id)) == .refuse)
        // An admin's with a directory that is not https, or a key in the bundle: refused.
        let plain = MeshACME(directory: "http://ca.example.test/dir").encoded
        #expect(gate.accept(Self.entry(.meshSetting, MeshACME.key, plain, by: founder.id)) == .refuse)
        let key = MeshACME(caBundlePEM: "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n").encoded
        #expect(gate.accept(Self.entry(.meshSetting, MeshACME.key, key, by: founder.id)) == .refuse)
        // The admin's own: let in, and so is its delete.
        #expect(gate.accept(Self.entry(.meshSetting, MeshACME.key, setting, by: founder.id)) == .accept)
        #expect(gate.accept(Self.entry(.meshSetting, MeshACME.key, nil, by: founder.id)) == .accept)
        #expect(gate.refusals["setting_not_admin"] == 2)
        #expect(gate.refusals["setting_malformed"] == 2)
    }

    @Test func aRemovalSignedByANonAdminIsRefusedAndCounted() throws {
        let (gate, founder, runner, _) = try MeshGateTests.mesh()
        let roster = try #require(gate.roster)
        // The runner signs a removal of the founder itself: well formed, but not by an admin.
        let forged = MemberRemoval.signed(meshID: roster.meshID, member: founder.id, at: Date(), adminKeys: runner.keys).intent
        #expect(gate.accept(MeshGateTests.entry(forged, author: runner.id)) == .refuse)
        #expect(gate.refusals["member_invalid"] == 1)
        #expect(gate.roster?.isMember(founder.id) == true)
        #expect(!(gate.roster?.isRemoved(founder.id) ?? true))
    }

    @Test func aRemovedNodesEntriesRelayedByAFriendAreRefusedAndCounted() throws {
        var (gate, founder, runner, replica) = try MeshGateTests.mesh()
        let roster = try #require(gate.roster)
        replica.apply([try roster.remove(runner.id, at: Date(), adminKeys: founder.keys)], author: founder.id)
        gate.update(from: replica.snapshots)
        // Whoever forwards it, the entry's author is the removed node.
        let create = try ProjectBook(entries: []).createProject("q", local: runner.local, now: Date())
        #expect(gate.accept(MeshGateTests.entry(create[0], author: runner.id)) == .refuse)
        let lease = try Self.lease("203.0.113.10", port: 5001, holder: runner.id)
        #expect(gate.accept(Self.entry(.lease, lease.key, lease.value, by: runner.id)) == .refuse)
        #expect(gate.refusals["removed_author"] == 2)
    }

    /// What a node kept in its database is judged by the same rules when it is loaded: a lease on
    /// a gateway's address written by another node is not restored, nor shown to the view.
    @Test func entriesLoadedAfterARestartAreCheckedToo() async throws {
        let dir = try StateTestDirectory("warren-restore-rules")
        defer { dir.remove() }
        let store = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))
        let gatewayNode = TestNode(), attacker = TestNode()
        func save(_ kind: EntryKind, _ key: String, _ value: [UInt8], by node: TestNode) async throws {
            let e = MeshGateTests.signed(.put(kind, key, value), by: node)
            try await store.upsertEntry(MeshState.record(from: e))
        }
        try await save(.gateway, gatewayNode.id.description, try Self.gateway("203.0.113.10"), by: gatewayNode)
        let good = try Self.lease("203.0.113.10", port: 5001, holder: gatewayNode.id)
        let bad = try Self.lease("203.0.113.10", port: 5002, holder: attacker.id, runID: "r2")
        try await save(.lease, good.key, good.value, by: gatewayNode)
        try await save(.lease, bad.key, bad.value, by: attacker)

        let gate = MeshGate(meshID: nil)
        let mesh = try MeshState(identity: NodeIdentity.generate(), address: "127.0.0.1:1", metadata: [], config: .lan, store: store, logger: .quiet("mesh"))
        await mesh.enforce(gate)
        try await mesh.restore()
        #expect(await mesh.entries(kind: .lease).map(\.key) == [good.key])
        #expect(gate.refusals["lease_not_its_gateway"] == 1)
    }

    /// A gateway's table of what it granted takes from gossip only the lease entries it wrote
    /// itself, and no node counts a lease of a removed holder.
    @Test func aGatewayTakesOnlyItsOwnLeaseEntriesAndNoneOfARemovedHolder() async throws {
        let gatewayNode = TestNode(), other = TestNode(), runner = TestNode()
        let view = MeshView()
        let own = try Self.lease("203.0.113.10", port: 5001, holder: runner.id)
        let foreign = try Self.lease("203.0.113.10", port: 5002, holder: other.id, runID: "r2")
        await view.apply(Self.entry(.lease, own.key, own.value, by: gatewayNode.id))
        await view.apply(Self.entry(.lease, foreign.key, foreign.value, by: other.id))
        #expect(await view.leaseTable(authoredBy: gatewayNode.id).leases.map(\.binding.port) == [5001])
        #expect(await view.leaseTable().leases.count == 2)
        await view.setRemoved([runner.id])
        #expect(await view.leaseTable().leases.map(\.binding.port) == [5002])
    }

    /// A secret, or a key sealed to another node, written in a project by a mesh member outside
    /// it: held back (its addition may be on its way), never merged, and counted once per version.
    @Test func aMemberOutsideAProjectWritingInItIsHeldAndCounted() throws {
        let (gate, founder, runner, _) = try MeshGateTests.mesh()
        for intent in try ProjectBook(entries: []).createProject("p", local: founder.local, now: Date()) {
            #expect(gate.accept(MeshGateTests.entry(intent, author: founder.id)) == .accept)
        }
        let key = ProjectKey.generate(generation: 1)
        let secret = try SealedSecret.seal("x", project: "p", name: "S", version: 1, key: key).intent
        let byRunner = MeshGateTests.entry(secret, author: runner.id)
        #expect(gate.accept(byRunner) == .hold)
        #expect(gate.refusals["not_project_member"] == 1)
        // The same version asked about again (gossip re-asks held entries, push-pull resends):
        // one refusal.
        #expect(gate.accept(byRunner) == .hold)
        #expect(gate.refusals["not_project_member"] == 1)
        // Another version, its delete, and a key of p sealed to a third node: each counted.
        var later = byRunner
        later.timestamp = HLCTimestamp(wallMillis: 2, logical: 0)
        #expect(gate.accept(later) == .hold)
        var delete = MeshGateTests.entry(.delete(.secret, secret.key), author: runner.id)
        delete.timestamp = HLCTimestamp(wallMillis: 3, logical: 0)
        #expect(gate.accept(delete) == .hold)
        let third = TestNode()
        let sealedKey = ProjectMemberKey(project: "p", member: third.id, generation: 1, addedBy: runner.id,
                                         sealedKey: try key.sealed(to: third.local.keyAgreement.publicKey)).intent
        #expect(gate.accept(MeshGateTests.entry(sealedKey, author: runner.id)) == .hold)
        #expect(gate.refusals["not_project_member"] == 4)
        // The project's member writing the same: let in, not counted.
        #expect(gate.accept(MeshGateTests.entry(secret, author: founder.id)) == .accept)
        #expect(gate.refusals["not_project_member"] == 4)
        #expect(gate.book.projects["p"]?.secrets["S"] != nil)
    }

    /// The next generation of a project's key, a key entry or a rotation, written by a mesh member
    /// outside the project: held back like its secrets (its addition could be on its way), and
    /// counted once per version, never merged.
    @Test func aNextGenerationKeyOrRotationByANonMemberIsHeldAndCounted() throws {
        let (gate, founder, runner, _) = try MeshGateTests.mesh()
        for intent in try ProjectBook(entries: []).createProject("p", local: founder.local, now: Date()) {
            #expect(gate.accept(MeshGateTests.entry(intent, author: founder.id)) == .accept)
        }
        #expect(gate.book.projects["p"]?.generation == 1)
        let next = ProjectKey.generate(generation: 2)
        let key = ProjectMemberKey(project: "p", member: founder.id, generation: 2, addedBy: runner.id,
                                   sealedKey: try next.sealed(to: founder.local.keyAgreement.publicKey)).intent
        let byRunner = MeshGateTests.entry(key, author: runner.id)
        #expect(gate.accept(byRunner) == .hold)
        #expect(gate.refusals["not_project_member"] == 1)
        #expect(gate.accept(byRunner) == .hold)
        #expect(gate.refusals["not_project_member"] == 1)
        let rotation = try ProjectRotation.sealing(next, project: "p", to: [founder.id], removed: [], rotator: runner.id).intent
        #expect(gate.accept(MeshGateTests.entry(rotation, author: runner.id)) == .hold)
        #expect(gate.refusals["not_project_member"] == 2)
        #expect(gate.book.projects["p"]?.generation == 1)
        // The project's member writing the next generation's key, its rotation not here yet: held,
        // not counted.
        #expect(gate.accept(MeshGateTests.entry(key, author: founder.id)) == .hold)
        #expect(gate.refusals["not_project_member"] == 2)
    }
}
