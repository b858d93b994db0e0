@testable import Gossip
import Synchronization
import Testing

/// Gateways on a public network and sites behind NAT, as the two-site lab builds them
/// (scripts/sites.sh): a site's member reaches the members of its own site and, over the links it
/// holds, every gateway; gateways reach each other and every member linked to them; nothing
/// crosses from one site to another. A cut (a partition) takes a site's datagrams and links to one
/// gateway away.
///
/// What each node knows of it is what a real node knows: its own links (which it takes to be up
/// until it notices they are not: `noticeCuts`), and for third parties the rule real nodes keep,
/// that a member behind NAT holds links to every gateway.
final class SiteTopology: Sendable {
    enum Place: Hashable, Sendable {
        case gateway
        case site(Int)
    }

    let places: [Place]
    private let index: [NodeID: Int]
    /// (site, gateway) pairs cut off from each other: what the network does, and what the nodes
    /// have noticed (a silent link is closed only after its answer timeout).
    private let cuts = Mutex<Set<[Int]>>([])
    private let noticed = Mutex<Set<[Int]>>([])
    private let crashed = Mutex<Set<Int>>([])

    init(places: [Place], ids: [NodeID]) {
        self.places = places
        index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
    }

    var gateways: [Int] { places.indices.filter { places[$0] == .gateway } }
    func members(of site: Int) -> [Int] { places.indices.filter { places[$0] == .site(site) } }

    func cut(site: Int, from gateway: Int) { _ = cuts.withLock { $0.insert([site, gateway]) } }
    /// The nodes find the cut links dead (their answer timeout passed).
    func noticeCuts() { noticed.withLock { $0 = cuts.withLock { $0 } } }
    func heal() {
        cuts.withLock { $0 = [] }
        noticed.withLock { $0 = [] }
    }
    /// A crashed process's links close at once (the kernel resets them).
    func crash(_ i: Int) { _ = crashed.withLock { $0.insert(i) } }

    /// Whether a message from `i` arrives at `j`.
    func reachable(_ i: Int, _ j: Int) -> Bool {
        connected(i, j, cuts: cuts.withLock { $0 })
    }

    private func connected(_ i: Int, _ j: Int, cuts: Set<[Int]>) -> Bool {
        switch (places[i], places[j]) {
        case (.gateway, .gateway): true
        case let (.site(a), .site(b)): a == b
        case let (.site(s), .gateway): !cuts.contains([s, j])
        case let (.gateway, .site(s)): !cuts.contains([s, i])
        }
    }

    /// Whether `i` holds a link to `j` it takes to be live: members behind NAT link to every
    /// gateway, and gateways to each other (they joined through one another).
    private func linked(_ i: Int, _ j: Int) -> Bool {
        guard places[i] == .gateway || places[j] == .gateway, i != j else { return false }
        guard !crashed.withLock({ $0.contains(i) || $0.contains(j) }) else { return false }
        return connected(i, j, cuts: noticed.withLock { $0 })
    }

    /// Node `i`'s `reaches` and `vouches` hooks.
    func knowledge(of i: Int) -> (reaches: @Sendable (Member, Member) -> Bool, vouches: @Sendable (NodeID) -> Bool) {
        let reaches: @Sendable (Member, Member) -> Bool = { [self] from, to in
            guard let f = index[from.id], let t = index[to.id] else { return false }
            if f == i {
                // Its own links, and datagrams within its network.
                return linked(i, t) || (places[i] == places[t] && places[i] != .gateway) || (places[i] == .gateway && places[t] == .gateway)
            }
            // Others: by the rule, not by their links, which it cannot see.
            return connected(f, t, cuts: [])
        }
        let vouches: @Sendable (NodeID) -> Bool = { [self] node in
            index[node].map { linked(i, $0) } ?? false
        }
        return (reaches, vouches)
    }
}

/// Formation, stability, partitions and crashes with members behind two NATs that only the
/// gateways link (the two-site lab's faults, on virtual time).
extension SimulationPropertyTests {
    /// A simulator of `places`: every member but the first gateway starts outside and joins as
    /// the lab starts them, one after another, gateways first; the runners of site 0 and the
    /// gateways through the first gateway, those of other sites through the last gateway.
    static func sites(_ places: [SiteTopology.Place], seed: UInt64, knowledge: Bool = true) -> (GossipSimulator, SiteTopology) {
        let sim = GossipSimulator(.init(nodeCount: places.count, seed: seed, formed: true, lateJoiners: places.count - 1))
        let topology = SiteTopology(places: places, ids: sim.ids)
        sim.reachable = { topology.reachable($0, $1) }
        if knowledge {
            for i in places.indices {
                let hooks = topology.knowledge(of: i)
                sim.setKnowledge(on: i, reaches: hooks.reaches, vouches: hooks.vouches)
            }
        }
        let first = topology.gateways[0], last = topology.gateways.last!
        for i in places.indices.dropFirst() {
            sim.run(for: .milliseconds(700))
            sim.join(i, through: places[i] == .site(0) || places[i] == .gateway ? first : last)
        }
        return (sim, topology)
    }

    /// The lab: gw1, gw2; a1, a2 behind one NAT; b1 behind another.
    static let lab: [SiteTopology.Place] = [.gateway, .gateway, .site(0), .site(0), .site(1)]
    /// Larger sites, where a random pick of helpers mostly finds members that cannot help.
    static let largeSites: [SiteTopology.Place] = [.gateway, .gateway] + Array(repeating: .site(0), count: 8) + Array(repeating: .site(1), count: 6)

    static func allAlive(_ sim: GossipSimulator, among nodes: [Int]? = nil) -> Bool {
        let nodes = nodes ?? Array(sim.nodes.indices)
        return nodes.allSatisfy { i in
            nodes.allSatisfy { j in i == j || sim.nodes[i].member(sim.ids[j])?.state == .alive }
        }
    }

    /// Every suspect or dead state a live node gives a member that is not crashed, from now on.
    final class FalseVerdicts {
        private(set) var seen: [String] = []
        init(_ sim: GossipSimulator, excluding crashed: @escaping (Int) -> Bool = { _ in false }) {
            sim.observer = { [unowned self] i, action, now in
                guard case let .memberChanged(m) = action, m.state == .suspect || m.state == .dead,
                      let j = sim.index(of: m.id), !crashed(j) else { return }
                seen.append("\(now): node \(i) saw node \(j) \(m.state)")
            }
        }
    }

    /// All members see each other alive within 30 s of the last start, and no member is
    /// suspected or declared dead in the 5 minutes after (300 probe rounds each).
    static let formations: [([SiteTopology.Place], UInt64)] = [(lab, 31), (lab, 32), (lab, 33), (largeSites, 34), (largeSites, 35)]
    static let partitions: [([SiteTopology.Place], UInt64)] = [(lab, 41), (lab, 42), (lab, 43), (largeSites, 44)]

    @Test(arguments: formations)
    func membersBehindTwoNATsFormAndStayAlive(places: [SiteTopology.Place], seed: UInt64) {
        let (sim, _) = Self.sites(places, seed: seed)
        let formed = sim.run(step: .milliseconds(500), limit: .seconds(30)) { Self.allAlive(sim) }
        #expect(formed, "not all alive within 30 s: \(Self.views(sim))")
        let verdicts = FalseVerdicts(sim)
        sim.run(for: .seconds(300))
        #expect(verdicts.seen.isEmpty, "\(verdicts.seen.count) false verdicts, the first: \(verdicts.seen.prefix(5))")
        #expect(Self.allAlive(sim))
    }

    /// Site B is cut off from the first gateway for 60 s (its members still link the second):
    /// nobody is declared dead, and all are alive again within 15 s of the heal.
    @Test(arguments: partitions)
    func aSiteCutOffFromOneGatewayKillsNobody(places: [SiteTopology.Place], seed: UInt64) {
        let (sim, topology) = Self.sites(places, seed: seed)
        #expect(sim.run(step: .milliseconds(500), limit: .seconds(30)) { Self.allAlive(sim) }, "not formed: \(Self.views(sim))")
        var deaths: [String] = []
        sim.observer = { i, action, now in
            if case let .memberChanged(m) = action, m.state == .dead { deaths.append("\(now): node \(i) saw \(sim.index(of: m.id) ?? -1) dead") }
        }
        let gw1 = topology.gateways[0]
        topology.cut(site: 1, from: gw1)
        // The links across the cut fall silent; their answer timeout closes them 5 s later.
        sim.run(for: .seconds(5))
        topology.noticeCuts()
        sim.run(for: .seconds(55))
        #expect(deaths.isEmpty, "false deaths in the partition: \(deaths.prefix(5))")
        topology.heal()
        let healed = sim.run(step: .milliseconds(500), limit: .seconds(15)) { Self.allAlive(sim) }
        #expect(healed, "not all alive 15 s after the heal: \(Self.views(sim))")
    }

    /// What the knowledge must not break: a crashed member behind NAT, and a crashed gateway, are
    /// still declared dead by every live member.
    @Test(arguments: [UInt64(51), 52])
    func crashedMembersBehindNATAreStillDeclaredDead(seed: UInt64) {
        let (sim, topology) = Self.sites(Self.largeSites, seed: seed)
        #expect(sim.run(step: .milliseconds(500), limit: .seconds(30)) { Self.allAlive(sim) }, "not formed: \(Self.views(sim))")
        let runner = topology.members(of: 1)[0], gateway = topology.gateways[0]
        for victim in [runner, gateway] {
            sim.crash(victim)
            topology.crash(victim)
            let id = sim.ids[victim]
            let dead = sim.run(step: .milliseconds(500), limit: .seconds(60)) {
                sim.nodes.indices.allSatisfy { sim.isCrashed($0) || sim.nodes[$0].member(id)?.state == .dead }
            }
            #expect(dead, "node \(victim) crashed and is not dead everywhere within 60 s: \(Self.views(sim))")
        }
    }

    /// Each node's view of the others that are not alive, for failure messages.
    static func views(_ sim: GossipSimulator) -> [String] {
        sim.nodes.indices.flatMap { i in
            sim.nodes.indices.compactMap { j -> String? in
                guard i != j else { return nil }
                let state = sim.nodes[i].member(sim.ids[j])?.state
                return state == .alive ? nil : "\(i) sees \(j) \(state.map { "\($0)" } ?? "unknown")"
            }
        }
    }
}
