import Logging

/// Errors from the local write API.
public enum GossipError: Error, Hashable, Sendable, CustomStringConvertible {
    case keyTooLong(key: String, length: Int, limit: Int)
    case valueTooLarge(key: String, length: Int, limit: Int)
    case signatureTooLong(length: Int, limit: Int)
    case addressTooLong(address: String, length: Int, limit: Int)
    case metadataTooLarge(length: Int, limit: Int)

    public var description: String {
        switch self {
        case let .keyTooLong(key, length, limit):
            "entry key \"\(key.prefix(40))…\" is \(length) bytes; keys are limited to \(limit) bytes"
        case let .valueTooLarge(key, length, limit):
            "value for \"\(key)\" is \(length) bytes; values are limited to \(limit) bytes, store a reference instead"
        case let .signatureTooLong(length, limit):
            "the signer returned \(length) bytes; signatures are limited to \(limit) (Ed25519 gives 64)"
        case let .addressTooLong(address, length, limit):
            "member address \"\(address.prefix(40))…\" is \(length) bytes; addresses are limited to \(limit)"
        case let .metadataTooLarge(length, limit):
            "member metadata is \(length) bytes; it is limited to \(limit), gossip a reference instead"
        }
    }
}

/// The replicated map: local writes, and the checks on entries from elsewhere.
extension GossipNode {
    /// Writes a value, signed by this node, and queues it for dissemination.
    public mutating func put(kind: EntryKind, key: String, value: [UInt8], now: Duration) throws(GossipError) -> [Action] {
        guard value.count <= MessageCodec.Limits.value else {
            throw .valueTooLarge(key: key, length: value.count, limit: MessageCodec.Limits.value)
        }
        return try write(kind: kind, key: key, value: value, now: now)
    }

    /// Deletes a key by writing a tombstone (collected after `tombstoneGrace`).
    public mutating func delete(kind: EntryKind, key: String, now: Duration) throws(GossipError) -> [Action] {
        try write(kind: kind, key: key, value: nil, now: now)
    }

    /// The live entry at a key.
    public func get(kind: EntryKind, key: String) -> Entry? { map.get(kind: kind, key: key) }

    /// The live entries of one kind, sorted by key.
    public func entries(kind: EntryKind) -> [Entry] { map.entries(kind: kind) }

    /// Entries this node kept from an earlier run (its database): each signature is checked again,
    /// and they are merged without being gossiped (push-pull spreads whatever others lack). Their
    /// authors need not be known members yet: they were members when the entries were accepted.
    public mutating func restore(_ entries: [Entry], now: Duration) -> [Action] {
        pending = []
        let wall = wallMillis(now)
        for entry in entries where verify(entry.signature, entry.signedBytes, entry.author) {
            if case .applied = map.merge(entry) {
                clock.observe(entry.timestamp, physicalMillis: wall)
            }
        }
        return takePending()
    }

    /// Summary of the local replica, to compare replicas.
    public var digest: MapDigest { map.digest }

    private mutating func write(kind: EntryKind, key: String, value: [UInt8]?, now: Duration) throws(GossipError) -> [Action] {
        let keyLength = key.utf8.count
        guard keyLength <= MessageCodec.Limits.key else {
            throw .keyTooLong(key: key, length: keyLength, limit: MessageCodec.Limits.key)
        }
        pending = []
        alignGossipTimer(now: now)
        var entry = Entry(
            kind: kind, key: key, value: value, timestamp: clock.tick(physicalMillis: wallMillis(now)),
            author: id, signature: []
        )
        entry.signature = sign(entry.signedBytes)
        guard entry.signature.count <= MessageCodec.Limits.signature else {
            throw .signatureTooLong(length: entry.signature.count, limit: MessageCodec.Limits.signature)
        }
        if case let .applied(previous) = map.merge(entry) {
            counters.entriesApplied += 1
            pending.append(.entryChanged(EntryChange(previous: previous, current: entry, isLocal: true)))
            broadcast(.entry(entry))
            if !held.isEmpty { releaseHeld(now: now) }
        }
        return takePending()
    }

    /// Checks and merges an entry from another node. Entries by non-members, dated too far ahead,
    /// or with a bad signature are dropped and counted; they never enter the replica. One the
    /// owner holds back waits in `held` (see `releaseHeld`).
    mutating func ingest(_ entry: Entry, now: Duration, rebroadcast: Bool) {
        guard map.wouldAccept(entry) else {
            counters.entriesStale += 1
            // Another copy of the entry held is gossip's redundancy; an older version of its key
            // is a late copy, or a replay of what was superseded: the owner hears of the latter
            // (signed by its author, so that the author is the one named). Under a collected
            // tombstone, a put is a replay of what was deleted (an old tombstone is harmless).
            if let current = map.entry(at: entry.entryKey) {
                if current.signature != entry.signature, verify(entry.signature, entry.signedBytes, entry.author) {
                    droppedEntry(entry, .superseded)
                }
            } else if !entry.isTombstone, verify(entry.signature, entry.signedBytes, entry.author) {
                droppedEntry(entry, .deletedBefore)
            }
            return
        }
        guard entry.author == id || records[entry.author] != nil else {
            counters.droppedNonMemberAuthor += 1
            if verify(entry.signature, entry.signedBytes, entry.author) { droppedEntry(entry, .unknownAuthor) }
            return
        }
        let wall = wallMillis(now)
        let skew = UInt64(max(0, config.maxClockSkew.milliseconds))
        guard entry.timestamp.wallMillis <= wall &+ skew else {
            // Dated further ahead than clocks may drift apart. Were it let in, it would win every
            // later write at its key until the wall clock caught up, and drag this clock ahead.
            counters.droppedFutureDated += 1
            logger.debug("dropped future-dated entry", metadata: ["entry.key": "\(entry.key)", "peer.id": "\(entry.author.short)"])
            if verify(entry.signature, entry.signedBytes, entry.author) { droppedEntry(entry, .futureDated) }
            return
        }
        guard verify(entry.signature, entry.signedBytes, entry.author) else {
            counters.droppedBadSignature += 1
            logger.debug("dropped entry with a bad signature", metadata: ["entry.key": "\(entry.key)", "peer.id": "\(entry.author.short)"])
            return
        }
        switch accept(entry) {
        case .accept:
            apply(entry, wall: wall, rebroadcast: rebroadcast)
        case .refuse:
            refused(entry)
        case .hold:
            let (added, dropped) = held.hold(entry)
            if added { counters.entriesHeld += 1 }
            counters.droppedHeld += dropped
            logger.trace("held back an entry until what it depends on arrives", metadata: ["entry.key": "\(entry.key)", "peer.id": "\(entry.author.short)"])
        }
    }

    /// Asks the owner again about the entries it held back, once others have arrived: pass after
    /// pass while one gets in, as an entry let in (an admission) can be what another waits for.
    mutating func releaseHeld(now: Duration) {
        let wall = wallMillis(now)
        var progress = true
        while progress, !held.isEmpty {
            progress = false
            for entry in held.takeAll() {
                guard map.wouldAccept(entry) else {
                    counters.entriesStale += 1
                    continue
                }
                switch accept(entry) {
                case .accept:
                    counters.heldReleased += 1
                    progress = apply(entry, wall: wall, rebroadcast: true) || progress
                case .refuse:
                    refused(entry)
                case .hold:
                    counters.droppedHeld += held.hold(entry).dropped
                }
            }
        }
    }

    /// Entries this node holds back (`EntryVerdict.hold`) until what they depend on arrives.
    public var heldEntries: [Entry] { held.entries }

    /// Merges an entry from elsewhere that passed every check; true when it changed the replica.
    @discardableResult
    private mutating func apply(_ entry: Entry, wall: UInt64, rebroadcast: Bool) -> Bool {
        guard case let .applied(previous) = map.merge(entry) else { return false }
        clock.observe(entry.timestamp, physicalMillis: wall)
        counters.entriesApplied += 1
        // A tombstone already past the grace (a floor from another node's push-pull, or a delete
        // this node missed while away) is this key's floor at once. Passed on like any change:
        // the nodes that hold it take it as stale, the others learn the floor sooner.
        let grace = UInt64(max(0, config.tombstoneGrace.milliseconds))
        if entry.isTombstone, entry.timestamp.wallMillis &+ grace < wall {
            map.collect(at: entry.entryKey)
            counters.floorsLearned += 1
        }
        pending.append(.entryChanged(EntryChange(previous: previous, current: entry, isLocal: false)))
        if rebroadcast { broadcast(.entry(entry)) }
        return true
    }

    private mutating func refused(_ entry: Entry) {
        counters.droppedRefused += 1
        logger.debug("dropped an entry its owner refused", metadata: ["entry.key": "\(entry.key)", "peer.id": "\(entry.author.short)"])
    }
}
