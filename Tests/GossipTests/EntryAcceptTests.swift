@testable import Gossip
import Testing

/// The owner's `accept` hook: an entry it refuses never enters that replica, and the others
/// still converge.
struct EntryAcceptTests {
    @Test func refusedEntriesNeverEnterTheReplica() throws {
        let sim = GossipSimulator(.init(nodeCount: 8, seed: 21))
        sim.run(until: .seconds(2))
        let outsider = sim.ids[5]
        // Node 3 lets in nothing written by node 5.
        sim.setAccept(on: 3) { $0.author != outsider }
        try sim.put(on: 5, kind: .gateway, key: "from-5", value: [5])
        try sim.put(on: 6, kind: .gateway, key: "from-6", value: [6])
        let spread = sim.run(step: .milliseconds(100), limit: .seconds(40)) {
            sim.nodes.indices.allSatisfy { i in
                sim.nodes[i].get(kind: .gateway, key: "from-6") != nil && (i == 3 || sim.nodes[i].get(kind: .gateway, key: "from-5") != nil)
            }
        }
        #expect(spread)
        // Anti-entropy offers it again and again; it stays out.
        sim.run(for: .seconds(35))
        #expect(sim.nodes[3].get(kind: .gateway, key: "from-5") == nil)
        #expect(sim.nodes[3].counters.droppedRefused > 0)
        #expect(sim.nodes[4].get(kind: .gateway, key: "from-5")?.value == [5])
    }
}
