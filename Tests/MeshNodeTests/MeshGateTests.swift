import Foundation
import Gossip
@testable import MeshNode
@testable import Provisioning
@testable import Link
import Sodium
import Testing
import Trust
import TrustTestSupport

/// The node's gate over the gossip replica: what it lets in before and after admission is in force.
struct MeshGateTests {
    static func entry(_ intent: EntryIntent, author: NodeID) -> Entry {
        Entry(kind: intent.kind, key: intent.key, value: intent.value,
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
        // (Held back, not merged: it may yet be admitted by a record still on its way.)
        for intent in create { #expect(gate.accept(Self.entry(intent, author: stranger.id)) == .hold) }
        #expect(gate.accept(Entry(kind: EntryKind(rawValue: 2), key: stranger.id.description, value: [1], timestamp: HLCTimestamp(wallMillis: 1, logical: 0),
                                  author: stranger.id, signature: [])) == .hold)
        // A member's project entries get in, its record before its key within one merge.
        for intent in try ProjectBook(entries: []).createProject("p", local: runner.local, now: Date()) {
            #expect(gate.accept(Self.entry(intent, author: runner.id)) == .accept)
        }
        #expect(gate.isProvisional)
    }

    @Test func aSelfSignedImpostorRecordIsRefused() throws {
        let (gate, _, _, _) = try Self.mesh()
        let impostor = TestNode()
        // A founding record of another mesh, written under this mesh's member key.
        let (_, other) = try MeshRoster.found(addresses: [], at: Date(), keys: impostor.keys)
        let forged = EntryIntent.put(.member, MemberEntryKey.member(impostor.id).string, try #require(other.first?.value))
        #expect(gate.accept(Self.entry(forged, author: impostor.id)) == .refuse)
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
        #expect(gate.accept(Self.entry(create[0], author: runner.id)) == .refuse)
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
            #expect(joining.accept(Self.entry(.put(.member, snapshot.key, snapshot.value), author: snapshot.author)) == .accept)
        }
        #expect(joining.roster?.isMember(founder.id) == true)
        #expect(joining.roster?.isMember(runner.id) == true)
    }

    /// The entry `intent` as gossip carries it: dated now, signed by its author.
    static func signed(_ intent: EntryIntent, by author: TestNode) -> Entry {
        var e = Entry(kind: intent.kind, key: intent.key, value: intent.value,
                      timestamp: HLCTimestamp(wallMillis: UInt64(Date().timeIntervalSince1970 * 1000), logical: 0),
                      author: author.id, signature: [])
        e.signature = author.keys.sign(e.signedBytes)
        return e
    }

    @Test func aRecordArrivingBeforeItsAdminsOwnGetsInWithItNotAtTheNextPushPull() throws {
        let founder = TestNode(), admin = TestNode(), runner = TestNode(), stranger = TestNode(), forgedMember = TestNode(), joiner = TestNode()
        let (roster, founding) = try MeshRoster.found(addresses: [], at: Date(), keys: founder.keys)
        func admission(_ node: TestNode, _ role: MeshRole, by inviter: TestNode) throws -> EntryIntent {
            let token = try InviteToken.issue(meshID: roster.meshID, role: role, expires: Date() + 600, addresses: [], inviterKeys: inviter.keys)
            return try MembershipRecord.admitting(node.id, addresses: [], token: token, at: Date(), voucherKeys: inviter.keys).intent
        }
        // The joiner's replica, as MeshState wires it: real signatures, the gate as its check.
        let keys = joiner.keys
        var gossip = try GossipNode(
            id: joiner.id, address: "127.0.0.1:1", wallClockAtZero: UInt64(Date().timeIntervalSince1970 * 1000), now: .zero,
            random: SeededRandom(seed: 1), sign: { keys.sign($0) },
            verify: { signature, message, author in Ed25519.verify(signature: signature, message: message, publicKey: author.bytes) })
        let gate = MeshGate(meshID: roster.meshID)
        gossip.accept = { gate.accept($0) }
        gossip.bootstrap(members: [founder, admin].map { Member(id: $0.id, address: "127.0.0.1:2") }, now: .zero)
        func deliver(_ entries: [Entry], from sender: TestNode, at second: Int64) {
            let message = MessageCodec.encode(.gossip(updates: entries.map { .entry($0) }))
            _ = gossip.receive(bytes: message, from: sender.id, now: .seconds(second))
            gate.update(from: gossip.entries(kind: EntryKind.member).compactMap { e in
                e.value.map { EntrySnapshot(kind: .member, key: e.key, value: $0, author: e.author) }
            })
        }
        deliver([Self.signed(founding[0], by: founder)], from: founder, at: 1)
        #expect(gate.roster?.members == [founder.id])

        // The runner's record, admitted by the second admin, arrives before the admin's own; with
        // it, one whose inviter is no member at all (a forgery that chains to nobody).
        let runnerRecord = Self.signed(try admission(runner, .runner, by: admin), by: admin)
        let forged = Self.signed(try admission(forgedMember, .admin, by: stranger), by: admin)
        deliver([runnerRecord, forged], from: admin, at: 2)
        #expect(gate.roster?.isMember(runner.id) == false)
        #expect(Set(gossip.heldEntries.map(\.key)) == [runnerRecord.key, forged.key])

        // The admin's record arrives: the runner's gets in at once, the forgery never.
        deliver([Self.signed(try admission(admin, .admin, by: founder), by: founder)], from: founder, at: 3)
        #expect(gate.roster?.members == [founder.id, admin.id, runner.id].sorted())
        #expect(gossip.get(kind: runnerRecord.kind, key: runnerRecord.key) == runnerRecord)
        #expect(gossip.get(kind: forged.kind, key: forged.key) == nil)
        #expect(gossip.heldEntries.map(\.key) == [forged.key])
        #expect(gate.roster?.isMember(forgedMember.id) == false)
    }

    static func meshID(of replica: TestReplica) -> MeshID? {
        for s in replica.snapshots where s.kind == .member {
            if let record = try? MembershipRecord(decoding: s.value) { return record.meshID }
        }
        return nil
    }
}
