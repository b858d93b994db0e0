public import Logging

/// One member's gossip state machine: SWIM + Lifeguard membership, dissemination, push-pull
/// anti-entropy and the replicated map.
///
/// It owns no sockets, threads or clocks. The caller:
/// - passes every datagram it receives to `receive(bytes:from:now:)`, with `from` the node ID the
///   transport authenticated;
/// - calls `tick(now:)` at `nextDeadline` (or on a fixed short period);
/// - carries out the returned actions: `.send` hands bytes to the transport, the others are events.
///
/// `now` is monotonic time since an origin of the caller's choice (virtual in the simulator).
/// Physical time for the HLC is `wallClockAtZero` plus `now`.
public struct GossipNode: Sendable {
    /// Signs bytes with the local node's Ed25519 key.
    public typealias Signer = @Sendable (_ message: [UInt8]) -> [UInt8]
    /// Checks an Ed25519 signature by `author` (whose node ID is its public key).
    public typealias Verifier = @Sendable (_ signature: [UInt8], _ message: [UInt8], _ author: NodeID) -> Bool

    /// What the caller must do, or what it may want to know.
    public enum Action: Hashable, Sendable {
        /// Send `bytes` to the member. Push-pull messages can exceed a datagram; the transport
        /// sends those, and any it is given that `needsStream` names, on a stream.
        case send(to: NodeID, address: String, bytes: [UInt8])
        /// A member was added or changed state, address or metadata.
        case memberChanged(Member)
        /// An entry of the local replica changed (subscribers hear of it here).
        case entryChanged(EntryChange)
    }

    /// Whether `bytes` (a message of a `send` action) must go on a stream, not in a datagram:
    /// a push-pull (full state, of any size), or anything larger than a datagram may be.
    public func needsStream(_ bytes: [UInt8]) -> Bool {
        bytes.count > config.maxPacketBytes || MessageCodec.isPushPull(bytes)
    }

    public let id: NodeID
    public let config: GossipConfig
    public internal(set) var counters = GossipCounters()
    /// The local replica. Read it freely; change it only through `put` and `delete`.
    public internal(set) var map = ReplicatedMap()
    public internal(set) var clock = HybridLogicalClock()

    var local: Member
    var leaving = false
    var records: [NodeID: MemberRecord] = [:]
    /// Every known member but the local node, for uniform random picks (a dictionary's order is
    /// not deterministic across runs).
    var memberIDs: [NodeID] = []
    var memberSlots: [NodeID: Int] = [:]
    /// Members counted as alive or suspect, the local node included.
    var liveCount = 1
    var probeList: [NodeID] = []
    var probeCursor = 0
    var probe: ProbeInFlight?
    var relays: [UInt32: Relay] = [:]
    var suspicions: [NodeID: Suspicion] = [:]
    /// Suspicion deadlines; an entry is stale once its suspicion ended or moved its deadline.
    var suspicionTimers = EventHeap<NodeID>()
    var awareness: Awareness
    /// Membership updates and entries wait in separate queues (see `piggyback`).
    var broadcasts = BroadcastQueue()
    var entryBroadcasts = BroadcastQueue()
    var rng: SeededRandom
    var nextSeq: UInt32 = 0
    var nextProbeAt: Duration
    var nextGossipAt: Duration
    var nextPushPullAt: Duration
    var nextMaintenanceAt: Duration
    /// Seeds of a join whose reply has not arrived yet, and when to ask them again.
    var pendingJoin: PendingJoin?
    /// Admitted nodes not known here that sent a message without introducing themselves, and when
    /// this node last asked them for their state (`askForIntroduction`).
    var introductionsAsked: [NodeID: Duration] = [:]
    let wallClockAtZero: UInt64
    let sign: Signer
    let verify: Verifier
    /// Whether an entry from elsewhere, its signature checked, may enter the replica: the owner's
    /// own rules (e.g. authors admitted to the mesh). Every entry passes by default. An entry the
    /// owner holds (`EntryVerdict.hold`) is asked about again after other entries have arrived.
    public var accept: @Sendable (Entry) -> EntryVerdict = { _ in .accept }
    /// Told of each entry, its signature checked, that gossip's own rules kept out (`EntryDrop`):
    /// for the owner's refusal counts. Nothing by default.
    public var droppedEntry: @Sendable (Entry, EntryDrop) -> Void = { _, _ in }
    /// Entries the owner held back, waiting for what they depend on.
    var held: HeldEntries
    /// Whether a node this one does not know yet may introduce itself (its own alive record in a
    /// message it sent): the owner's rules (e.g. admitted to the mesh). Every node passes by default.
    public var admitsMember: @Sendable (NodeID) -> Bool = { _ in true }
    /// Whether this node holds a live link of its own to a member (the owner's links; none by
    /// default). That is first-hand evidence the member is up, which outweighs another member's
    /// suspicion or verdict of death: such a rumour is not adopted, and the member is told of it,
    /// so that it refutes. Behind NAT, a member another cannot reach is not down.
    public var vouches: @Sendable (NodeID) -> Bool = { _ in false }
    /// Whether a message from member `from` can reach member `to` and be answered: the owner's
    /// knowledge of the network (NATs, the links members keep). `from` is this node or another
    /// member. Everyone reaches everyone by default. Behind NAT, a member is reached only over the
    /// links it holds: probes, gossip and push-pull then go to members that can carry them, and an
    /// unreachable member is probed through members that reach it (SWIM's indirect probe), at once.
    public var reaches: @Sendable (_ from: Member, _ to: Member) -> Bool = { _, _ in true }
    let logger: Logger
    /// Actions produced by the call in progress.
    var pending: [Action] = []

    /// - Parameters:
    ///   - id: the local node ID (its Ed25519 public key).
    ///   - address: how other members reach this node (opaque to gossip).
    ///   - wallClockAtZero: milliseconds since the Unix epoch at `now == .zero`.
    ///   - now: the current monotonic time.
    ///   - random: seeded generator; `SeededRandom()` in production.
    /// - Throws: `GossipError` when the address or metadata exceed the wire limits.
    public init(
        id: NodeID, address: String, metadata: [UInt8] = [], config: GossipConfig = .lan,
        wallClockAtZero: UInt64, now: Duration, random: SeededRandom,
        sign: @escaping Signer, verify: @escaping Verifier, logger: Logger = Logger(label: "warren.gossip")
    ) throws(GossipError) {
        try Self.check(address: address, metadata: metadata)
        self.id = id
        self.config = config
        self.local = Member(id: id, address: address, metadata: metadata, incarnation: 0, state: .alive)
        self.awareness = Awareness(maxMultiplier: config.lifeguard ? config.awarenessMaxMultiplier : 1)
        self.rng = random
        self.wallClockAtZero = wallClockAtZero
        self.sign = sign
        self.verify = verify
        self.held = HeldEntries(maxCount: config.maxHeldEntries, maxBytes: config.maxHeldBytes)
        var logger = logger
        logger[metadataKey: "gossip.node"] = "\(id.short)"
        self.logger = logger
        // Random phases, so that members started together do not probe and gossip in lockstep.
        nextProbeAt = now + config.probeInterval * Double.random(in: 0..<1, using: &rng)
        nextGossipAt = now + config.gossipInterval * Double.random(in: 0..<1, using: &rng)
        nextPushPullAt = now + config.pushPullInterval * Double.random(in: 0..<1, using: &rng)
        nextMaintenanceAt = now + config.maintenanceInterval
        broadcast(.alive(local))
    }

    // MARK: Driving

    /// Handles one message from member `from`. Malformed bytes are counted and dropped.
    public mutating func receive(bytes: [UInt8], from: NodeID, now: Duration) -> [Action] {
        pending = []
        alignGossipTimer(now: now)
        counters.messagesReceived += 1
        counters.bytesReceived += bytes.count
        let message: Message
        do {
            message = try MessageCodec.decodeTyped(bytes)
        } catch {
            counters.undecodable += 1
            logger.debug("dropped undecodable gossip message", metadata: ["peer.id": "\(from.short)", "error": "\(error)"])
            return []
        }
        // A stranger is heard only when it introduces itself, as memberlist takes a newcomer's own
        // alive message: that is how a joined node spreads its arrival beside its seed.
        guard from == id || records[from] != nil || (Self.introduces(message, sender: from) && admitsMember(from)) else {
            counters.droppedUnknownSender += 1
            logger.trace("dropped a message from a node not known yet", metadata: ["peer.id": "\(from.short)"])
            askForIntroduction(from, now: now)
            return takePending()
        }
        let applied = counters.entriesApplied
        handle(message, from: from, now: now)
        if counters.entriesApplied != applied, !held.isEmpty { releaseHeld(now: now) }
        return takePending()
    }

    /// Runs every timer that is due: probes, dissemination, suspicion timeouts, push-pull, cleanup.
    public mutating func tick(now: Duration) -> [Action] {
        pending = []
        advanceProbe(now: now)
        if now >= nextProbeAt { startProbe(now: now) }
        if let join = pendingJoin, now >= join.retryAt { retryJoin(now: now) }
        expireRelays(now: now)
        expireSuspicions(now: now)
        if now >= nextGossipAt {
            gossip(now: now)
            nextGossipAt += config.gossipInterval
            alignGossipTimer(now: now)
        }
        if now >= nextPushPullAt {
            nextPushPullAt = now + config.scaledPushPullInterval(members: liveCount)
            startPushPull(now: now)
        }
        if now >= nextMaintenanceAt {
            nextMaintenanceAt = now + config.maintenanceInterval
            maintain(now: now)
        }
        return takePending()
    }

    /// The earliest time at which `tick` has work to do. Call `tick` then, and ask again after
    /// every `receive` or `tick` (a received update can bring the next gossip round forward).
    public var nextDeadline: Duration {
        var t = min(nextProbeAt, nextPushPullAt, nextMaintenanceAt)
        if hasPendingBroadcasts { t = min(t, nextGossipAt) }
        if let p = probe { t = min(t, p.indirectSent ? p.endAt : p.indirectAt) }
        for r in relays.values { t = min(t, r.nackSent ? r.expiresAt : r.nackAt) }
        // May be a stale (earlier) deadline: that only wakes the node early.
        if let s = suspicionTimers.first { t = min(t, s.time) }
        if let join = pendingJoin { t = min(t, join.retryAt) }
        return t
    }

    // MARK: Membership API

    /// Contacts seed members with a full-state exchange (push-pull with the join flag), and asks
    /// again, backing off, until one of them replies (`isJoining` until then).
    public mutating func join(seeds: [(id: NodeID, address: String)], now: Duration) -> [Action] {
        pending = []
        // Seeds joined one at a time (one call each) wait together: a reply from any ends the join.
        var join = pendingJoin ?? PendingJoin(seeds: [], retryAt: now, interval: config.joinRetryInterval)
        for seed in seeds where seed.id != id && !join.seeds.contains(where: { $0.id == seed.id }) {
            join.seeds.append(PendingJoin.Seed(id: seed.id, address: seed.address))
        }
        guard !join.seeds.isEmpty else { return [] }
        join.attempts = 0
        join.interval = config.joinRetryInterval
        pendingJoin = join
        retryJoin(now: now)
        return takePending()
    }

    /// True from `join` until a seed's reply arrives or the join gives up (`joinAttempts`).
    public var isJoining: Bool { pendingJoin != nil }

    /// Adds members known from elsewhere (persisted state, an invite) as alive, without gossiping
    /// them. The simulator also uses it to start from a formed mesh.
    public mutating func bootstrap(members: [Member], now: Duration) {
        records.reserveCapacity(records.count + members.count)
        memberSlots.reserveCapacity(memberSlots.count + members.count)
        memberIDs.reserveCapacity(memberIDs.count + members.count)
        for m in members where m.id != id && records[m.id] == nil {
            insertRecord(m, now: now, joinProbePass: false)
        }
        // One reshuffle instead of one random insertion per member.
        probeList = memberIDs.filter(isProbeable)
        probeList.shuffle(using: &rng)
        probeCursor = 0
        // Stagger the first full-state exchange over the interval scaled for the mesh's size.
        nextPushPullAt = now + config.scaledPushPullInterval(members: liveCount) * Double.random(in: 0..<1, using: &rng)
    }

    /// Announces a graceful departure. Keep ticking for a few gossip intervals so it spreads.
    public mutating func leave(now: Duration) -> [Action] {
        pending = []
        alignGossipTimer(now: now)
        leaving = true
        local.state = .left
        broadcast(.dead(node: id, incarnation: local.incarnation, from: id))
        gossip(now: now)
        return takePending()
    }

    /// Changes this node's address or metadata; raises the incarnation so the change wins.
    public mutating func update(address: String? = nil, metadata: [UInt8]? = nil, now: Duration) throws(GossipError) -> [Action] {
        try Self.check(address: address ?? local.address, metadata: metadata ?? local.metadata)
        pending = []
        alignGossipTimer(now: now)
        if let address { local.address = address }
        if let metadata { local.metadata = metadata }
        local.incarnation &+= 1
        broadcast(.alive(local))
        return takePending()
    }

    /// Every known member, this node included, sorted by ID.
    public func members() -> [Member] {
        ([local] + records.values.map(\.member)).sorted { $0.id < $1.id }
    }

    /// One member as this node sees it (itself included).
    public func member(_ node: NodeID) -> Member? {
        node == id ? local : records[node]?.member
    }

    /// This node's own record (its incarnation, address, metadata).
    public var localMember: Member { local }

    /// Lifeguard's local health score: 0 is healthy, up to `awarenessMaxMultiplier - 1`.
    public var healthScore: Int { awareness.score }

    /// Who reported the suspicion of `node` that runs now, the first reporter first; empty when
    /// none runs. This node's own ID among them: one of its probes failed.
    public func suspicionReporters(of node: NodeID) -> [NodeID] {
        suspicions[node]?.reporters ?? []
    }

    /// True while updates wait to be disseminated.
    public var hasPendingBroadcasts: Bool { !broadcasts.isEmpty || !entryBroadcasts.isEmpty }

    // MARK: Internals shared by the extensions

    static func check(address: String, metadata: [UInt8]) throws(GossipError) {
        let length = address.utf8.count
        guard length <= MessageCodec.Limits.address else {
            throw .addressTooLong(address: address, length: length, limit: MessageCodec.Limits.address)
        }
        guard metadata.count <= MessageCodec.Limits.metadata else {
            throw .metadataTooLarge(length: metadata.count, limit: MessageCodec.Limits.metadata)
        }
    }

    /// While the queue is empty the gossip timer is not a deadline, so it falls behind; bring it
    /// to the next point of its cadence, so a fresh update waits for the next round as it would
    /// with a ticker that never stops.
    mutating func alignGossipTimer(now: Duration) {
        guard nextGossipAt <= now else { return }
        let behind = ((now - nextGossipAt) / config.gossipInterval).rounded(.down)
        nextGossipAt += config.gossipInterval * (Int(behind) + 1)
    }

    mutating func takePending() -> [Action] {
        defer { pending = [] }
        return pending
    }

    /// Physical time for the HLC, in milliseconds since the Unix epoch.
    func wallMillis(_ now: Duration) -> UInt64 {
        wallClockAtZero &+ UInt64(max(0, now.milliseconds))
    }

    mutating func send(_ message: Message, to node: NodeID, address: String? = nil) {
        let bytes = MessageCodec.encode(message)
        counters.messagesSent += 1
        counters.bytesSent += bytes.count
        pending.append(.send(to: node, address: address ?? records[node]?.member.address ?? "", bytes: bytes))
    }

    /// Queued updates that fit beside `prefix` in one datagram.
    mutating func piggyback(after prefix: [Update] = []) -> [Update] {
        let prefixSize = prefix.reduce(0) { $0 + MessageCodec.encodedSize(of: $1) }
        let budget = config.maxPacketBytes - MessageCodec.headerSize - prefixSize
        guard budget > 0 || prefix.isEmpty else { return prefix }
        let limit = config.retransmitLimit(members: liveCount)
        entryBroadcasts.startMessage()
        broadcasts.startMessage()
        // Entries get the first half of the room, so a storm of membership updates (a healed
        // partition) cannot starve the replicated map; each side then fills what the other left.
        var out = prefix + entryBroadcasts.take(budget: max(budget / 2, 1), limit: limit)
        var used = out.dropFirst(prefix.count).reduce(0) { $0 + MessageCodec.encodedSize(of: $1) }
        let members = broadcasts.take(budget: max(budget - used, 1), limit: limit, allowOversize: out.count == prefix.count)
        out += members
        used += members.reduce(0) { $0 + MessageCodec.encodedSize(of: $1) }
        if budget - used > 0 {
            out += entryBroadcasts.take(budget: budget - used, limit: limit, allowOversize: out.count == prefix.count)
        }
        return out
    }

    /// Queues an update for dissemination.
    mutating func broadcast(_ update: Update) {
        if case .entry = update {
            entryBroadcasts.enqueue(update)
        } else {
            broadcasts.enqueue(update)
        }
    }

    mutating func handle(_ message: Message, from: NodeID, now: Duration) {
        switch message {
        case let .ping(seq, target, updates):
            apply(updates, from: from, now: now)
            // A probe meant for another node that used to live at our address: stay silent.
            guard target == id else { return }
            send(.ack(seq: seq, updates: piggyback()), to: from)
        case let .indirectPing(seq, target, targetAddress, updates):
            apply(updates, from: from, now: now)
            relayProbe(seq: seq, target: target, targetAddress: targetAddress, requester: from, now: now)
        case let .ack(seq, updates):
            apply(updates, from: from, now: now)
            handleAck(seq: seq, from: from, now: now)
        case let .nack(seq):
            if probe?.seq == seq { probe?.nacks += 1 }
        case let .gossip(updates):
            apply(updates, from: from, now: now)
        case let .pushPull(state):
            let newcomer = state.isJoin && records[from] == nil
            merge(state, from: from, now: now)
            if !state.isReply {
                send(.pushPull(localState(isReply: true, isJoin: false)), to: from)
            }
            let joinedNow = state.isReply && pendingJoin?.seeds.contains(where: { $0.id == from }) == true
            if joinedNow { joined() }
            if newcomer { announce(from) }
            // A join is news: the seed passes the newcomer on, and the newcomer announces itself,
            // now rather than at the next gossip round.
            if newcomer || joinedNow { gossip(now: now) }
        }
    }

    mutating func apply(_ updates: [Update], from: NodeID, now: Duration) {
        var accused = false
        for update in updates {
            switch update {
            case let .alive(m): applyAlive(m, now: now)
            case let .suspect(node, incarnation, reporter):
                accused = accused || node == id
                applySuspect(node, incarnation: incarnation, from: reporter, now: now)
            case let .dead(node, incarnation, reporter):
                accused = accused || node == id
                applyDead(node, incarnation: incarnation, from: reporter, now: now)
            case let .entry(e): ingest(e, now: now, rebroadcast: true)
            }
        }
        // The sender believes a claim against us (a new one, now refuted, or one refuted before
        // that has not reached it): tell it our current incarnation directly, not only by gossip.
        if accused, !leaving, from != id {
            counters.claimsAnswered += 1
            send(.gossip(updates: [.alive(local)]), to: from)
        }
    }

    /// Periodic cleanup: collected tombstones, forgotten dead members.
    mutating func maintain(now: Duration) {
        let wall = wallMillis(now)
        let grace = UInt64(max(0, config.tombstoneGrace.milliseconds))
        if wall > grace { counters.tombstonesCollected += map.collectTombstones(olderThan: wall - grace) }
        let forgotten = memberIDs.filter { node in
            guard let r = records[node], r.member.state == .dead || r.member.state == .left else { return false }
            return now - r.stateChangedAt >= config.deadMemberRetention
        }
        for node in forgotten { removeRecord(node) }
    }
}

/// A member as this node tracks it.
struct MemberRecord: Sendable {
    var member: Member
    var stateChangedAt: Duration
}

/// Counts of what a node did and what it refused; for metrics and tests.
public struct GossipCounters: Hashable, Sendable {
    public var messagesSent = 0
    public var bytesSent = 0
    public var messagesReceived = 0
    public var bytesReceived = 0
    /// Messages that failed to decode (and were dropped).
    public var undecodable = 0
    public var entriesApplied = 0
    public var entriesStale = 0
    public var droppedBadSignature = 0
    public var droppedNonMemberAuthor = 0
    /// Messages from a node not known yet that did not introduce itself (or was not admitted).
    public var droppedUnknownSender = 0
    /// Nodes not known here that were asked for their state after such a message.
    public var introductionsAsked = 0
    public var droppedFutureDated = 0
    /// Entries the owner's `accept` refused.
    public var droppedRefused = 0
    /// Entries the owner held back until what they depend on arrives (each version once), those
    /// of them let in later, and those pushed out of the bounded set before that.
    public var entriesHeld = 0
    public var heldReleased = 0
    public var droppedHeld = 0
    /// Tombstones that arrived past the grace and became their key's floor at once.
    public var floorsLearned = 0
    public var tombstonesCollected = 0
    public var refutations = 0
    /// Messages with a claim against this node, answered to their sender with its current incarnation.
    public var claimsAnswered = 0
    public var suspicionsRaised = 0
    /// Suspicions and deaths other members spread about a member this node holds a live link to,
    /// and so did not adopt (`GossipNode.vouches`).
    public var rumoursOutweighed = 0
    public var deathsDeclared = 0
    public var probesFailed = 0
    /// Failed probes of a member this node holds a live link to, which raised no suspicion
    /// (`GossipNode.vouches`).
    public var probesOutweighedByLink = 0
    /// Failed probes of a member this node cannot reach whose helpers all stayed silent (no ack,
    /// no nack), which raised no suspicion.
    public var probesInconclusive = 0

    public init() {}
}

extension Duration {
    /// Whole milliseconds (truncated).
    var milliseconds: Int64 {
        let (s, atto) = components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}
