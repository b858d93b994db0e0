/// Updates waiting to be piggybacked or gossiped (memberlist's `TransmitLimitedQueue`): the least
/// transmitted go first, each is sent at most `limit` times, and a newer update about the same
/// member or the same entry replaces the older one.
struct BroadcastQueue: Sendable {
    enum Key: Hashable, Sendable {
        case member(NodeID)
        case entry(EntryKey)
    }

    private struct Item: Sendable {
        var update: Update
        var size: Int
        var transmits: Int
        var order: UInt64
    }

    private var items: [Key: Item] = [:]
    private var counter: UInt64 = 0

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }

    mutating func enqueue(_ update: Update) {
        let key: Key
        switch update {
        case let .alive(m): key = .member(m.id)
        case let .suspect(node, _, _), let .dead(node, _, _): key = .member(node)
        case let .entry(e): key = .entry(e.entryKey)
        }
        counter += 1
        items[key] = Item(update: update, size: MessageCodec.encodedSize(of: update), transmits: 0, order: counter)
    }

    /// Takes updates that fit in `budget` bytes (always at least one if any are queued), counting
    /// one transmission for each; updates sent `limit` times leave the queue.
    mutating func take(budget: Int, limit: Int) -> [Update] {
        guard !items.isEmpty else { return [] }
        // Fewest transmissions first, then newest first; `order` makes it deterministic.
        let ordered = items.sorted { a, b in
            a.value.transmits != b.value.transmits ? a.value.transmits < b.value.transmits : a.value.order > b.value.order
        }
        var out: [Update] = []
        var used = 0
        for (key, item) in ordered {
            if !out.isEmpty, used + item.size > budget { continue }
            out.append(item.update)
            used += item.size
            if item.transmits + 1 >= limit {
                items.removeValue(forKey: key)
            } else {
                items[key]?.transmits += 1
            }
            if used >= budget { break }
        }
        return out
    }
}
