import Foundation
import Gossip
@testable import MeshNode
@testable import Link
import Sodium
import Testing
import Trust
import TrustTestSupport

/// Entries gossip keeps out on its own rules, before the gate's writer rules: dated too far ahead,
/// older than the version held (a replay), or by a node no longer in the group. Each is counted by
/// the gate as a refusal (`warren_entries_refused_total{reason}`) and never merged.
struct GossipRefusalTests {
    /// A member's replica wired as `MeshState` wires it: real signatures, the gate as its checks.
    struct Replica {
        var gossip: GossipNode
        let gate: MeshGate
        let founder: TestNode, runner: TestNode, friend: TestNode
        var replica: TestReplica
        let start = UInt64(Date().timeIntervalSince1970 * 1000)

        init() throws {
            let (gate, founder, runner, replica) = try MeshGateTests.mesh()
            let local = TestNode(), friend = TestNode()
            var r = replica
            let roster = try #require(gate.roster)
            // A second runner, the friend that relays.
            let token = try roster.issueInvite(role: .runner, ttl: 600, now: Date(), inviterKeys: founder.keys)
            var verifier = InviteVerifier(roster: roster)
            r.apply(try verifier.admit(token.encoded, joining: friend.id, addresses: [], now: Date(), voucherKeys: founder.keys).intents,
                    author: founder.id)
            gate.update(from: r.snapshots)
            let keys = local.keys
            var gossip = try GossipNode(
                id: local.id, address: "127.0.0.1:1", wallClockAtZero: start, now: .zero, random: SeededRandom(seed: 7),
                sign: { keys.sign($0) },
                verify: { signature, message, author in Ed25519.verify(signature: signature, message: message, publicKey: author.bytes) })
            gossip.accept = { gate.accept($0) }
            gossip.admitsMember = { gate.isMember($0) }
            gossip.droppedEntry = { gate.dropped($0, $1) }
            gossip.bootstrap(members: [founder, runner, friend].map { Member(id: $0.id, address: "127.0.0.1:2") }, now: .zero)
            self.gossip = gossip
            self.gate = gate
            self.founder = founder
            self.runner = runner
            self.friend = friend
            self.replica = r
        }

        /// `intent` signed by `author`, dated `offset` milliseconds after the replica's start.
        func entry(_ intent: EntryIntent, by author: TestNode, at offset: Int64) -> Entry {
            var e = Entry(kind: EntryKind(rawValue: UInt8(intent.kind.rawValue)), key: intent.key, value: intent.value,
                          timestamp: HLCTimestamp(wallMillis: UInt64(Int64(start) + offset)), author: author.id, signature: [])
            e.signature = author.keys.sign(e.signedBytes)
            return e
        }

        mutating func deliver(_ entries: [Entry], from sender: TestNode, atSecond second: Int64) {
            let message = MessageCodec.encode(.gossip(updates: entries.map { .entry($0) }))
            _ = gossip.receive(bytes: message, from: sender.id, now: .seconds(second))
        }

        func claim(_ domain: String, of node: TestNode) -> EntryIntent {
            let claim = DomainClaim(domain: domain, holder: node.id.description, runID: "run-\(domain)", runName: "r",
                                    claimed: Date(), expires: Date().addingTimeInterval(600))
            return .put(.domainClaim, claim.key, claim.encoded)
        }

        func stored(_ intent: EntryIntent) -> Entry? {
            gossip.get(kind: EntryKind(rawValue: UInt8(intent.kind.rawValue)), key: intent.key)
        }
    }

    @Test func anEntryDatedBeyondTheClockSkewIsRefusedAndCountedEveryTime() throws {
        var r = try Replica()
        let skew = GossipConfig.lan.maxClockSkew
        #expect(skew == .seconds(10))
        // An hour ahead: it would win every write at its key for an hour.
        let ahead = r.claim("ahead.test", of: r.runner)
        let future = r.entry(ahead, by: r.runner, at: 3_600_000)
        r.deliver([future], from: r.runner, atSecond: 1)
        #expect(r.stored(ahead) == nil)
        #expect(r.gate.refusals["future_dated"] == 1)
        r.deliver([future], from: r.friend, atSecond: 2)
        #expect(r.gate.refusals["future_dated"] == 2)
        // Within the skew (5 s ahead of the receiver's clock at second 2) it is let in.
        let near = r.claim("near.test", of: r.runner)
        r.deliver([r.entry(near, by: r.runner, at: 7_000)], from: r.runner, atSecond: 2)
        #expect(r.stored(near) != nil)
        #expect(r.gate.refusals["future_dated"] == 2)
    }

    @Test func aReplayedEntryAfterItWasSupersededIsNotMergedAndCounted() throws {
        var r = try Replica()
        let intent = r.claim("replay.test", of: r.runner)
        let first = r.entry(intent, by: r.runner, at: 1_000)
        let withdrawn = r.entry(.delete(.domainClaim, intent.key), by: r.runner, at: 2_000)
        r.deliver([first], from: r.runner, atSecond: 3)
        #expect(r.stored(intent) == first)
        r.deliver([withdrawn], from: r.runner, atSecond: 4)
        #expect(r.stored(intent) == nil)
        // Another copy of what is held is gossip's redundancy, not a refusal.
        r.deliver([withdrawn], from: r.friend, atSecond: 5)
        #expect(r.gate.refusals["superseded"] == nil)
        // The withdrawn claim sent again, by its author or relayed by a friend: not merged.
        r.deliver([first], from: r.runner, atSecond: 6)
        r.deliver([first], from: r.friend, atSecond: 7)
        #expect(r.stored(intent) == nil)
        #expect(r.gate.refusals["superseded"] == 2)
    }

    @Test func aDeletedEntryReplayedAfterItsTombstoneWasCollectedIsRefusedAndCounted() throws {
        var r = try Replica()
        var config = GossipConfig.lan
        config.tombstoneGrace = .seconds(5)
        config.maintenanceInterval = .seconds(1)
        r.gossip = try Self.gossip(gate: r.gate, start: r.start, members: [r.founder, r.runner, r.friend], config: config)
        let intent = r.claim("collected.test", of: r.runner)
        let first = r.entry(intent, by: r.runner, at: 1_000)
        r.deliver([first], from: r.runner, atSecond: 2)
        #expect(r.stored(intent) == first)
        r.deliver([r.entry(.delete(.domainClaim, intent.key), by: r.runner, at: 2_000)], from: r.runner, atSecond: 3)
        #expect(r.stored(intent) == nil)
        // Past the grace the tombstone is collected: the replica holds one entry less.
        let held = r.gossip.digest.count
        _ = r.gossip.tick(now: .seconds(30))
        #expect(r.gossip.digest.count == held - 1)
        // The deleted claim sent again, relayed by a friend or by its author: refused, counted,
        // never merged.
        r.deliver([first], from: r.friend, atSecond: 31)
        r.deliver([first], from: r.runner, atSecond: 32)
        #expect(r.stored(intent) == nil)
        #expect(r.gate.refusals["replayed_after_delete"] == 2)
        #expect(r.gate.refusals["superseded"] == nil)
        // A claim written after the delete is let in.
        let again = r.entry(intent, by: r.runner, at: 33_000)
        r.deliver([again], from: r.runner, atSecond: 33)
        #expect(r.stored(intent) == again)
        #expect(r.gate.refusals["replayed_after_delete"] == 2)
    }

    /// The floor reaches nodes that never held the tombstone: one that joined after the
    /// collection (or whose database was moved away) learns it from a member's push-pull, and
    /// refuses a replay of the deleted entry as the members that collected it do.
    @Test func aNodeThatNeverHeldTheTombstoneLearnsItsFloorByPushPullAndRefusesTheReplay() throws {
        var r = try Replica()
        var config = GossipConfig.lan
        config.tombstoneGrace = .seconds(5)
        config.maintenanceInterval = .seconds(1)
        r.gossip = try Self.gossip(gate: r.gate, start: r.start, members: [r.founder, r.runner, r.friend], config: config)
        let intent = r.claim("floor.test", of: r.runner)
        let first = r.entry(intent, by: r.runner, at: 1_000)
        r.deliver([first], from: r.runner, atSecond: 2)
        r.deliver([r.entry(.delete(.domainClaim, intent.key), by: r.runner, at: 2_000)], from: r.runner, atSecond: 3)
        _ = r.gossip.tick(now: .seconds(30))
        #expect(r.gossip.map.floor(at: first.entryKey)?.isTombstone == true)
        #expect(r.gossip.map.entry(at: first.entryKey) == nil)

        // The member's own periodic push-pull, as it goes out.
        var pushPull: [UInt8]?
        for second in 31...100 where pushPull == nil {
            for case let .send(_, _, bytes) in r.gossip.tick(now: .seconds(Int64(second))) where MessageCodec.isPushPull(bytes) {
                pushPull = bytes
            }
        }
        let state = try #require(pushPull, "no push-pull in 70 s")

        // A node that joined after the collection: it never held the claim nor its tombstone.
        var later = try Self.gossip(gate: r.gate, start: r.start, members: [r.founder, r.runner, r.friend], config: config)
        _ = later.receive(bytes: state, from: r.friend.id, now: .seconds(101))
        #expect(later.map.floor(at: first.entryKey)?.isTombstone == true, "the floor did not reach the later node")
        #expect(later.map.entry(at: first.entryKey) == nil)
        let refusedBefore = r.gate.refusals["replayed_after_delete"] ?? 0
        for (sender, second) in [(r.runner, Int64(102)), (r.friend, 103)] {
            _ = later.receive(bytes: MessageCodec.encode(.gossip(updates: [.entry(first)])), from: sender.id, now: .seconds(second))
        }
        #expect(later.get(kind: .domainClaim, key: intent.key) == nil, "the later node merged a replay of a deleted claim")
        #expect(r.gate.refusals["replayed_after_delete"] == refusedBefore + 2)

        // A node away longer than the grace, still holding the claim: the floor deletes it.
        var away = try Self.gossip(gate: r.gate, start: r.start, members: [r.founder, r.runner, r.friend], config: config)
        _ = away.receive(bytes: MessageCodec.encode(.gossip(updates: [.entry(first)])), from: r.runner.id, now: .seconds(2))
        #expect(away.get(kind: .domainClaim, key: intent.key) == first)
        let changes = away.receive(bytes: state, from: r.friend.id, now: .seconds(101)).compactMap { action -> EntryChange? in
            if case let .entryChanged(change) = action { change } else { nil }
        }
        #expect(away.get(kind: .domainClaim, key: intent.key) == nil, "a node away kept a claim deleted while it was away")
        #expect(changes.contains { $0.current.entryKey == first.entryKey && $0.current.isTombstone && $0.previous == first })
    }

    @Test func aRemovedNodesEntriesRelayedByAFriendAreRefused() throws {
        var r = try Replica()
        let roster = try #require(r.gate.roster)
        r.replica.apply([try roster.remove(r.runner.id, at: Date(), adminKeys: r.founder.keys)], author: r.founder.id)
        r.gate.update(from: r.replica.snapshots)
        #expect(!r.gate.isMember(r.runner.id))
        // Still a member of the gossip group here (its death not gossiped yet): the gate refuses.
        let claim = r.claim("relayed.test", of: r.runner)
        r.deliver([r.entry(claim, by: r.runner, at: 1_000)], from: r.friend, atSecond: 2)
        #expect(r.stored(claim) == nil)
        #expect(r.gate.refusals["removed_author"] == 1)

        // On a replica whose gossip group never had it (or forgot it): gossip's own non-member
        // rule keeps it out, and the gate counts it as the removed node's.
        var fresh = try Replica()
        let freshRoster = try #require(fresh.gate.roster)
        let outsider = TestNode()
        fresh.replica.apply([try freshRoster.remove(fresh.runner.id, at: Date(), adminKeys: fresh.founder.keys)], author: fresh.founder.id)
        fresh.gate.update(from: fresh.replica.snapshots)
        fresh.gossip = try Self.gossip(gate: fresh.gate, start: fresh.start, members: [fresh.founder, fresh.friend])
        let relayed = fresh.claim("relayed.test", of: fresh.runner)
        fresh.deliver([fresh.entry(relayed, by: fresh.runner, at: 1_000)], from: fresh.friend, atSecond: 2)
        #expect(fresh.stored(relayed) == nil)
        #expect(fresh.gate.refusals["removed_author"] == 1)
        // A node that was never a member is no removed author: not counted under that reason.
        fresh.deliver([fresh.entry(fresh.claim("other.test", of: outsider), by: outsider, at: 1_000)], from: fresh.friend, atSecond: 3)
        #expect(fresh.gate.refusals["removed_author"] == 1)
    }

    static func gossip(gate: MeshGate, start: UInt64, members: [TestNode], config: GossipConfig = .lan) throws -> GossipNode {
        let local = TestNode(), keys = local.keys
        var gossip = try GossipNode(
            id: local.id, address: "127.0.0.1:1", config: config, wallClockAtZero: start, now: .zero, random: SeededRandom(seed: 8),
            sign: { keys.sign($0) },
            verify: { signature, message, author in Ed25519.verify(signature: signature, message: message, publicKey: author.bytes) })
        gossip.accept = { gate.accept($0) }
        gossip.admitsMember = { gate.isMember($0) }
        gossip.droppedEntry = { gate.dropped($0, $1) }
        gossip.bootstrap(members: members.map { Member(id: $0.id, address: "127.0.0.1:2") }, now: .zero)
        return gossip
    }
}
