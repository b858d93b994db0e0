import Foundation
import Gossip
import Link
import Logging
import NIOCore
import Sodium
import Trust

/// This node's view of the mesh: the gossip state machine, driven by a clock, its UDP socket and
/// its links; its replica of the signed entries, saved to the state database as it changes.
actor MeshState: EntryReplica {
    private var gossip: GossipNode
    private var sealer: DatagramSealer
    private let origin = ContinuousClock.now
    private let store: StateStore
    private let logger: Logger
    private let transport: GossipTransport?
    private let links: MeshLinks?
    /// Messages for links, sent by `sendOverLinks` (in the mesh's service) as they come.
    private let outbox: AsyncStream<LinkMessage>
    private let outboxContinuation: AsyncStream<LinkMessage>.Continuation
    /// Link messages dropped because the outbox was full (its sender behind).
    private(set) var droppedLinkMessages = 0
    private var entryObservers: [@Sendable (Entry) async -> Void] = []
    /// The run loop's sleep and when it ends: a message or a write that brings gossip's next
    /// deadline earlier (an update to pass on at the next round) cuts it short.
    private var sleeper: Task<Void, Never>?
    private var sleepsUntil: Duration = .zero
    /// Datagrams that could not be opened (not sealed to this node, replayed, from a stranger).
    private var unopenedDatagrams = 0
    /// Datagrams dropped: unopened, or not read in time (the transport's buffer was full).
    var droppedDatagrams: Int { unopenedDatagrams + (transport?.dropped ?? 0) }
    /// Admission: who may talk to this node (see `MeshState+Admission.swift`).
    var gate: MeshGate?
    var rosterObservers: [@Sendable (_ old: MeshRoster?, _ new: MeshRoster?) async -> Void] = []
    /// The roster the roster observers last heard of (nil before the first): what a change is
    /// measured against.
    var reportedRoster: MeshRoster?
    var rotationObservers: [@Sendable () async -> Void] = []

    /// How many link messages may wait for `sendOverLinks`.
    static let bufferedLinkMessages = 256

    /// - Parameters:
    ///   - gate: admission (see `MeshState+Admission.swift`); nil in a mesh without it.
    ///   - transport: the UDP socket; nil for a replica that sends nothing (`mesh init`, tests).
    ///   - links: how gossip goes over links; nil sends everything as datagrams.
    init(
        identity: NodeIdentity, address: String, metadata: [UInt8], config: GossipConfig, store: StateStore, logger: Logger,
        gate: MeshGate? = nil, transport: GossipTransport? = nil, links: MeshLinks? = nil
    ) throws {
        let keys = identity.keyPair
        let now = Duration.zero
        gossip = try GossipNode(
            id: identity.id, address: address, metadata: metadata, config: config,
            wallClockAtZero: UInt64(Date().timeIntervalSince1970 * 1000), now: now, random: SeededRandom(),
            sign: { keys.sign($0) },
            verify: { signature, message, author in Ed25519.verify(signature: signature, message: message, publicKey: author.bytes) },
            logger: logger)
        sealer = DatagramSealer(localID: identity.id, x25519SecretKey: identity.staticKey.secretKey)
        self.store = store
        self.logger = logger
        self.transport = transport
        self.links = links
        let (outbox, outboxContinuation) = AsyncStream.makeStream(of: LinkMessage.self, bufferingPolicy: .bufferingNewest(Self.bufferedLinkMessages))
        self.outbox = outbox
        self.outboxContinuation = outboxContinuation
        if let links {
            gossip.vouches = links.has
            gossip.reaches = MeshReach(local: identity.id, networks: LinkReach.local(), hasLink: links.has).reaches
        }
        if let gate {
            self.gate = gate
            gossip.accept = { gate.accept($0) }
            gossip.admitsMember = { gate.isMember($0) }
            gossip.droppedEntry = { gate.dropped($0, $1) }
        }
    }

    var id: NodeID { gossip.id }

    private var now: Duration { ContinuousClock.now - origin }
    private var nowMilliseconds: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: Wiring

    /// Puts admission in force through `gate` on a replica made without one (call before
    /// `restore`; see `MeshState+Admission.swift`).
    func enforce(_ gate: MeshGate) {
        self.gate = gate
        gossip.accept = { gate.accept($0) }
        gossip.admitsMember = { gate.isMember($0) }
        gossip.droppedEntry = { gate.dropped($0, $1) }
    }

    /// `observer` hears of every entry that changes (the new version; a tombstone for a delete).
    func observeEntries(_ observer: @escaping @Sendable (Entry) async -> Void) {
        entryObservers.append(observer)
    }

    /// Loads the entries and members saved by an earlier run.
    func restore() async throws {
        let records = try await store.allEntries()
        var entries = records.compactMap(Self.entry(from:))
        if let gate {
            // The writer rules hold for what this node kept too: the database may have been
            // edited, and a rule added since an entry was let in.
            gate.update(from: entries.compactMap { e in
                guard MeshGate.trackedKinds.contains(e.kind), let value = e.value else { return nil }
                return EntrySnapshot(kind: e.kind, key: e.key, value: value, author: e.author)
            })
            entries = entries.filter { gate.admitsRestored($0) }
        }
        await perform(gossip.restore(entries, now: now))
        await refreshGate()
        if let data = try await store.setting("members"), let saved = try? JSONDecoder().decode([SavedMember].self, from: data) {
            let members = saved.compactMap { s in NodeID(s.id).map { Member(id: $0, address: s.address, metadata: s.metadata) } }
            gossip.bootstrap(members: members, now: now)
        }
        // Observers learn the restored state as if it had just arrived.
        for entry in gossip.map.allEntries {
            for observer in entryObservers { await observer(entry) }
        }
    }

    // MARK: Driving

    /// Ticks the state machine at its deadlines until cancelled.
    func run() async {
        while !Task.isCancelled {
            await perform(gossip.tick(now: now))
            let wait = min(max(gossip.nextDeadline - now, .milliseconds(5)), .milliseconds(250))
            sleepsUntil = now + wait
            let sleeper = Task { _ = try? await Task.sleep(for: wait) }
            self.sleeper = sleeper
            await withTaskCancellationHandler { await sleeper.value } onCancel: { sleeper.cancel() }
            self.sleeper = nil
        }
    }

    /// Reads the transport's datagrams until it closes or the task is cancelled.
    nonisolated func receiveDatagrams() async {
        guard let transport else { return }
        for await datagram in transport.datagrams {
            await receive(datagram: datagram)
        }
    }

    /// Sends the messages gossip routes over links until the task is cancelled, each in a child
    /// task: a link being dialled must not hold up the others.
    nonisolated func sendOverLinks() async {
        guard let links else { return }
        await withDiscardingTaskGroup { group in
            for await message in outbox {
                group.addTask { await links.send(message.peer, message.address, message.linksOnly, message.bytes) }
            }
        }
    }

    /// A datagram from the UDP socket.
    func receive(datagram: [UInt8]) async {
        let opened: (sender: NodeID, payload: [UInt8])
        do {
            // A sender gossip does not know yet gets through to gossip only if admitted; gossip then
            // hears it only if it introduces itself (`GossipNode.admitsMember`).
            opened = try sealer.open(datagram, nowMilliseconds: nowMilliseconds, isMember: { gate?.isMember($0) ?? true })
        } catch {
            unopenedDatagrams += 1
            logger.debug("dropped gossip datagram", metadata: ["reason": "\(error)"])
            return
        }
        await perform(gossip.receive(bytes: opened.payload, from: opened.sender, now: now))
    }

    /// A message that came over a link: the link's handshake authenticated `peer`.
    func receive(message: [UInt8], from peer: NodeID) async {
        await perform(gossip.receive(bytes: message, from: peer, now: now))
    }

    /// Joins through `seed`, whose ID a link proved.
    func join(seed: NodeID, address: String) async {
        await perform(gossip.join(seeds: [(seed, address)], now: now))
    }

    /// Tells the mesh this node leaves, and returns once the departure is sent (written to the
    /// socket, or answered over a link): the members it reached pass it on.
    func leave() async {
        var sent: [EventLoopFuture<Void>]? = []
        var overLinks: [LinkMessage]? = []
        await perform(gossip.leave(now: now), sent: &sent, overLinks: &overLinks)
        for future in sent ?? [] { try? await future.get() }
        if let links {
            await withDiscardingTaskGroup { group in
                for m in overLinks ?? [] { group.addTask { await links.send(m.peer, m.address, m.linksOnly, m.bytes) } }
            }
        }
    }

    private func perform(_ actions: [GossipNode.Action]) async {
        var sent: [EventLoopFuture<Void>]? = nil
        var overLinks: [LinkMessage]? = nil
        await perform(actions, sent: &sent, overLinks: &overLinks)
    }

    /// With `sent` and `overLinks`, the caller awaits the sends; without, datagrams go out as
    /// written and link messages through the outbox.
    private func perform(_ actions: [GossipNode.Action], sent: inout [EventLoopFuture<Void>]?, overLinks: inout [LinkMessage]?) async {
        var admissionChanged = false, mayRekey = false
        for action in actions {
            switch action {
            case .send(let to, let address, let bytes):
                if goesOverLink(bytes, to: to) {
                    guard links != nil else { continue }
                    let linksOnly = gossip.member(to).map { MemberTraits(metadata: $0.metadata).linksOnly } ?? false
                    let message = LinkMessage(peer: to, address: address, linksOnly: linksOnly, bytes: bytes)
                    if overLinks != nil {
                        overLinks?.append(message)
                    } else if case .dropped = outboxContinuation.yield(message) {
                        droppedLinkMessages += 1
                    }
                } else if let transport, let sealed = try? sealer.seal(bytes, to: to, nowMilliseconds: nowMilliseconds) {
                    let future = transport.send(sealed, to: address)
                    sent?.append(future)
                }
            case .memberChanged(let member):
                var metadata: Logger.Metadata = ["peer.id": "\(member.id.short)", "peer.state": "\(member.state)"]
                if member.state == .suspect {
                    // Whose probe failed (this node's own ID: its own), and this node's own health:
                    // what a flap in the lab is explained by.
                    metadata["suspicion.reporters"] = "\(gossip.suspicionReporters(of: member.id).map(\.short))"
                    metadata["gossip.health"] = "\(gossip.healthScore)"
                    metadata["gossip.probes_failed"] = "\(gossip.counters.probesFailed)"
                    metadata["gossip.probes_inconclusive"] = "\(gossip.counters.probesInconclusive)"
                }
                logger.debug("member changed", metadata: metadata)
                if member.state == .dead || member.state == .left {
                    sealer.forget(member.id)
                    mayRekey = true  // it may have been the member to settle a contested rotation
                }
                await saveMembers()
            case .entryChanged(let change):
                admissionChanged = admissionChanged || MeshGate.trackedKinds.contains(change.current.kind)
                mayRekey = mayRekey || MeshState.isRotation(change.current)
                await save(change.current)
                for observer in entryObservers { await observer(change.current) }
            }
        }
        if admissionChanged || (gate?.isProvisional ?? false) { await refreshGate() }
        // After every change of this batch is saved: an observer that writes (a new rotation)
        // must not be overtaken in the database by an older entry of the same batch.
        if mayRekey { for observer in rotationObservers { await observer() } }
        if let sleeper, gossip.nextDeadline < sleepsUntil { sleeper.cancel() }
    }

    /// Push-pull (full state) and anything over a datagram's size go over a link; so does all
    /// gossip between a node behind NAT and the members it holds links to (DESIGN.md, Gossip), as
    /// datagrams from outside would not reach it.
    private func goesOverLink(_ bytes: [UInt8], to peer: NodeID) -> Bool {
        if gossip.needsStream(bytes) { return true }
        let behindNAT = MemberTraits(metadata: gossip.localMember.metadata).linksOnly
            || gossip.member(peer).map { MemberTraits(metadata: $0.metadata).linksOnly } == true
        return behindNAT && (links?.has(peer) ?? false)
    }

    // MARK: Entries

    func put(kind: EntryKind, key: String, value: [UInt8]) async throws {
        await perform(try gossip.put(kind: kind, key: key, value: value, now: now))
    }

    func delete(kind: EntryKind, key: String) async throws {
        guard gossip.get(kind: kind, key: key) != nil else { return }
        await perform(try gossip.delete(kind: kind, key: key, now: now))
    }

    func entries(kind: EntryKind) -> [Entry] {
        gossip.entries(kind: kind)
    }

    var counters: GossipCounters { gossip.counters }

    func members() -> [Member] {
        gossip.members()
    }

    func member(_ id: NodeID) -> Member? {
        gossip.member(id)
    }

    // EntryReplica

    func snapshots(kinds: Set<EntryKind>) async -> [EntrySnapshot] {
        kinds.flatMap { kind in
            gossip.entries(kind: kind).compactMap { e in
                e.value.map { EntrySnapshot(kind: kind, key: e.key, value: $0, author: e.author) }
            }
        }
    }

    func apply(_ intents: [EntryIntent]) async throws {
        for intent in intents {
            if let value = intent.value {
                try await put(kind: intent.kind, key: intent.key, value: value)
            } else {
                try await delete(kind: intent.kind, key: intent.key)
            }
        }
    }

    func roster() async -> MeshRoster? {
        gate?.roster
    }

    // MARK: Saving

    private struct SavedMember: Codable {
        var id: String
        var address: String
        var metadata: [UInt8]
    }

    private func saveMembers() async {
        let saved = gossip.members().filter { $0.id != gossip.id && ($0.state == .alive || $0.state == .suspect) }
            .map { SavedMember(id: $0.id.description, address: $0.address, metadata: $0.metadata) }
        try? await store.setSetting("members", to: try? JSONEncoder().encode(saved))
    }

    private func save(_ entry: Entry) async {
        do {
            try await store.upsertEntry(Self.record(from: entry))
        } catch {
            logger.error("could not save a replicated entry", metadata: ["entry.key": "\(entry.key)", "error": "\(error)"])
        }
    }

    /// HLC packed as wall milliseconds << 16 | logical (capped): ample for ordering on restore.
    static func record(from e: Entry) -> ReplicatedEntryRecord {
        ReplicatedEntryRecord(
            kind: Int(e.kind.rawValue), key: e.key, value: Data(e.value ?? []),
            hlc: e.timestamp.wallMillis << 16 | UInt64(min(e.timestamp.logical, 0xffff)),
            author: Data(e.author.bytes), signature: Data(e.signature), deleted: e.isTombstone)
    }

    static func entry(from r: ReplicatedEntryRecord) -> Entry? {
        guard let author = NodeID(bytes: Array(r.author)), (0...255).contains(r.kind) else { return nil }
        return Entry(
            kind: EntryKind(rawValue: UInt8(r.kind)), key: r.key, value: r.deleted ? nil : Array(r.value),
            timestamp: HLCTimestamp(wallMillis: r.hlc >> 16, logical: UInt32(r.hlc & 0xffff)),
            author: author, signature: Array(r.signature))
    }
}

/// How gossip reaches members over links.
struct MeshLinks: Sendable {
    /// Whether a link to the member is up (in either direction).
    var has: @Sendable (NodeID) -> Bool
    /// Sends one gossip message over a link to the member at `address` (`linksOnly`: it is behind
    /// NAT); returns when answered or failed.
    var send: @Sendable (_ peer: NodeID, _ address: String, _ linksOnly: Bool, _ bytes: [UInt8]) async -> Void
}

/// A gossip message on its way over a link.
struct LinkMessage: Sendable {
    var peer: NodeID
    var address: String
    var linksOnly: Bool
    var bytes: [UInt8]
}
