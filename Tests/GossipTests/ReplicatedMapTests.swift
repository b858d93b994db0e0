@testable import Gossip
import Testing

@Suite struct ReplicatedMapTests {
    let a = testID(1), b = testID(2)

    @Test func laterTimestampWins() {
        var map = ReplicatedMap()
        let old = signedEntry(key: "k", value: [1], wall: 100, author: b)
        let new = signedEntry(key: "k", value: [2], wall: 200, author: a)
        #expect(map.merge(old) == .applied(previous: nil))
        #expect(map.merge(new) == .applied(previous: old))
        #expect(map.merge(old) == .stale)
        #expect(map.get(kind: .lease, key: "k")?.value == [2])
    }

    @Test func authorBreaksTimestampTies() {
        let fromA = signedEntry(key: "k", value: [1], wall: 100, author: a)
        let fromB = signedEntry(key: "k", value: [2], wall: 100, author: b)
        var one = ReplicatedMap(), two = ReplicatedMap()
        _ = one.merge(fromA); _ = one.merge(fromB)
        _ = two.merge(fromB); _ = two.merge(fromA)
        #expect(one.get(kind: .lease, key: "k")?.author == b)
        #expect(one.digest == two.digest)
    }

    @Test func mergeOrderDoesNotMatter() {
        var rng = SeededRandom(seed: 3)
        var entries: [Entry] = []
        for i in 0..<60 {
            let value: [UInt8]? = i % 7 == 0 ? nil : [UInt8(i)]
            entries.append(signedEntry(key: "k\(i % 9)", value: value, wall: UInt64.random(in: 1...20, using: &rng), author: testID(UInt8(i % 3 + 1))))
        }
        var first = ReplicatedMap()
        for e in entries { _ = first.merge(e) }
        for _ in 0..<5 {
            var other = ReplicatedMap()
            for e in entries.shuffled(using: &rng) { _ = other.merge(e) }
            #expect(other.digest == first.digest)
            #expect(other.allEntries == first.allEntries)
        }
    }

    @Test func tombstonesHideAndAreCollectedAfterGrace() {
        var map = ReplicatedMap()
        _ = map.merge(signedEntry(key: "k", value: [1], wall: 100, author: a))
        _ = map.merge(signedEntry(key: "k", value: nil, wall: 200, author: a))
        #expect(map.get(kind: .lease, key: "k") == nil)
        #expect(map.entry(at: EntryKey(kind: .lease, key: "k"))?.isTombstone == true)
        #expect(map.entries(kind: .lease).isEmpty)
        #expect(map.collectTombstones(olderThan: 150) == 0)
        #expect(map.collectTombstones(olderThan: 201) == 1)
        #expect(map.count == 0)
    }

    @Test func aCollectedTombstoneStillKeepsOlderEntriesOut() {
        var map = ReplicatedMap()
        let put = signedEntry(key: "k", value: [1], wall: 100, author: a)
        _ = map.merge(put)
        _ = map.merge(signedEntry(key: "k", value: nil, wall: 200, author: a))
        #expect(map.collectTombstones(olderThan: 201) == 1)
        // Gone from what push-pull sends and the digest, but the put it deleted stays out.
        #expect(map.count == 0 && map.allEntries.isEmpty)
        #expect(map.floor(at: put.entryKey)?.isTombstone == true)
        #expect(!map.wouldAccept(put))
        #expect(map.merge(put) == .stale)
        #expect(map.get(kind: .lease, key: "k") == nil)
        // A write after the delete is let in and replaces the floor.
        let newer = signedEntry(key: "k", value: [2], wall: 300, author: b)
        #expect(map.merge(newer) == .applied(previous: nil))
        #expect(map.floor(at: put.entryKey) == nil)
        #expect(map.get(kind: .lease, key: "k")?.value == [2])
    }

    @Test func digestsDifferWhenContentsDiffer() {
        var one = ReplicatedMap(), two = ReplicatedMap()
        _ = one.merge(signedEntry(key: "k", value: [1], wall: 100, author: a))
        _ = two.merge(signedEntry(key: "k", value: [2], wall: 100, author: a))
        #expect(one.digest != two.digest)
    }

    @Test func entriesAreFilteredByKindAndSortedByKey() {
        var map = ReplicatedMap()
        _ = map.merge(signedEntry(.gateway, key: "b", value: [1], wall: 1, author: a))
        _ = map.merge(signedEntry(.gateway, key: "a", value: [1], wall: 1, author: a))
        _ = map.merge(signedEntry(.secret, key: "c", value: [1], wall: 1, author: a))
        #expect(map.entries(kind: .gateway).map(\.key) == ["a", "b"])
        #expect(map.entries(kind: .secret).map(\.key) == ["c"])
    }

    @Test func kindNumbersAreStable() {
        #expect([EntryKind.member, .gateway, .lease, .domainClaim, .project, .secret].map(\.rawValue) == [1, 2, 3, 4, 5, 6])
    }
}
