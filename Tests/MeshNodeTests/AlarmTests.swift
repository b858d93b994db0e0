import Testing
@testable import MeshNode

/// `Alarm`, the sleep of a run's lease loop that a link event can cut short.
struct AlarmTests {
    static func lasted(_ body: () async -> Void) async -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        await body()
        return clock.now - start
    }

    @Test func sleepsThatNobodyWakesLastTheirTime() async {
        let alarm = Alarm()
        for round in 0..<3 {
            let slept = await Self.lasted { await alarm.sleep(for: .milliseconds(200)) }
            #expect(slept >= .milliseconds(190), "sleep \(round) lasted \(slept)")
        }
    }

    @Test func aWakeEndsTheSleepInProgressOrTheNextOneOnly() async throws {
        let alarm = Alarm()
        let sleeping = Task { await Self.lasted { await alarm.sleep(for: .seconds(600)) } }
        try await Task.sleep(for: .milliseconds(100))
        alarm.wake()
        let woken = await sleeping.value
        #expect(woken < .seconds(600))
        // A wake with no sleep in progress ends the next sleep, and only that one.
        alarm.wake()
        let next = await Self.lasted { await alarm.sleep(for: .seconds(600)) }
        #expect(next < .seconds(600))
        let after = await Self.lasted { await alarm.sleep(for: .milliseconds(200)) }
        #expect(after >= .milliseconds(190), "the sleep after lasted \(after)")
    }
}
