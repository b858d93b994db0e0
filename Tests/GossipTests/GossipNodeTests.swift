@testable import Gossip
import Testing

@Suite struct GossipNodeTests {
    /// Two nodes that know each other.
    func pair() -> (GossipNode, GossipNode) {
        var a = makeNode(1), b = makeNode(2)
        a.bootstrap(members: [b.localMember], now: .zero)
        b.bootstrap(members: [a.localMember], now: .zero)
        return (a, b)
    }

    @Test func answersAPingForItselfAndIgnoresOneForAnotherNode() {
        var (_, b) = pair()
        let ping = MessageCodec.encode(.ping(seq: 42, target: testID(2), updates: []))
        let replies = b.receive(bytes: ping, from: testID(1), now: .milliseconds(5)).sends
        #expect(replies.count == 1)
        if case let .ack(seq, _)? = replies.first?.message { #expect(seq == 42) } else { Issue.record("no ack") }
        #expect(replies.first?.to == testID(1))
        let misdirected = MessageCodec.encode(.ping(seq: 43, target: testID(9), updates: []))
        #expect(b.receive(bytes: misdirected, from: testID(1), now: .milliseconds(6)).sends.isEmpty)
    }

    @Test func garbageIsCountedAndDropped() {
        var (a, _) = pair()
        #expect(a.receive(bytes: [1, 2, 3], from: testID(2), now: .zero).isEmpty)
        #expect(a.counters.undecodable == 1)
    }

    @Test func aPutIsSignedStoredReportedAndDisseminated() throws {
        var (a, b) = pair()
        let actions = try a.put(kind: .gateway, key: "gw-1", value: [7], now: .seconds(1))
        #expect(actions.entryChanges.map(\.isLocal) == [true])
        let entry = try #require(a.get(kind: .gateway, key: "gw-1"))
        #expect(SimulatedSignature.verifier(entry.signature, entry.signedBytes, a.id))
        // Run a's timers until the entry leaves in some message, then hand that to b.
        var t = Duration.seconds(1)
        var delivered = false
        while t < .seconds(3), !delivered {
            t += .milliseconds(50)
            for send in a.tick(now: t) {
                guard case let .send(_, _, bytes) = send else { continue }
                let changes = b.receive(bytes: bytes, from: a.id, now: t).entryChanges
                if !changes.isEmpty {
                    #expect(changes.map(\.isLocal) == [false])
                    delivered = true
                }
            }
        }
        #expect(b.get(kind: .gateway, key: "gw-1")?.value == [7])
    }

    @Test func deleteLeavesATombstoneThatWins() throws {
        var (a, _) = pair()
        _ = try a.put(kind: .lease, key: "k", value: [1], now: .seconds(1))
        let actions = try a.delete(kind: .lease, key: "k", now: .seconds(1))
        #expect(actions.entryChanges.first?.current.isTombstone == true)
        #expect(a.get(kind: .lease, key: "k") == nil)
        #expect(a.entries(kind: .lease).isEmpty)
    }

    @Test func refusesOversizedKeysAndValues() {
        var (a, _) = pair()
        #expect(throws: GossipError.self) { try a.put(kind: .lease, key: String(repeating: "k", count: 2000), value: [], now: .zero) }
        #expect(throws: GossipError.self) { try a.put(kind: .lease, key: "k", value: Array(repeating: 0, count: 70_000), now: .zero) }
    }

    @Test func dropsAndCountsBadSignaturesStrangersAndFutureDates() {
        var (a, _) = pair()
        let wall = GossipSimulator.wallClockBase
        var forged = signedEntry(key: "forged", value: [1], wall: wall, author: testID(2))
        forged.signature[0] ^= 1
        let stranger = signedEntry(key: "stranger", value: [1], wall: wall, author: testID(77))
        let future = signedEntry(key: "future", value: [1], wall: wall + 60_000, author: testID(2))
        let fine = signedEntry(key: "fine", value: [1], wall: wall, author: testID(2))
        let bytes = MessageCodec.encode(.gossip(updates: [forged, stranger, future, fine].map(Update.entry)))
        let changes = a.receive(bytes: bytes, from: testID(2), now: .seconds(1)).entryChanges
        #expect(changes.map(\.current.key) == ["fine"])
        #expect(a.counters.droppedBadSignature == 1)
        #expect(a.counters.droppedNonMemberAuthor == 1)
        #expect(a.counters.droppedFutureDated == 1)
        #expect(a.map.count == 1)
    }

    @Test func refutesASuspicionAboutItself() {
        var (a, _) = pair()
        let before = a.localMember.incarnation
        let suspect = MessageCodec.encode(.gossip(updates: [.suspect(node: a.id, incarnation: before, from: testID(2))]))
        _ = a.receive(bytes: suspect, from: testID(2), now: .seconds(1))
        #expect(a.localMember.incarnation == before + 1)
        #expect(a.counters.refutations == 1)
        #expect(a.healthScore == 1, "Lifeguard: being suspected hints that we are slow")
    }

    @Test func aClaimAgainstItselfIsAnsweredToItsSenderWithTheCurrentIncarnation() {
        var (a, _) = pair()
        let sender = testID(2)
        func answer(to claim: Update, at now: Duration) -> UInt32? {
            let sends = a.receive(bytes: MessageCodec.encode(.gossip(updates: [claim])), from: sender, now: now).sends
            for send in sends where send.to == sender {
                guard case let .gossip(updates) = send.message else { continue }
                for case let .alive(m) in updates where m.id == a.id { return m.incarnation }
            }
            return nil
        }
        // A new claim is refuted, and the refutation goes straight back to its sender.
        #expect(answer(to: .suspect(node: a.id, incarnation: 0, from: testID(3)), at: .seconds(1)) == 1)
        // A member that missed the refutation passes the old claims on: it hears the current
        // incarnation, which already refutes them (no new one).
        #expect(answer(to: .suspect(node: a.id, incarnation: 0, from: testID(3)), at: .seconds(2)) == 1)
        #expect(answer(to: .dead(node: a.id, incarnation: 0, from: testID(3)), at: .seconds(3)) == 1)
        #expect(a.localMember.incarnation == 1)
        #expect(a.counters.refutations == 1)
        #expect(a.counters.claimsAnswered == 3)
    }

    @Test func theSuspectHearsOnceMoreBeforeTheVerdictAndItsAnswerEndsTheSuspicion() throws {
        var a = makeNode(1), b = makeNode(2)
        a.bootstrap(members: [b.localMember, makeNode(3).localMember], now: .zero)
        b.bootstrap(members: [a.localMember], now: .zero)
        // a hears that b is suspected; b missed it, so b never refuted.
        let claim = Update.suspect(node: b.id, incarnation: 0, from: testID(3))
        _ = a.receive(bytes: MessageCodec.encode(.gossip(updates: [claim])), from: testID(3), now: .seconds(1))
        #expect(a.member(b.id)?.state == .suspect)
        // Shortly before its suspicion times out, a tells b (whatever else a sends is not delivered).
        var t = Duration.seconds(1)
        var notice: Message?
        while t < .seconds(120), notice == nil {
            t += .milliseconds(50)
            let actions = a.tick(now: t)
            #expect(!actions.memberChanges.contains { $0.id == b.id && $0.state == .dead }, "declared dead before telling b")
            notice = actions.sends.first { send in
                guard send.to == b.id, case let .gossip(updates) = send.message else { return false }
                return updates.contains(.suspect(node: b.id, incarnation: 0, from: a.id))
            }?.message
        }
        let message = try #require(notice)
        #expect(a.member(b.id)?.state == .suspect)
        // b refutes, answering a directly; a's suspicion ends there.
        for send in b.receive(bytes: MessageCodec.encode(message), from: a.id, now: t).sends where send.to == a.id {
            _ = a.receive(bytes: MessageCodec.encode(send.message), from: b.id, now: t + .milliseconds(5))
        }
        #expect(a.member(b.id)?.state == .alive)
        #expect(a.member(b.id)?.incarnation == 1)
    }

    @Test func unansweredProbesLeadToSuspicionThenDeath() {
        var a = makeNode(1)
        a.bootstrap(members: [makeNode(2).localMember, makeNode(3).localMember], now: .zero)
        var suspected = false, dead = false
        var t = Duration.zero
        while t < .seconds(30), !dead {
            t += .milliseconds(100)
            // Nobody answers anything.
            let changes = a.tick(now: t).memberChanges
            suspected = suspected || changes.contains { $0.state == .suspect }
            dead = changes.contains { $0.state == .dead }
        }
        #expect(suspected && dead)
        #expect(a.healthScore > 0, "Lifeguard: missing acks and nacks raise the local health score")
    }

    @Test func aHigherIncarnationAliveClearsASuspicion() {
        var (a, _) = pair()
        let b = testID(2)
        _ = a.receive(bytes: MessageCodec.encode(.gossip(updates: [.suspect(node: b, incarnation: 0, from: testID(3))])), from: b, now: .seconds(1))
        #expect(a.member(b)?.state == .suspect)
        let refuted = Member(id: b, address: "10.0.0.2:7946", incarnation: 1)
        _ = a.receive(bytes: MessageCodec.encode(.gossip(updates: [.alive(refuted)])), from: b, now: .seconds(2))
        #expect(a.member(b)?.state == .alive)
        #expect(a.member(b)?.incarnation == 1)
    }

    @Test func leavingIsSeenAsLeftNotDead() {
        var (a, b) = pair()
        let sends = b.leave(now: .seconds(1)).sends
        #expect(!sends.isEmpty)
        for s in sends where s.to == a.id {
            _ = a.receive(bytes: MessageCodec.encode(s.message), from: b.id, now: .seconds(1))
        }
        #expect(a.member(b.id)?.state == .left)
    }

    /// A member that left is forgotten `deadMemberRetention` after it left, as tombstones are
    /// after `tombstoneGrace`; not before.
    @Test func aLeftMemberIsForgottenAfterTheRetention() {
        var config = GossipConfig.lan
        config.deadMemberRetention = .seconds(60)
        config.maintenanceInterval = .seconds(1)
        var a = makeNode(1, config: config), b = makeNode(2, config: config)
        a.bootstrap(members: [b.localMember], now: .zero)
        b.bootstrap(members: [a.localMember], now: .zero)
        for s in b.leave(now: .seconds(1)).sends where s.to == a.id {
            _ = a.receive(bytes: MessageCodec.encode(s.message), from: b.id, now: .seconds(1))
        }
        #expect(a.member(b.id)?.state == .left)
        _ = a.tick(now: .seconds(30))
        #expect(a.member(b.id)?.state == .left, "forgotten before the retention")
        _ = a.tick(now: .seconds(62))
        #expect(a.member(b.id) == nil, "still remembered after the retention")
    }

    @Test func joinThroughASeedFormsAMesh() throws {
        let sim = GossipSimulator(.init(nodeCount: 20, seed: 3, formed: false))
        try sim.put(on: 0, kind: .project, key: "p", value: [1])
        sim.run(until: .seconds(30))
        for node in sim.nodes {
            #expect(node.members().count == 20)
            #expect(node.members().allSatisfy { $0.state == .alive })
            #expect(node.get(kind: .project, key: "p") != nil)
        }
    }

    @Test func theSameSeedReplaysTheSameRun() {
        func run() -> [MapDigest] {
            let sim = GossipSimulator(.init(nodeCount: 50, seed: 8, loss: 0.1))
            try? sim.put(on: 1, kind: .lease, key: "a", value: [1])
            sim.crash(4)
            sim.run(until: .seconds(20))
            return sim.nodes.map(\.digest) + [MapDigest(count: sim.messagesSent, sum: UInt64(sim.bytesSent), xor: 0)]
        }
        #expect(run() == run())
    }

    @Test func refusesOversizedAddressesAndMetadata() {
        var (a, _) = pair()
        #expect(throws: GossipError.self) { try a.update(address: String(repeating: "h", count: 300), now: .zero) }
        #expect(throws: GossipError.self) { try a.update(metadata: Array(repeating: 1, count: 600), now: .zero) }
        #expect(a.localMember.incarnation == 0)
    }

    @Test func metadataChangesRaiseTheIncarnation() throws {
        var (a, _) = pair()
        _ = try a.update(metadata: [1, 2], now: .seconds(1))
        #expect(a.localMember.incarnation == 1)
        #expect(a.localMember.metadata == [1, 2])
    }

    @Test func presetsKeepMemberlistNumbers() {
        let lan = GossipConfig.lan
        #expect(lan.probeInterval == .seconds(1) && lan.probeTimeout == .milliseconds(500))
        #expect(lan.gossipInterval == .milliseconds(200) && lan.gossipNodes == 3)
        #expect(lan.suspicionMult == 4 && lan.retransmitMult == 4 && lan.pushPullInterval == .seconds(30))
        #expect(lan.awarenessMaxMultiplier == 8)
        #expect(GossipConfig.wan.probeInterval == .seconds(5) && GossipConfig.wan.gossipNodes == 4)
        #expect(GossipConfig.local.probeTimeout == .milliseconds(200) && GossipConfig.local.retransmitMult == 2)
        #expect(lan.retransmitLimit(members: 1000) == 16)
        #expect(lan.minSuspicionTimeout(members: 1000) == .seconds(12))
        #expect(lan.scaledPushPullInterval(members: 1000) == .seconds(180))
    }
}
