@testable import Link
import NIOCore
import Testing

/// `LinkHandshakeDeadline` driven with given times, without a channel: when a handshake that has
/// not ended is closed, and that nothing closes one that ended.
@Suite("Link handshake deadline")
struct LinkHandshakeDeadlineTests {
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    @Test func aHandshakeStillRunningAtItsDeadlineIsClosed() {
        var deadline = LinkHandshakeDeadline(timeout: .seconds(5))
        #expect(deadline.started(now: Self.t0) == .wakeUp(at: Self.t0 + .seconds(5)))
        #expect(deadline.timerFired(now: Self.t0 + .seconds(5)) == .close(.handshakeTimeout))
        #expect(deadline.state == .ended)
        // Whatever else happens then changes nothing.
        #expect(deadline.ended() == .none)
        #expect(deadline.timerFired(now: Self.t0 + .seconds(6)) == .none)
    }

    @Test func aTimerThatFiresEarlyIsSetAgainForTheSameDeadline() {
        var deadline = LinkHandshakeDeadline(timeout: .seconds(5))
        _ = deadline.started(now: Self.t0)
        let early = Self.t0 + .seconds(5) - .nanoseconds(1)
        #expect(deadline.timerFired(now: early) == .wakeUp(at: Self.t0 + .seconds(5)))
        #expect(deadline.state == .running(deadline: Self.t0 + .seconds(5)))
        #expect(deadline.timerFired(now: Self.t0 + .seconds(7)) == .close(.handshakeTimeout))
    }

    @Test func aHandshakeThatEndedInTimeIsNotClosed() {
        var deadline = LinkHandshakeDeadline(timeout: .seconds(5))
        _ = deadline.started(now: Self.t0)
        #expect(deadline.ended() == .cancelTimer)
        // A timer that fires anyway (its cancellation raced with it) does nothing.
        #expect(deadline.timerFired(now: Self.t0 + .seconds(5)) == .none)
        #expect(deadline.state == .ended)
    }

    @Test func onlyTheFirstStartSetsTheDeadline() {
        var deadline = LinkHandshakeDeadline(timeout: .seconds(5))
        _ = deadline.started(now: Self.t0)
        // Added to an active channel, the handler may also see channelActive: the clock runs from the first.
        #expect(deadline.started(now: Self.t0 + .seconds(3)) == .none)
        #expect(deadline.timerFired(now: Self.t0 + .seconds(5)) == .close(.handshakeTimeout))
    }

    @Test func aHandshakeThatFailedBeforeItStartedSetsNoTimer() {
        var deadline = LinkHandshakeDeadline(timeout: .seconds(5))
        #expect(deadline.ended() == .none)
        #expect(deadline.started(now: Self.t0) == .none)
    }
}
