@testable import Gossip
import Testing

/// How a node enters a formed mesh: it introduces itself (memberlist's newcomer gossips its own
/// alive message), a stranger that does not is not heard, and a join is asked again until a seed
/// replies. Limits are virtual time in the simulator.
@Suite struct JoinTests {
    static let n = 31
    static let joiner = n - 1

    func mesh(seed: UInt64) -> GossipSimulator {
        GossipSimulator(.init(nodeCount: Self.n, seed: seed, lateJoiners: 1))
    }

    func everyoneSeesAlive(_ sim: GossipSimulator, _ subject: Int) -> Bool {
        sim.nodes.indices.allSatisfy { $0 == subject || sim.nodes[$0].member(sim.ids[subject])?.state == .alive }
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func aNewcomerSpreadsItsOwnArrivalWhenItsSeedSpreadsNothing(seed: UInt64) {
        let sim = mesh(seed: seed)
        sim.run(for: .seconds(2))
        // The seed answers the join push-pull but none of its gossip reaches anyone, and the
        // newcomer's periodic push-pull is lost: the others can learn of it only from its datagrams.
        sim.drops = { from, _, message in
            if case let .pushPull(state) = message { return from == Self.joiner && !state.isJoin }
            return from == 0
        }
        sim.join(Self.joiner, through: 0)
        let seen = sim.run(limit: .seconds(5)) { everyoneSeesAlive(sim, Self.joiner) }
        #expect(seen, "members that learned of the newcomer: \(sim.nodes.filter { $0.member(sim.ids[Self.joiner]) != nil }.count) of \(Self.n)")
        #expect(!sim.nodes[Self.joiner].isJoining)
    }

    @Test func aStrangerThatDoesNotIntroduceItselfIsNotHeard() {
        var a = makeNode(1)
        a.bootstrap(members: [makeNode(2).localMember], now: .zero)
        let stranger = testID(9)
        let ping = MessageCodec.encode(.ping(seq: 7, target: a.id, updates: [.suspect(node: testID(2), incarnation: 0, from: stranger)]))
        // Not heard: no ack, its claim not taken. It is only asked for its state (below).
        let answer = a.receive(bytes: ping, from: stranger, now: .seconds(1)).sends
        #expect(!answer.contains { if case .ack = $0.message { true } else { false } })
        #expect(a.counters.droppedUnknownSender == 1)
        #expect(a.member(testID(2))?.state == .alive)
        #expect(a.member(stranger) == nil)

        // The same ping with the stranger's own alive record is heard and answered.
        let introduced = Member(id: stranger, address: "10.0.0.9:7946")
        let hello = MessageCodec.encode(.ping(seq: 8, target: a.id, updates: [.alive(introduced)]))
        let replies = a.receive(bytes: hello, from: stranger, now: .seconds(2)).sends
        #expect(a.member(stranger)?.state == .alive)
        #expect(replies.contains { $0.to == stranger })
    }

    @Test func anIntroductionAboutAnotherNodeIsNoIntroduction() {
        var a = makeNode(1)
        let stranger = testID(9)
        let other = Member(id: testID(8), address: "10.0.0.8:7946")
        _ = a.receive(bytes: MessageCodec.encode(.gossip(updates: [.alive(other)])), from: stranger, now: .seconds(1))
        #expect(a.member(testID(8)) == nil)
        #expect(a.counters.droppedUnknownSender == 1)
    }

    @Test func theOwnersAdmissionRuleDecidesWhoMayIntroduceItself() {
        var a = makeNode(1)
        let admitted = testID(8), refused = testID(9)
        a.admitsMember = { $0 == admitted }
        for node in [admitted, refused] {
            let hello = MessageCodec.encode(.gossip(updates: [.alive(Member(id: node, address: "10.0.0.\(node.bytes[0]):7946"))]))
            _ = a.receive(bytes: hello, from: node, now: .seconds(1))
        }
        #expect(a.member(admitted)?.state == .alive)
        #expect(a.member(refused) == nil)
        #expect(a.counters.droppedUnknownSender == 1)
        // A refused node is not asked for its state either.
        let again = a.receive(bytes: MessageCodec.encode(.ping(seq: 1, target: a.id, updates: [])), from: refused, now: .seconds(2))
        #expect(again.sends.isEmpty)
        #expect(a.counters.introductionsAsked == 0)
    }

    /// A member whose news of a newcomer was lost hears from the newcomer (its probes, over a link)
    /// and drops what it says: it asks the newcomer for its state, once in a while, and the reply
    /// introduces it. Behind NAT, the newcomer's probes of it are vouched for by the link, so
    /// nothing else would repair this until a full-state exchange.
    @Test func aMemberWhoseNewsOfANewcomerWasLostAsksTheNewcomer() {
        var a = makeNode(1)
        let newcomer = testID(9)
        let ping = { (seq: UInt32) in MessageCodec.encode(.ping(seq: seq, target: a.id, updates: [])) }
        let asked = a.receive(bytes: ping(1), from: newcomer, now: .seconds(1)).sends
        #expect(asked.count == 1)
        #expect(asked.first?.to == newcomer)
        guard case let .pushPull(state)? = asked.first?.message else {
            Issue.record("not a push-pull: \(asked)")
            return
        }
        #expect(!state.isReply && !state.isJoin)
        #expect(state.members.contains { $0.id == a.id })
        #expect(a.counters.introductionsAsked == 1)

        // Asked at most once per interval, whatever it sends meanwhile.
        #expect(a.receive(bytes: ping(2), from: newcomer, now: .seconds(3)).sends.isEmpty)
        #expect(a.receive(bytes: ping(3), from: newcomer, now: .seconds(7)).sends.count == 1)

        // Its reply, with its own alive record, introduces it.
        let reply = PushPull(isReply: true, isJoin: false, members: [Member(id: newcomer, address: "10.0.2.11:7946")], entries: [])
        _ = a.receive(bytes: MessageCodec.encode(.pushPull(reply)), from: newcomer, now: .seconds(8))
        #expect(a.member(newcomer)?.state == .alive)
        #expect(a.receive(bytes: ping(4), from: newcomer, now: .seconds(9)).sends.contains { $0.to == newcomer && { if case .ack = $0 { true } else { false } }($0.message) })
    }

    /// The seed of a join tells every member it reaches of the newcomer, not only the few that
    /// gossip picks at random; members it does not reach hear by gossip as before.
    @Test func theSeedTellsEveryMemberItReachesOfANewcomer() {
        var seed = makeNode(1)
        let members = (2...8).map { testID(UInt8($0)) }
        let unreachable = testID(8)
        seed.bootstrap(members: members.map { Member(id: $0, address: "10.0.0.\($0.bytes[0]):7946") }, now: .zero)
        seed.reaches = { _, to in to.id != unreachable }
        let newcomer = Member(id: testID(20), address: "10.0.0.20:7946")
        let join = PushPull(isReply: false, isJoin: true, members: [newcomer], entries: [])
        let sends = seed.receive(bytes: MessageCodec.encode(.pushPull(join)), from: newcomer.id, now: .seconds(1)).sends
        let told = Set(sends.compactMap { send -> NodeID? in
            guard case let .gossip(updates) = send.message,
                  updates.contains(where: { if case let .alive(m) = $0 { m.id == newcomer.id } else { false } }) else { return nil }
            return send.to
        })
        #expect(told == Set(members.filter { $0 != unreachable }), "told: \(told.map(\.short))")
    }

    @Test func aJoinWhoseReplyIsLostIsAskedAgain() {
        let sim = mesh(seed: 4)
        sim.run(for: .seconds(2))
        var repliesLost = 0
        var joinRequests = 0
        sim.drops = { from, _, message in
            guard case let .pushPull(state) = message else { return false }
            if from == Self.joiner, state.isJoin { joinRequests += 1 }
            // The seed's first reply to the newcomer is lost.
            if from == 0, state.isReply, repliesLost == 0 {
                repliesLost += 1
                return true
            }
            return false
        }
        sim.join(Self.joiner, through: 0)
        #expect(sim.nodes[Self.joiner].isJoining)
        let joined = sim.run(limit: .seconds(5)) {
            !sim.nodes[Self.joiner].isJoining && sim.nodes[Self.joiner].members().count == Self.n
        }
        #expect(joined)
        #expect(repliesLost == 1)
        #expect(joinRequests == 2)
    }

    @Test func seedsJoinedOneAtATimeWaitTogether() {
        var a = makeNode(1)
        _ = a.join(seeds: [(testID(2), "10.0.0.2:7946")], now: .zero)
        let sends = a.join(seeds: [(testID(3), "10.0.0.3:7946")], now: .milliseconds(10)).sends
        #expect(Set(sends.map(\.to)) == [testID(2), testID(3)])
        // The first seed's reply ends the join for both.
        let reply = PushPull(isReply: true, isJoin: false, members: [Member(id: testID(2), address: "10.0.0.2:7946")], entries: [])
        _ = a.receive(bytes: MessageCodec.encode(.pushPull(reply)), from: testID(2), now: .milliseconds(20))
        #expect(!a.isJoining)
        #expect(a.member(testID(2))?.state == .alive)
    }

    @Test func aJoinGivesUpAfterItsAttempts() {
        let sim = mesh(seed: 5)
        sim.crash(0)
        sim.join(Self.joiner, through: 0)
        sim.run(for: .seconds(120))
        #expect(!sim.nodes[Self.joiner].isJoining)
    }

    @Test(arguments: [11, 12, 13] as [UInt64])
    func thirtyNodesStartedAtOnceConvergeWithoutFalseDeaths(seed: UInt64) {
        let sim = GossipSimulator(.init(nodeCount: 30, seed: seed, formed: false))
        var falseDeaths = 0
        sim.observer = { _, action, _ in
            if case let .memberChanged(m) = action, m.state == .dead { falseDeaths += 1 }
        }
        // Well inside the periodic push-pull (30 s), which would repair anything in the end.
        let converged = sim.run(limit: .seconds(10)) {
            sim.nodes.allSatisfy { node in node.members().count == 30 && node.members().allSatisfy { $0.state == .alive } }
        }
        #expect(converged)
        #expect(falseDeaths == 0)
    }
}
