/// A deterministic network of gossip nodes in one process, on virtual time: per-message loss and
/// latency, partitions, crashed nodes and stalled nodes. The same seed replays the same run.
///
/// Used by the tests (properties at 1,000 nodes) and by the `gossip-sim` benchmark.
public final class GossipSimulator {
    public struct Options: Sendable {
        public var nodeCount: Int
        public var seed: UInt64
        public var config: GossipConfig
        /// One-way latency of each message, uniform in this range.
        public var latency: ClosedRange<Duration>
        /// Probability that a message is lost.
        public var loss: Double
        /// Start from a formed mesh (every node knows every member) instead of joins.
        public var formed: Bool
        /// Each node's wall clock is off by up to this much (either way), for the HLC.
        public var clockSkew: Duration
        /// The last this-many nodes start outside the mesh, knowing nobody, until `join(_:through:)`.
        public var lateJoiners: Int

        public init(
            nodeCount: Int, seed: UInt64 = 1, config: GossipConfig = .lan,
            latency: ClosedRange<Duration> = .milliseconds(1)...(.milliseconds(10)), loss: Double = 0,
            formed: Bool = true, clockSkew: Duration = .milliseconds(100), lateJoiners: Int = 0
        ) {
            self.nodeCount = nodeCount
            self.seed = seed
            self.config = config
            self.latency = latency
            self.loss = loss
            self.formed = formed
            self.clockSkew = clockSkew
            self.lateJoiners = lateJoiners
        }
    }

    private enum Event {
        case deliver(to: Int, from: Int, bytes: [UInt8])
        case wake(Int)
        case resume(Int)
    }

    public let options: Options
    public private(set) var nodes: [GossipNode]
    public let ids: [NodeID]
    public private(set) var now: Duration = .zero
    /// Probability that a message is lost; may be changed between runs.
    public var loss: Double
    /// Called for every action a node takes (sends included), in order.
    public var observer: ((_ node: Int, _ action: GossipNode.Action, _ now: Duration) -> Void)?
    /// Messages for which it answers true are lost (a fault aimed at one kind of message).
    public var drops: ((_ from: Int, _ to: Int, _ message: Message) -> Bool)?
    /// The network's shape: whether a message from node `from` can arrive at node `to` at all
    /// (NATs, and the links that cross them); nil, everyone reaches everyone. The nodes' own view
    /// of it is their `reaches` hook (`setKnowledge`).
    public var reachable: ((_ from: Int, _ to: Int) -> Bool)?

    public private(set) var messagesSent = 0
    public private(set) var messagesLost = 0
    public private(set) var bytesSent = 0

    private let index: [NodeID: Int]
    private var rng: SeededRandom
    private var events = EventHeap<Event>()
    private var scheduledWake: [Duration?]
    private var crashedNodes: [Bool]
    private var stalledUntil: [Duration]
    private var stallQueue: [[(from: Int, bytes: [UInt8])]]
    private var group: [Int]?

    public static let wallClockBase: UInt64 = 1_800_000_000_000

    public init(_ options: Options) {
        self.options = options
        self.loss = options.loss
        var rng = SeededRandom(seed: options.seed)
        var ids: [NodeID] = []
        for _ in 0..<options.nodeCount {
            var bytes: [UInt8] = []
            for _ in 0..<4 {
                let word = rng.next()
                bytes += (0..<8).map { UInt8((word >> UInt64($0 * 8)) & 0xff) }
            }
            ids.append(NodeID(bytes: bytes)!)
        }
        self.ids = ids
        index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        let skewMillis = Int64(options.clockSkew.milliseconds)
        var nodes: [GossipNode] = []
        nodes.reserveCapacity(options.nodeCount)
        for (i, id) in ids.enumerated() {
            let skew = skewMillis > 0 ? Int64.random(in: -skewMillis...skewMillis, using: &rng) : 0
            // Addresses here are short constants, so the limits cannot be hit.
            guard let node = try? GossipNode(
                id: id, address: "sim-\(i)", config: options.config,
                wallClockAtZero: UInt64(Int64(Self.wallClockBase) + skew), now: .zero,
                random: SeededRandom(seed: rng.next()),
                sign: SimulatedSignature.signer(for: id), verify: SimulatedSignature.verifier
            ) else { preconditionFailure("simulator node addresses are within the limits") }
            nodes.append(node)
        }
        let founders = nodes.indices.dropLast(options.lateJoiners)
        if options.formed {
            let all = founders.map { Member(id: ids[$0], address: "sim-\($0)") }
            for i in founders { nodes[i].bootstrap(members: all, now: .zero) }
        }
        self.nodes = nodes
        self.rng = rng
        scheduledWake = Array(repeating: nil, count: options.nodeCount)
        crashedNodes = Array(repeating: false, count: options.nodeCount)
        stalledUntil = Array(repeating: .zero, count: options.nodeCount)
        stallQueue = Array(repeating: [], count: options.nodeCount)
        for i in nodes.indices { reschedule(i) }
        if !options.formed {
            // Every node joins through node 0, at a random moment of the first second.
            for i in founders.dropFirst() {
                let actions = self.nodes[i].join(seeds: [(ids[0], "sim-0")], now: .zero)
                perform(actions, by: i)
            }
        }
    }

    // MARK: Running

    /// Processes events up to and including `end`, then sets the clock to `end`.
    public func run(until end: Duration) {
        while let next = events.first, next.time <= end {
            _ = events.pop()
            now = next.time
            switch next.payload {
            case let .deliver(to, from, bytes):
                deliver(bytes, from: from, to: to)
            case let .wake(i):
                guard scheduledWake[i] == next.time else { continue }
                scheduledWake[i] = nil
                tickNode(i)
            case let .resume(i):
                guard !crashedNodes[i], stalledUntil[i] <= now else { continue }
                // A paused process first sees its timers expired, then reads what piled up.
                tickNode(i)
                let queued = stallQueue[i]
                stallQueue[i] = []
                for m in queued { deliver(m.bytes, from: m.from, to: i) }
            }
        }
        now = max(now, end)
    }

    public func run(for duration: Duration) { run(until: now + duration) }

    /// Runs in steps of `step` until `condition` holds or `limit` passes; returns whether it held.
    @discardableResult
    public func run(step: Duration = .milliseconds(100), limit: Duration, until condition: () -> Bool) -> Bool {
        let end = now + limit
        while now < end {
            if condition() { return true }
            run(until: min(now + step, end))
        }
        return condition()
    }

    // MARK: Faults

    /// The node stops for good: it neither receives nor ticks.
    public func crash(_ i: Int) { crashedNodes[i] = true }

    public func isCrashed(_ i: Int) -> Bool { crashedNodes[i] }

    /// The node stops processing for `duration`; messages to it queue up meanwhile.
    public func stall(_ i: Int, for duration: Duration) {
        stalledUntil[i] = now + duration
        events.push(.resume(i), at: now + duration)
    }

    public func isStalled(_ i: Int) -> Bool { stalledUntil[i] > now }

    /// Messages between nodes in different groups are lost. `groupOf` maps a node to its group.
    public func partition(_ groupOf: (Int) -> Int) {
        group = nodes.indices.map(groupOf)
    }

    public func heal() { group = nil }

    // MARK: Acting on nodes

    /// A local write on node `i`.
    public func put(on i: Int, kind: EntryKind, key: String, value: [UInt8]) throws(GossipError) {
        let actions = try nodes[i].put(kind: kind, key: key, value: value, now: now)
        perform(actions, by: i)
        reschedule(i)
    }

    /// Node `i` joins through node `seed` now.
    public func join(_ i: Int, through seed: Int) {
        let actions = nodes[i].join(seeds: [(ids[seed], "sim-\(seed)")], now: now)
        perform(actions, by: i)
        reschedule(i)
    }

    /// Sets node `i`'s check of entries from elsewhere (`GossipNode.accept`).
    public func setAccept(on i: Int, _ accept: @escaping @Sendable (Entry) -> Bool) {
        nodes[i].accept = { accept($0) ? .accept : .refuse }
    }

    /// Sets node `i`'s knowledge of the network: which members can reach which
    /// (`GossipNode.reaches`), and which it holds a live link to (`GossipNode.vouches`).
    public func setKnowledge(
        on i: Int, reaches: @escaping @Sendable (_ from: Member, _ to: Member) -> Bool,
        vouches: @escaping @Sendable (NodeID) -> Bool
    ) {
        nodes[i].reaches = reaches
        nodes[i].vouches = vouches
    }

    public func delete(on i: Int, kind: EntryKind, key: String) throws(GossipError) {
        let actions = try nodes[i].delete(kind: kind, key: key, now: now)
        perform(actions, by: i)
        reschedule(i)
    }

    /// Delivers raw bytes to node `to` as if node `from` had sent them (for forgery tests).
    public func inject(_ bytes: [UInt8], from: Int, to: Int) {
        deliver(bytes, from: from, to: to)
    }

    public func index(of id: NodeID) -> Int? { index[id] }

    // MARK: Internals

    private func deliver(_ bytes: [UInt8], from: Int, to: Int) {
        guard !crashedNodes[to] else { return }
        if stalledUntil[to] > now {
            stallQueue[to].append((from, bytes))
            return
        }
        let actions = nodes[to].receive(bytes: bytes, from: ids[from], now: now)
        perform(actions, by: to)
        reschedule(to)
    }

    private func tickNode(_ i: Int) {
        guard !crashedNodes[i], stalledUntil[i] <= now else { return }
        let actions = nodes[i].tick(now: now)
        perform(actions, by: i)
        reschedule(i)
    }

    private func perform(_ actions: [GossipNode.Action], by i: Int) {
        for action in actions {
            observer?(i, action, now)
            guard case let .send(to, _, bytes) = action, let j = index[to] else { continue }
            messagesSent += 1
            bytesSent += bytes.count
            if let reachable, !reachable(i, j) {
                messagesLost += 1
                continue
            }
            if let group, group[i] != group[j] {
                messagesLost += 1
                continue
            }
            if let drops, let message = try? MessageCodec.decode(bytes), drops(i, j, message) {
                messagesLost += 1
                continue
            }
            if loss > 0, Double.random(in: 0..<1, using: &rng) < loss {
                messagesLost += 1
                continue
            }
            let span = options.latency.upperBound - options.latency.lowerBound
            let delay = options.latency.lowerBound + span * Double.random(in: 0...1, using: &rng)
            events.push(.deliver(to: j, from: i, bytes: bytes), at: now + delay)
        }
    }

    private func reschedule(_ i: Int) {
        guard !crashedNodes[i] else { return }
        // Never in the past, and always forward, so a node cannot spin at one instant.
        let deadline = max(nodes[i].nextDeadline, now + .microseconds(1))
        if let current = scheduledWake[i], current <= deadline { return }
        scheduledWake[i] = deadline
        events.push(.wake(i), at: deadline)
    }
}
