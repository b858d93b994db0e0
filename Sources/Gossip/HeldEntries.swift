/// The owner's answer about an entry from elsewhere whose signature checked (`GossipNode.accept`).
public enum EntryVerdict: Hashable, Sendable {
    /// Merge it.
    case accept
    /// Drop it for good.
    case refuse
    /// Not yet: it depends on something that has not arrived (its author's admission, say).
    /// The node keeps it aside in `HeldEntries` and asks again once other entries have arrived.
    case hold
}

/// Entries the owner held back (`EntryVerdict.hold`), oldest first, bounded in count and bytes.
///
/// Without them an entry that arrives before what it depends on is lost until the next push-pull
/// sends it again; with them the mesh converges at gossip speed. An entry that never becomes
/// acceptable (a forgery) only ever waits here, never in the replica, until newer ones push it out.
struct HeldEntries: Sendable {
    private(set) var entries: [Entry] = []
    private(set) var bytes = 0
    let maxCount: Int
    let maxBytes: Int

    init(maxCount: Int, maxBytes: Int) {
        self.maxCount = max(0, maxCount)
        self.maxBytes = max(0, maxBytes)
    }

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// Holds `entry` in place of any older version under its key; returns whether it was not held
    /// already, and how many entries were dropped to stay within bounds (the oldest first; `entry`
    /// itself if it alone is too large).
    mutating func hold(_ entry: Entry) -> (added: Bool, dropped: Int) {
        if let i = entries.firstIndex(where: { $0.entryKey == entry.entryKey }) {
            guard entry.supersedes(entries[i]) else { return (false, 0) }
            bytes -= Self.size(entries.remove(at: i))
        }
        entries.append(entry)
        bytes += Self.size(entry)
        var dropped = 0
        while !entries.isEmpty, entries.count > maxCount || bytes > maxBytes {
            bytes -= Self.size(entries.removeFirst())
            dropped += 1
        }
        return (true, dropped)
    }

    /// Empties the set and returns what it held, oldest first.
    mutating func takeAll() -> [Entry] {
        defer { entries = []; bytes = 0 }
        return entries
    }

    /// What an entry costs to hold: its key, value and signature, and a fixed overhead.
    static func size(_ entry: Entry) -> Int {
        entry.key.utf8.count + (entry.value?.count ?? 0) + entry.signature.count + 64
    }
}

/// Why gossip kept an entry out on its own rules, before the owner's `accept` (`GossipNode.droppedEntry`).
public enum EntryDrop: String, Hashable, Sendable {
    /// Older than the version of its key the replica holds: a late copy, or a replay.
    case superseded
    /// Dated further ahead of this node's clock than `GossipConfig.maxClockSkew`.
    case futureDated
    /// By a node that is not (or no longer) a member of the gossip group.
    case unknownAuthor
    /// No newer than a delete whose tombstone this node has since collected (after
    /// `GossipConfig.tombstoneGrace`): a replay of the deleted entry, or a copy kept by a node
    /// away for longer than the grace.
    case deletedBefore
}
