@testable import Gossip
import Synchronization
import Testing

/// Entries the owner holds back (`EntryVerdict.hold`) until what they depend on arrives: let in
/// as soon as it does, without waiting for a push-pull; bounded; never in the replica before.
struct HeldEntriesTests {
    /// A node that knows member 2, whose owner holds an entry keyed `"needs:<k>"` until an entry
    /// keyed `k` is in its replica, and never lets in one keyed `"forged…"`.
    static func node(config: GossipConfig = .lan) -> GossipNode {
        var node = makeNode(1, config: config)
        node.bootstrap(members: [makeNode(2).localMember], now: .zero)
        let present = Present()
        node.accept = { entry in
            if entry.key.hasPrefix("forged") { return .hold }
            if entry.key.hasPrefix("needs:"), !present.keys.withLock({ $0.contains(String(entry.key.dropFirst(6))) }) { return .hold }
            present.keys.withLock { _ = $0.insert(entry.key) }
            return .accept
        }
        return node
    }

    /// Keys the owner let in (the hook cannot read the replica it guards).
    final class Present: Sendable {
        let keys = Mutex<Set<String>>([])
    }

    static func gossip(_ entries: [Entry]) -> [UInt8] {
        MessageCodec.encode(.gossip(updates: entries.map { .entry($0) }))
    }

    @Test func anEntryThatArrivesBeforeWhatItNeedsGetsInWhenThatArrives() {
        var node = Self.node()
        let author = testID(2)
        let dependent = signedEntry(key: "needs:a", value: [2], wall: 1_800_000_000_100, author: author)
        let needed = signedEntry(key: "a", value: [1], wall: 1_800_000_000_200, author: author)
        _ = node.receive(bytes: Self.gossip([dependent]), from: author, now: .seconds(1))
        #expect(node.get(kind: .lease, key: "needs:a") == nil)
        #expect(node.heldEntries == [dependent])
        #expect(node.counters.entriesHeld == 1)

        // The entry it needs arrives in a later message: both are in, and the held one is
        // announced as a change and passed on like any other.
        let actions = node.receive(bytes: Self.gossip([needed]), from: author, now: .seconds(2))
        #expect(node.get(kind: .lease, key: "needs:a")?.value == [2])
        #expect(Set(actions.entryChanges.map(\.current.key)) == ["a", "needs:a"])
        #expect(node.heldEntries.isEmpty)
        #expect(node.counters.heldReleased == 1)
    }

    @Test func aChainWithinOneMessageInTheWrongOrderGetsInWhole() {
        var node = Self.node()
        let author = testID(2)
        let wall: UInt64 = 1_800_000_000_100
        // c needs b, b needs a; they arrive in the order c, b, a.
        let entries = [
            signedEntry(key: "needs:needs:a", value: [3], wall: wall, author: author),
            signedEntry(key: "needs:a", value: [2], wall: wall, author: author),
            signedEntry(key: "a", value: [1], wall: wall, author: author),
        ]
        _ = node.receive(bytes: Self.gossip(entries), from: author, now: .seconds(1))
        #expect(node.entries(kind: .lease).map(\.key) == ["a", "needs:a", "needs:needs:a"])
        #expect(node.heldEntries.isEmpty)
    }

    @Test func heldEntriesAreBoundedOldestFirstAndNeverEnterTheReplica() {
        var config = GossipConfig.lan
        config.maxHeldEntries = 2
        var node = Self.node(config: config)
        let author = testID(2)
        let forged = (0..<3).map { signedEntry(key: "forged\($0)", value: [UInt8($0)], wall: 1_800_000_000_100, author: author) }
        for (i, entry) in forged.enumerated() {
            _ = node.receive(bytes: Self.gossip([entry]), from: author, now: .seconds(Int64(i + 1)))
        }
        #expect(node.heldEntries.map(\.key) == ["forged1", "forged2"])
        #expect(node.counters.droppedHeld == 1)
        // Other entries arrive, the owner is asked again, and still says no.
        _ = node.receive(bytes: Self.gossip([signedEntry(key: "other", value: [9], wall: 1_800_000_000_200, author: author)]), from: author, now: .seconds(5))
        #expect(node.get(kind: .lease, key: "other") != nil)
        #expect(node.entries(kind: .lease).allSatisfy { !$0.key.hasPrefix("forged") })
        #expect(node.heldEntries.count == 2)

        // A byte bound too: one entry larger than it is not kept at all.
        config.maxHeldBytes = 100
        var small = Self.node(config: config)
        let big = signedEntry(key: "forged-big", value: Array(repeating: 7, count: 200), wall: 1_800_000_000_100, author: author)
        _ = small.receive(bytes: Self.gossip([big]), from: author, now: .seconds(1))
        #expect(small.heldEntries.isEmpty)
        #expect(small.counters.droppedHeld == 1)
    }

    @Test func aLocalWriteOfWhatItNeedsLetsItInToo() throws {
        var node = Self.node()
        let author = testID(2)
        _ = node.receive(bytes: Self.gossip([signedEntry(key: "needs:a", value: [2], wall: 1_800_000_000_100, author: author)]), from: author, now: .seconds(1))
        #expect(node.heldEntries.count == 1)
        // The owner knows of its own write ("a" is present), and the write asks it again.
        let present = Present()
        node.accept = { entry in
            if entry.key == "needs:a", !present.keys.withLock({ $0.contains("a") }) { return .hold }
            return .accept
        }
        present.keys.withLock { _ = $0.insert("a") }
        let actions = try node.put(kind: .lease, key: "a", value: [1], now: .seconds(2))
        #expect(node.get(kind: .lease, key: "needs:a")?.value == [2])
        #expect(actions.entryChanges.map(\.current.key) == ["a", "needs:a"])
    }

    @Test func aHeldEntrySentAgainIsHeldOnce() {
        var node = Self.node()
        let author = testID(2)
        let dependent = signedEntry(key: "needs:a", value: [2], wall: 1_800_000_000_100, author: author)
        for i in 1...3 { _ = node.receive(bytes: Self.gossip([dependent]), from: author, now: .seconds(Int64(i))) }
        #expect(node.heldEntries.count == 1)
        #expect(node.counters.entriesHeld == 1)
    }
}
