/// What an entry of the replicated map describes: a number the layer above defines and names
/// (the mesh's kinds are in Trust). Gossip orders, signs and relays kinds without knowing them,
/// so a kind from a newer node is carried unchanged. The number is on the wire and in signatures.
public struct EntryKind: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static func < (lhs: EntryKind, rhs: EntryKind) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "kind\(rawValue)" }
}

/// The address of an entry in the replicated map.
public struct EntryKey: Hashable, Comparable, Sendable {
    public var kind: EntryKind
    public var key: String

    public init(kind: EntryKind, key: String) {
        self.kind = kind
        self.key = key
    }

    public static func < (lhs: EntryKey, rhs: EntryKey) -> Bool {
        (lhs.kind, lhs.key) < (rhs.kind, rhs.key)
    }
}

/// One signed item of replicated state. `value == nil` is a tombstone (a delete).
///
/// The author signs `signedBytes` (everything but the signature) with its Ed25519 key; because a
/// `NodeID` is the public key, any replica can check the signature from the entry alone.
public struct Entry: Hashable, Sendable {
    public var kind: EntryKind
    public var key: String
    public var value: [UInt8]?
    public var timestamp: HLCTimestamp
    public var author: NodeID
    public var signature: [UInt8]

    public init(kind: EntryKind, key: String, value: [UInt8]?, timestamp: HLCTimestamp, author: NodeID, signature: [UInt8]) {
        self.kind = kind
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.author = author
        self.signature = signature
    }

    public var entryKey: EntryKey { EntryKey(kind: kind, key: key) }
    public var isTombstone: Bool { value == nil }

    /// Domain separation, so an entry signature can never be replayed as another kind of message.
    static let signingContext = Array("warren.gossip.entry.v1\0".utf8)

    /// The canonical bytes the author signs.
    public var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.raw(Entry.signingContext)
        w.u8(kind.rawValue)
        w.string16(key)
        w.u8(value == nil ? 1 : 0)
        w.bytes32(value ?? [])
        w.u64(timestamp.wallMillis)
        w.u32(timestamp.logical)
        w.raw(author.bytes)
        return w.bytes
    }

    /// Last-writer-wins order: by HLC timestamp, then author. Signatures break the tie that only a
    /// misbehaving author can create (two different writes at one timestamp), so every replica still
    /// picks the same winner.
    public func supersedes(_ other: Entry) -> Bool {
        if timestamp != other.timestamp { return timestamp > other.timestamp }
        if author != other.author { return author > other.author }
        return other.signature.lexicographicallyPrecedes(signature)
    }
}

/// Reported to subscribers whenever an entry of the local replica changes.
public struct EntryChange: Hashable, Sendable {
    /// The entry it replaced (live or tombstone), if any.
    public var previous: Entry?
    /// The entry now held; a tombstone when the key was deleted.
    public var current: Entry
    /// True when the change was written by this node.
    public var isLocal: Bool
}
