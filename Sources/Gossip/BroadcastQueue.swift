/// Updates waiting to be piggybacked or gossiped (memberlist's `TransmitLimitedQueue`): the least
/// transmitted go first (newest first among equals), each is sent at most `limit` times, and a
/// newer update about the same member or the same entry replaces the older one.
///
/// Items sit in buckets by transmit count, so taking a message's worth costs about what it takes,
/// not a sort of the whole queue (which can hold hundreds of suspicions during a partition).
struct BroadcastQueue: Sendable {
    enum Key: Hashable, Sendable {
        case member(NodeID)
        case entry(EntryKey)
    }

    private struct Item: Sendable {
        var key: Key
        var update: Update
        var size: Int
        var transmits: Int
        var order: UInt64
        /// The message that last took it; one message never carries an update twice.
        var message: UInt64 = 0
    }

    /// A bucket slot; stale when its item was replaced (the slot's `order` differs) or removed.
    private struct Ref: Sendable {
        var slot: Int
        var order: UInt64
    }

    /// Items live in slots, so checking a ref costs an array read, not a hash lookup.
    private var slots: [Item?] = []
    private var freeSlots: [Int] = []
    private var slotOfKey: [Key: Int] = [:]
    /// `buckets[t]`: refs to items sent `t` times, oldest first.
    private var buckets: [[Ref]] = []
    private var refCount = 0
    private var counter: UInt64 = 0
    private var message: UInt64 = 1

    /// Starts a new outgoing message: `take` calls until the next `startMessage` skip updates
    /// already taken for this one.
    mutating func startMessage() { message &+= 1 }

    var isEmpty: Bool { slotOfKey.isEmpty }
    var count: Int { slotOfKey.count }

    mutating func enqueue(_ update: Update) {
        let key: Key
        switch update {
        case let .alive(m): key = .member(m.id)
        case let .suspect(node, _, _), let .dead(node, _, _): key = .member(node)
        case let .entry(e): key = .entry(e.entryKey)
        }
        counter += 1
        let item = Item(key: key, update: update, size: MessageCodec.encodedSize(of: update), transmits: 0, order: counter)
        let slot: Int
        if let existing = slotOfKey[key] {
            slot = existing
            slots[slot] = item
        } else if let free = freeSlots.popLast() {
            slot = free
            slots[slot] = item
            slotOfKey[key] = slot
        } else {
            slot = slots.count
            slots.append(item)
            slotOfKey[key] = slot
        }
        append(Ref(slot: slot, order: counter), to: 0)
        if refCount > 4 * slotOfKey.count + 64 { compact() }
    }

    private func isLive(_ ref: Ref) -> Bool { slots[ref.slot]?.order == ref.order }

    /// Takes updates that fit in `budget` bytes, counting one transmission for each; updates sent
    /// `limit` times leave the queue. With `allowOversize`, the first update is taken even if it
    /// alone exceeds the budget (so a large entry still travels, alone).
    mutating func take(budget: Int, limit: Int, allowOversize: Bool = true) -> [Update] {
        guard !slotOfKey.isEmpty else { return [] }
        var out: [Update] = []
        var used = 0
        var promoted: [(Ref, Int)] = []
        var skipped = 0
        scan: for t in buckets.indices {
            var i = buckets[t].count - 1
            while i >= 0 {
                let ref = buckets[t][i]
                guard let item = slots[ref.slot], item.order == ref.order else {
                    buckets[t].remove(at: i)
                    refCount -= 1
                    i -= 1
                    continue
                }
                if item.message == message {
                    i -= 1
                    continue
                }
                if used + item.size > budget, !(out.isEmpty && allowOversize) {
                    skipped += 1
                    if skipped > 16 { break scan }
                    i -= 1
                    continue
                }
                out.append(item.update)
                used += item.size
                buckets[t].remove(at: i)
                refCount -= 1
                if item.transmits + 1 >= limit {
                    slots[ref.slot] = nil
                    freeSlots.append(ref.slot)
                    slotOfKey.removeValue(forKey: item.key)
                } else {
                    slots[ref.slot]?.transmits += 1
                    slots[ref.slot]?.message = message
                    promoted.append((ref, t + 1))
                }
                // Nothing smaller than a suspicion (73 bytes) would fit any more.
                if budget - used < 73 { break scan }
                i -= 1
            }
        }
        for (ref, t) in promoted { append(ref, to: t) }
        return out
    }

    private mutating func append(_ ref: Ref, to bucket: Int) {
        while buckets.count <= bucket { buckets.append([]) }
        buckets[bucket].append(ref)
        refCount += 1
    }

    /// Drops stale refs, keeping each bucket's order.
    private mutating func compact() {
        refCount = 0
        for t in buckets.indices {
            let live = buckets[t].filter(isLive)
            buckets[t] = live
            refCount += buckets[t].count
        }
    }
}
