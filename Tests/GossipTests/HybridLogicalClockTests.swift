@testable import Gossip
import Testing

@Suite struct HybridLogicalClockTests {
    @Test func followsPhysicalTimeWhenItAdvances() {
        var clock = HybridLogicalClock()
        #expect(clock.tick(physicalMillis: 100) == HLCTimestamp(wallMillis: 100, logical: 0))
        #expect(clock.tick(physicalMillis: 200) == HLCTimestamp(wallMillis: 200, logical: 0))
    }

    @Test func countsLogicallyWhenPhysicalTimeStandsStillOrGoesBack() {
        var clock = HybridLogicalClock()
        _ = clock.tick(physicalMillis: 100)
        #expect(clock.tick(physicalMillis: 100) == HLCTimestamp(wallMillis: 100, logical: 1))
        #expect(clock.tick(physicalMillis: 50) == HLCTimestamp(wallMillis: 100, logical: 2))
    }

    @Test func observingAFasterClockKeepsLocalEventsAfterIt() {
        var clock = HybridLogicalClock()
        _ = clock.tick(physicalMillis: 100)
        clock.observe(HLCTimestamp(wallMillis: 500, logical: 7), physicalMillis: 110)
        let next = clock.tick(physicalMillis: 120)
        #expect(next > HLCTimestamp(wallMillis: 500, logical: 7))
        #expect(next.wallMillis == 500)
    }

    @Test func observingAnOlderTimestampStillAdvances() {
        var clock = HybridLogicalClock()
        _ = clock.tick(physicalMillis: 1000)
        let before = clock.latest
        clock.observe(HLCTimestamp(wallMillis: 10), physicalMillis: 900)
        #expect(clock.latest > before)
    }

    @Test func fullLogicalCounterSpillsIntoTheNextMillisecond() {
        var clock = HybridLogicalClock(latest: HLCTimestamp(wallMillis: 100, logical: .max))
        #expect(clock.tick(physicalMillis: 100) == HLCTimestamp(wallMillis: 101, logical: 0))
    }

    @Test func timestampsAreStrictlyIncreasing() {
        var clock = HybridLogicalClock()
        var rng = SeededRandom(seed: 5)
        var last = HLCTimestamp.zero
        for _ in 0..<1000 {
            let physical = UInt64.random(in: 0...50, using: &rng)
            if Bool.random(using: &rng) {
                clock.observe(HLCTimestamp(wallMillis: UInt64.random(in: 0...60, using: &rng)), physicalMillis: physical)
            }
            let t = clock.tick(physicalMillis: physical)
            #expect(t > last)
            last = t
        }
    }
}
