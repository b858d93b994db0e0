// gossip-sim: the figures of the "Gossip (simulator)" section of BENCHMARKS.md.
//
//   swift build -c release --product gossip-sim
//   .build/release/gossip-sim <scenario> [--nodes N] [--loss P] [--seed S] [--runs R] [--no-lifeguard]
//
// Scenarios: dissemination, model, bandwidth, crash, stall, partition; "missing" is a diagnostic
// that lists the nodes a fresh entry has not reached after 5 s.
// Everything runs on virtual time; the wall time printed is only how long the simulation took.
import Gossip

struct Arguments {
    var scenario = "dissemination"
    var nodes = 1000
    var loss = 0.0
    var seed: UInt64 = 1
    var runs = 5
    var lifeguard = true

    init(_ argv: [String]) {
        var it = argv.dropFirst().makeIterator()
        if let first = argv.dropFirst().first, !first.hasPrefix("--") { scenario = first; _ = it.next() }
        while let a = it.next() {
            switch a {
            case "--nodes": nodes = Int(it.next() ?? "") ?? nodes
            case "--loss": loss = Double(it.next() ?? "") ?? loss
            case "--seed": seed = UInt64(it.next() ?? "") ?? seed
            case "--runs": runs = Int(it.next() ?? "") ?? runs
            case "--no-lifeguard": lifeguard = false
            default: print("unknown argument \(a)")
            }
        }
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return .nan }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func fmt(_ x: Double, _ digits: Int = 1) -> String {
    guard x.isFinite else { return "n/a" }
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (x * p).rounded() / p
    return "\(r)"
}

/// Virtual seconds from a put until 99.9 % of nodes hold it (full state machine).
func dissemination(nodes: Int, loss: Double, seed: UInt64) -> Double? {
    let sim = GossipSimulator(.init(nodeCount: nodes, seed: seed, loss: loss))
    sim.run(until: .seconds(2))
    let start = sim.now
    try? sim.put(on: 0, kind: .gateway, key: "bench", value: [1])
    let need = Int((Double(nodes) * 0.999).rounded(.up))
    var holders = 1
    var reachedAt: Duration?
    sim.observer = { _, action, now in
        if case let .entryChanged(change) = action, !change.isLocal, change.current.key == "bench" {
            holders += 1
            if holders >= need, reachedAt == nil { reachedAt = now }
        }
    }
    sim.run(step: .milliseconds(50), limit: .seconds(60)) { reachedAt != nil }
    return reachedAt.map { seconds($0 - start) }
}

/// The dissemination model (as Serf's convergence simulator): each round, every node that holds
/// the update and has transmissions left sends it to `fanout` random nodes; each update is sent
/// `limit` times per node. Same numbers as `.lan`. Used where the full simulator would need
/// n² member records (10,000 nodes).
func modelRounds(nodes: Int, loss: Double, seed: UInt64, config: GossipConfig = .lan) -> Int? {
    var rng = SeededRandom(seed: seed)
    let limit = config.retransmitLimit(members: nodes)
    var has = [Bool](repeating: false, count: nodes)
    var left = [Int](repeating: 0, count: nodes)
    has[0] = true
    left[0] = limit
    var count = 1
    let need = Int((Double(nodes) * 0.999).rounded(.up))
    for round in 1...200 {
        var newly: [Int] = []
        for i in 0..<nodes where has[i] && left[i] > 0 {
            for _ in 0..<config.gossipNodes where left[i] > 0 {
                left[i] -= 1
                var j = Int.random(in: 0..<nodes - 1, using: &rng)
                if j >= i { j += 1 }
                if Double.random(in: 0..<1, using: &rng) < loss { continue }
                if !has[j] { newly.append(j) }
            }
        }
        for j in newly where !has[j] {
            has[j] = true
            left[j] = limit
            count += 1
        }
        if count >= need { return round }
    }
    return nil
}

/// Bytes sent per node per second in steady state (probes, acks, push-pull), and while one
/// entry per second is written somewhere in the mesh.
func bandwidth(nodes: Int, seed: UInt64, writesPerSecond: Int) -> Double {
    let sim = GossipSimulator(.init(nodeCount: nodes, seed: seed))
    sim.run(until: .seconds(5))
    let before = sim.bytesSent
    let window = 60
    for s in 0..<window {
        for w in 0..<writesPerSecond {
            try? sim.put(on: (s * 7 + w) % nodes, kind: .lease, key: "k\(s)-\(w)", value: Array(repeating: 1, count: 64))
        }
        sim.run(for: .seconds(1))
    }
    return Double(sim.bytesSent - before) / Double(nodes) / Double(window)
}

/// Seconds from a crash until the first member, and until all live members, mark it dead.
func crashDetection(nodes: Int, seed: UInt64, lifeguard: Bool) -> (first: Double, all: Double)? {
    var config = GossipConfig.lan
    config.lifeguard = lifeguard
    let sim = GossipSimulator(.init(nodeCount: nodes, seed: seed, config: config))
    sim.run(until: .seconds(3))
    let victim = nodes / 2
    let id = sim.ids[victim]
    sim.crash(victim)
    let start = sim.now
    var first: Duration?
    var marked = 0
    var all: Duration?
    sim.observer = { _, action, now in
        if case let .memberChanged(m) = action, m.id == id, m.state == .dead {
            if first == nil { first = now }
            marked += 1
            if marked == nodes - 1 { all = now }
        }
    }
    sim.run(step: .seconds(1), limit: .seconds(600)) { all != nil }
    guard let f = first, let a = all else { return nil }
    return (seconds(f - start), seconds(a - start))
}

/// False "dead" declarations when 5 % of the nodes stall for 1 s (each (observer, node) pair
/// counted once), and how many distinct healthy nodes were declared dead by someone.
func stall(nodes: Int, seed: UInt64, lifeguard: Bool, loss: Double, stallsEvery: Duration?) -> (declarations: Int, victims: Int) {
    var config = GossipConfig.lan
    config.lifeguard = lifeguard
    let sim = GossipSimulator(.init(nodeCount: nodes, seed: seed, config: config, loss: loss))
    var declarations = 0
    var victims = Set<NodeID>()
    sim.observer = { _, action, _ in
        if case let .memberChanged(m) = action, m.state == .dead {
            declarations += 1
            victims.insert(m.id)
        }
    }
    sim.run(until: .seconds(5))
    var rng = SeededRandom(seed: seed &+ 1000)
    let stalled = Array((0..<nodes).shuffled(using: &rng).prefix(max(1, nodes / 20)))
    let end = Duration.seconds(125)
    if let every = stallsEvery {
        while sim.now < end - .seconds(60) {
            for i in stalled where !sim.isStalled(i) { sim.stall(i, for: .seconds(1)) }
            sim.run(for: every)
        }
    } else {
        for i in stalled { sim.stall(i, for: .seconds(1)) }
    }
    sim.run(until: end)
    return (declarations, victims.count)
}

/// Seconds from healing a half/half partition until every replica has the same digest.
func partition(nodes: Int, seed: UInt64, duration: Duration) -> Double? {
    let sim = GossipSimulator(.init(nodeCount: nodes, seed: seed, loss: 0.01))
    sim.run(until: .seconds(1))
    sim.partition { $0 < nodes / 2 ? 0 : 1 }
    try? sim.put(on: 1, kind: .lease, key: "a", value: [1])
    try? sim.put(on: nodes - 1, kind: .lease, key: "b", value: [2])
    sim.run(for: duration)
    sim.heal()
    let start = sim.now
    let ok = sim.run(step: .milliseconds(500), limit: .seconds(300)) {
        let d = sim.nodes[0].digest
        return sim.nodes.allSatisfy { $0.digest == d }
    }
    return ok ? seconds(sim.now - start) : nil
}

let args = Arguments(CommandLine.arguments)
let clock = ContinuousClock()
let t0 = clock.now
let interval = seconds(GossipConfig.lan.gossipInterval)

switch args.scenario {
case "dissemination":
    var xs: [Double] = []
    for r in 0..<args.runs {
        if let s = dissemination(nodes: args.nodes, loss: args.loss, seed: args.seed &+ UInt64(r)) { xs.append(s) }
    }
    let m = median(xs)
    print("dissemination nodes=\(args.nodes) loss=\(args.loss) runs=\(xs.count)/\(args.runs) median=\(fmt(m, 2)) s = \(fmt(m / interval)) rounds  all=\(xs.map { fmt($0, 2) })")
case "model":
    var xs: [Double] = []
    for r in 0..<args.runs {
        if let k = modelRounds(nodes: args.nodes, loss: args.loss, seed: args.seed &+ UInt64(r)) { xs.append(Double(k)) }
    }
    let m = median(xs)
    print("model nodes=\(args.nodes) loss=\(args.loss) median=\(fmt(m)) rounds = \(fmt(m * interval, 2)) s  all=\(xs)")
case "bandwidth":
    let idle = bandwidth(nodes: args.nodes, seed: args.seed, writesPerSecond: 0)
    let busy = bandwidth(nodes: args.nodes, seed: args.seed, writesPerSecond: 1)
    print("bandwidth nodes=\(args.nodes) idle=\(fmt(idle, 0)) B/s/node  with 1 write/s=\(fmt(busy, 0)) B/s/node")
case "crash":
    var firsts: [Double] = [], alls: [Double] = []
    for r in 0..<args.runs {
        if let x = crashDetection(nodes: args.nodes, seed: args.seed &+ UInt64(r), lifeguard: args.lifeguard) {
            firsts.append(x.first)
            alls.append(x.all)
        }
    }
    print("crash nodes=\(args.nodes) lifeguard=\(args.lifeguard) first median=\(fmt(median(firsts))) s all median=\(fmt(median(alls))) s firsts=\(firsts.map { fmt($0) }) alls=\(alls.map { fmt($0) })")
case "stall":
    let once = stall(nodes: args.nodes, seed: args.seed, lifeguard: args.lifeguard, loss: args.loss, stallsEvery: nil)
    let repeated = stall(nodes: args.nodes, seed: args.seed, lifeguard: args.lifeguard, loss: args.loss, stallsEvery: .seconds(3))
    print("stall nodes=\(args.nodes) lifeguard=\(args.lifeguard) loss=\(args.loss) once: declarations=\(once.declarations) healthy-nodes-declared-dead=\(once.victims); every 3 s for 60 s: declarations=\(repeated.declarations) healthy-nodes-declared-dead=\(repeated.victims)")
case "partition":
    let s = partition(nodes: args.nodes, seed: args.seed, duration: .seconds(args.runs))
    print("partition nodes=\(args.nodes) seconds=\(args.runs) converged after heal in \(s.map { fmt($0) } ?? "no convergence") s")
case "missing":
    // Diagnostics: which nodes lack a fresh entry after 5 s, and what they saw.
    let sim = GossipSimulator(.init(nodeCount: args.nodes, seed: args.seed, loss: args.loss))
    sim.run(until: .seconds(2))
    try? sim.put(on: 0, kind: .gateway, key: "bench", value: [1])
    var received: [Int: [String]] = [:]
    var kinds: [String: Int] = [:]
    sim.observer = { i, action, now in
        if case let .send(to, _, bytes) = action, let m = try? MessageCodec.decode(bytes), let j = sim.index(of: to) {
            let hasEntry: ([Update]) -> Bool = { $0.contains(where: { if case .entry = $0 { true } else { false } }) }
            switch m {
            case let .gossip(u) where hasEntry(u): received[j, default: []].append("gossip from \(i) at \(now)")
            case let .ping(_, _, u) where hasEntry(u): kinds["ping", default: 0] += 1
            case let .ack(_, u) where hasEntry(u): kinds["ack", default: 0] += 1
            case let .indirectPing(_, _, _, u) where hasEntry(u): kinds["indirect", default: 0] += 1
            default: break
            }
        }
    }
    sim.run(for: .seconds(5))
    let total = received.values.reduce(0) { $0 + $1.count }
    print("entry gossip messages: \(total) to \(received.count) distinct nodes; piggybacked: \(kinds)")
    for (i, node) in sim.nodes.enumerated() where node.get(kind: .gateway, key: "bench") == nil {
        print("node \(i) lacks it; counters \(node.counters); sent to it: \(received[i] ?? [])")
    }
default:
    print("unknown scenario \(args.scenario); use dissemination, model, bandwidth, crash, stall or partition")
}
print("(simulation took \(clock.now - t0) of wall time)")

/// The two kinds the scenarios write, numbered as the mesh numbers them (Gossip knows no kinds).
extension EntryKind {
    static let gateway = EntryKind(rawValue: 2)
    static let lease = EntryKind(rawValue: 3)
}
