/// The replicated map: last-writer-wins by `(HLC, author)` over signed entries, with tombstones.
///
/// This type only merges; checking signatures, authors and clock skew is the node's job
/// (`GossipNode`), which knows the membership and the clock.
public struct ReplicatedMap: Sendable {
    private var storage: [EntryKey: Entry] = [:]
    /// The tombstones collected, by key: out of the digest and of what is reported as live, kept
    /// so that an entry no newer than a delete cannot come back once the delete's tombstone is
    /// gone (a replay of the deleted entry, or a copy kept by a node away for longer than the
    /// grace). Push-pull carries them (`floorEntries`), so a node that never held the tombstone
    /// (one that joined after the collection, or whose database was moved away) gets the floor
    /// too. A later write at the key replaces its floor.
    private var floors: [EntryKey: Entry] = [:]

    public init() {}

    /// Outcome of `merge(_:)`.
    public enum MergeOutcome: Equatable, Sendable {
        /// The entry won and is now stored; `previous` is what it replaced.
        case applied(previous: Entry?)
        /// The replica already held this entry or a newer one.
        case stale
    }

    /// The live entry at a key; nil when absent or deleted.
    public func get(kind: EntryKind, key: String) -> Entry? {
        guard let e = storage[EntryKey(kind: kind, key: key)], !e.isTombstone else { return nil }
        return e
    }

    /// The stored entry at a key, tombstones included.
    public func entry(at key: EntryKey) -> Entry? { storage[key] }

    /// The collected tombstone at a key with no stored entry: what an entry there must supersede.
    public func floor(at key: EntryKey) -> Entry? { floors[key] }

    /// The live entries of one kind, sorted by key.
    public func entries(kind: EntryKind) -> [Entry] {
        storage.values.filter { $0.kind == kind && !$0.isTombstone }.sorted { $0.key < $1.key }
    }

    /// Every stored entry, tombstones included, sorted by (kind, key).
    public var allEntries: [Entry] { storage.values.sorted { $0.entryKey < $1.entryKey } }

    /// The collected tombstones, sorted by (kind, key): push-pull sends them after `allEntries`.
    public var floorEntries: [Entry] { floors.values.sorted { $0.entryKey < $1.entryKey } }

    /// Stored entries, tombstones included.
    public var count: Int { storage.count }

    /// Applies last-writer-wins.
    public mutating func merge(_ entry: Entry) -> MergeOutcome {
        let key = entry.entryKey
        guard wouldAccept(entry) else { return .stale }
        floors.removeValue(forKey: key)
        let previous = storage.updateValue(entry, forKey: key)
        return .applied(previous: previous)
    }

    /// True when `entry` would win against what is stored, or against the tombstone collected at
    /// its key (cheap; no signature check).
    public func wouldAccept(_ entry: Entry) -> Bool {
        guard let current = storage[entry.entryKey] ?? floors[entry.entryKey] else { return true }
        return entry.supersedes(current)
    }

    /// Makes the tombstone stored at `key` its floor at once: one that arrives already past the
    /// grace, which a collection would move there at its next pass anyway.
    public mutating func collect(at key: EntryKey) {
        guard let tombstone = storage[key], tombstone.isTombstone else { return }
        storage.removeValue(forKey: key)
        floors[key] = tombstone
    }

    /// Removes tombstones whose timestamp is older than `wallMillis`, keeping each as the floor of
    /// its key; returns how many.
    @discardableResult
    public mutating func collectTombstones(olderThan wallMillis: UInt64) -> Int {
        let old = storage.filter { $0.value.isTombstone && $0.value.timestamp.wallMillis < wallMillis }
        for (key, tombstone) in old {
            storage.removeValue(forKey: key)
            floors[key] = tombstone
        }
        return old.count
    }

    /// An order-independent summary of the whole replica (tombstones included): two replicas with
    /// equal digests hold the same entries, barring a 128-bit hash collision.
    public var digest: MapDigest {
        var d = MapDigest(count: storage.count, sum: 0, xor: 0)
        for entry in storage.values {
            var w = ByteWriter()
            w.raw(entry.signedBytes)
            w.raw(entry.signature)
            let h = FNV1a.hash(w.bytes)
            d.sum &+= h
            d.xor ^= FNV1a.mix(h)
        }
        return d
    }
}

/// See `ReplicatedMap.digest`.
public struct MapDigest: Hashable, Sendable, CustomStringConvertible {
    public var count: Int
    public var sum: UInt64
    public var xor: UInt64

    public var description: String {
        "\(count):" + String(sum, radix: 16) + ":" + String(xor, radix: 16)
    }
}

/// 64-bit FNV-1a: a fast non-cryptographic hash for digests and the simulator's fake signatures.
enum FNV1a {
    static func hash(_ bytes: [UInt8], seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
        var h = seed
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }

    /// A finaliser (SplitMix64's), so sum and xor of the digest see independent bits.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
