import Foundation
import Gossip
@testable import MeshNode
import Testing

/// The node's gate over the gossip replica: what it lets in before and after admission is in force.
struct MeshGateTests {
    static func entry(_ intent: EntryIntent, author: NodeID) -> Entry {
        Entry(kind: EntryKind(rawValue: UInt8(intent.kind.rawValue)), key: intent.key, value: intent.value,
              timestamp: HLCTimestamp(wallMillis: 1, logical: 0), author: author, signature: [])
    }

    /// A founded mesh with a runner admitted: the replica's entries and the gate over them.
    static func mesh() throws -> (gate: MeshGate, founder: TestNode, runner: TestNode, replica: TestReplica) {
        let founder = TestNode(), runner = TestNode()
        var replica = TestReplica()
        let (roster, founding) = try MeshRoster.found(addresses: ["127.0.0.1:1"], at: Date(), keys: founder.keys)
        replica.apply(founding, author: founder.id)
        let token = try roster.issueInvite(role: .runner, ttl: 600, now: Date(), inviterKeys: founder.keys)
        var verifier = InviteVerifier(roster: replica.roster(roster.meshID))
        let admitted = try verifier.admit(token.encoded, joining: runner.id, addresses: [], now: Date(), voucherKeys: founder.keys)
        replica.apply(admitted.intents, author: founder.id)
        let gate = MeshGate(meshID: roster.meshID)
        gate.update(from: replica.snapshots)
        return (gate, founder, runner, replica)
    }

    @Test func beforeMeshInitEveryNodeIsAMember() {
        let gate = MeshGate(meshID: nil)
        gate.update(from: [])
        let stranger = TestNode()
        #expect(gate.roster == nil)
        #expect(gate.isMember(stranger.id))
        #expect(gate.mayLink(stranger.id))
    }

    @Test func entriesOfNonMembersNeverGetIn() throws {
        let (gate, founder, runner, _) = try Self.mesh()
        let stranger = TestNode()
        #expect(gate.isMember(founder.id) && gate.isMember(runner.id))
        #expect(!gate.isMember(stranger.id))
        // A stranger may link (to present a token), but nothing it writes gets in, of any kind.
        #expect(gate.mayLink(stranger.id))
        let create = try ProjectBook(entries: []).createProject("p", local: stranger.local, now: Date())
        for intent in create { #expect(!gate.accept(Self.entry(intent, author: stranger.id))) }
        #expect(!gate.accept(Entry(kind: EntryKind(rawValue: 2), key: "gw", value: [1], timestamp: HLCTimestamp(wallMillis: 1, logical: 0),
                                   author: stranger.id, signature: [])))
        // A member's project entries get in, its record before its key within one merge.
        for intent in try ProjectBook(entries: []).createProject("p", local: runner.local, now: Date()) {
            #expect(gate.accept(Self.entry(intent, author: runner.id)))
        }
        #expect(gate.isProvisional)
    }

    @Test func aSelfSignedImpostorRecordIsRefused() throws {
        let (gate, _, _, _) = try Self.mesh()
        let impostor = TestNode()
        // A founding record of another mesh, written under this mesh's member key.
        let (_, other) = try MeshRoster.found(addresses: [], at: Date(), keys: impostor.keys)
        let forged = EntryIntent.put(.member, MemberEntryKey.member(impostor.id).string, try #require(other.first?.value))
        #expect(!gate.accept(Self.entry(forged, author: impostor.id)))
        #expect(!gate.isMember(impostor.id))
    }

    @Test func aRemovedMemberMayNotLinkNorWrite() throws {
        var (gate, founder, runner, replica) = try Self.mesh()
        let roster = try #require(gate.roster)
        replica.apply([try roster.remove(runner.id, at: Date(), adminKeys: founder.keys)], author: founder.id)
        let old = gate.update(from: replica.snapshots)
        #expect(old?.isMember(runner.id) == true)
        #expect(!gate.isMember(runner.id))
        #expect(!gate.mayLink(runner.id))
        let create = try ProjectBook(entries: []).createProject("q", local: runner.local, now: Date())
        #expect(!gate.accept(Self.entry(create[0], author: runner.id)))
    }

    @Test func aJoiningNodeTakesTheRosterFromItsContact() throws {
        let (_, founder, runner, replica) = try Self.mesh()
        // The runner's own gate (the mesh ID from its token), before any entry arrived: admission
        // is not yet in force.
        let joining = MeshGate(meshID: try #require(Self.meshID(of: replica)))
        joining.update(from: [])
        #expect(joining.roster == nil)
        // The member entries arrive in one push-pull, in key order: each is let in.
        for snapshot in replica.snapshots where snapshot.kind == .member {
            #expect(joining.accept(Self.entry(.put(.member, snapshot.key, snapshot.value), author: snapshot.author)))
        }
        #expect(joining.roster?.isMember(founder.id) == true)
        #expect(joining.roster?.isMember(runner.id) == true)
    }

    static func meshID(of replica: TestReplica) -> MeshID? {
        for s in replica.snapshots where s.kind == .member {
            if let record = try? MembershipRecord(decoding: s.value) { return record.meshID }
        }
        return nil
    }
}
