@testable import Gossip
import Testing

/// Properties of the protocol at 1,000 simulated nodes. Virtual time, fixed seeds; the
/// scenarios are short so that each runs in seconds in a debug build.
@Suite struct SimulationPropertyTests {
    static let n = 1000

    /// A new entry reaches every live node within c·log n gossip rounds (c = 3, log base 2),
    /// with 10 % of messages lost.
    @Test func disseminationReachesAllNodesWithinLogRounds() throws {
        let sim = GossipSimulator(.init(nodeCount: Self.n, seed: 11, loss: 0.10))
        sim.run(until: .seconds(2))
        try sim.put(on: 7, kind: .gateway, key: "gw/1", value: [1, 2, 3])
        let rounds = 3 * log2Ceil(Self.n)
        let limit = sim.options.config.gossipInterval * rounds
        let reached = sim.run(step: .milliseconds(50), limit: limit) {
            sim.nodes.allSatisfy { $0.get(kind: .gateway, key: "gw/1")?.value == [1, 2, 3] }
        }
        #expect(reached, "not every node held the entry within \(rounds) rounds")
    }

    /// A crashed node is marked dead by every live member.
    @Test func crashedNodeIsMarkedDeadByEveryLiveMember() {
        var config = GossipConfig.lan
        // Shorter suspicion so the scenario stays short; the property does not depend on it.
        config.suspicionMult = 2
        let sim = GossipSimulator(.init(nodeCount: Self.n, seed: 12, config: config, loss: 0.01))
        sim.run(until: .seconds(1))
        let victim = 42
        sim.crash(victim)
        let id = sim.ids[victim]
        let allDead = sim.run(step: .milliseconds(500), limit: .seconds(90)) {
            sim.nodes.indices.allSatisfy { i in
                i == victim || sim.nodes[i].member(id)?.state == .dead
            }
        }
        #expect(allDead)
    }

    /// 5 % of the nodes stall for 1 s; with Lifeguard on, no healthy node is declared dead.
    @Test func stallsDoNotKillHealthyNodesWithLifeguard() {
        let sim = GossipSimulator(.init(nodeCount: Self.n, seed: 13))
        var falseDeaths = 0
        sim.observer = { _, action, _ in
            if case let .memberChanged(m) = action, m.state == .dead { falseDeaths += 1 }
        }
        sim.run(until: .seconds(2))
        var rng = SeededRandom(seed: 99)
        let stalled = Array(sim.nodes.indices.shuffled(using: &rng).prefix(Self.n / 20))
        for i in stalled { sim.stall(i, for: .seconds(1)) }
        sim.run(until: .seconds(40))
        // Nobody crashed, so every "dead" is a false one.
        #expect(falseDeaths == 0)
        #expect(sim.nodes.allSatisfy { node in node.members().allSatisfy { $0.state == .alive || $0.state == .suspect } })
    }

    /// After a partition heals, both sides converge to identical replicas (equal digests), the
    /// conflicting write to one key resolved the same way everywhere.
    @Test func healedPartitionConvergesToIdenticalState() throws {
        let sim = GossipSimulator(.init(nodeCount: Self.n, seed: 14, loss: 0.01))
        sim.run(until: .seconds(1))
        sim.partition { $0 < Self.n / 2 ? 0 : 1 }
        try sim.put(on: 3, kind: .lease, key: "left-side", value: [1])
        try sim.put(on: 700, kind: .lease, key: "right-side", value: [2])
        sim.run(for: .seconds(1))
        try sim.put(on: 4, kind: .domainClaim, key: "app.example.com", value: [4])
        try sim.put(on: 900, kind: .domainClaim, key: "app.example.com", value: [9])
        sim.run(for: .seconds(2))
        #expect(sim.nodes[0].digest != sim.nodes[Self.n - 1].digest, "the partition should have split the state")
        sim.heal()
        let converged = sim.run(step: .milliseconds(500), limit: .seconds(60)) {
            let first = sim.nodes[0].digest
            return sim.nodes.allSatisfy { $0.digest == first }
        }
        #expect(converged)
        #expect(sim.nodes[0].map.count == 3)
        let winners = Set(sim.nodes.map { $0.get(kind: .domainClaim, key: "app.example.com")?.value })
        #expect(winners.count == 1)
    }

    /// Forged, future-dated and non-member entries never enter any replica, while a genuine
    /// entry sent alongside spreads.
    @Test func forgedOrFutureDatedEntriesNeverEnterAnyReplica() throws {
        let sim = GossipSimulator(.init(nodeCount: Self.n, seed: 15))
        sim.run(until: .seconds(1))
        let victim = sim.ids[9]
        let wall = GossipSimulator.wallClockBase + UInt64(sim.now.components.seconds * 1000)
        func signed(_ e: Entry, by author: NodeID) -> Entry {
            var e = e
            e.signature = SimulatedSignature.signature(e.signedBytes, author)
            return e
        }
        let forged = Entry(kind: .lease, key: "forged", value: [6], timestamp: .init(wallMillis: wall),
                           author: victim, signature: Array(repeating: 7, count: 16))
        let future = signed(Entry(kind: .lease, key: "future", value: [6], timestamp: .init(wallMillis: wall + 3_600_000),
                                  author: victim, signature: []), by: victim)
        let outsider = try #require(NodeID(bytes: Array(repeating: 0xee, count: 32)))
        let stranger = signed(Entry(kind: .lease, key: "stranger", value: [6], timestamp: .init(wallMillis: wall),
                                    author: outsider, signature: []), by: outsider)
        let bytes = MessageCodec.encode(.gossip(updates: [.entry(forged), .entry(future), .entry(stranger)]))
        for target in stride(from: 0, to: Self.n, by: 10) { sim.inject(bytes, from: 5, to: target) }
        try sim.put(on: 5, kind: .lease, key: "genuine", value: [1])
        sim.run(for: .seconds(10))
        // Dissemination worked in this run (push-pull repairs the last few later).
        #expect(sim.nodes.filter { $0.get(kind: .lease, key: "genuine") != nil }.count >= Self.n * 99 / 100)
        for node in sim.nodes {
            #expect(node.map.entry(at: EntryKey(kind: .lease, key: "forged")) == nil)
            #expect(node.map.entry(at: EntryKey(kind: .lease, key: "future")) == nil)
            #expect(node.map.entry(at: EntryKey(kind: .lease, key: "stranger")) == nil)
        }
        let dropped = sim.nodes.reduce(into: (0, 0, 0)) {
            $0.0 += $1.counters.droppedBadSignature
            $0.1 += $1.counters.droppedFutureDated
            $0.2 += $1.counters.droppedNonMemberAuthor
        }
        #expect(dropped.0 == Self.n / 10 && dropped.1 == Self.n / 10 && dropped.2 == Self.n / 10)
    }
}

func log2Ceil(_ n: Int) -> Int {
    var r = 0
    while (1 << r) < n { r += 1 }
    return r
}
