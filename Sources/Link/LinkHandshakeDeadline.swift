internal import NIOCore

/// When a connection's link handshake gives up, as a value with the time given to each event: the
/// handshake must end within `timeout` of its start, however its messages trickle in, since a
/// connection in its handshake holds one of the endpoint's few pending places
/// (`LinkConfiguration.maxPendingHandshakes`). `LinkHandshakeHandler` carries out its actions: it
/// schedules a timer for the deadline it is given, reports the timer's firing with the time, and
/// fails and closes the connection when told.
struct LinkHandshakeDeadline: Sendable, Equatable {
    enum Action: Sendable, Equatable {
        /// Wake up at this deadline, then report `timerFired`.
        case wakeUp(at: NIODeadline)
        /// The handshake ran out of time: fail it with this error and close the connection.
        case close(LinkError)
        /// The handshake ended: a timer that is set may be cancelled.
        case cancelTimer
        /// Nothing to do.
        case none
    }

    enum State: Sendable, Equatable {
        case notStarted
        case running(deadline: NIODeadline)
        /// Completed, failed or timed out: nothing more happens.
        case ended
    }

    let timeout: TimeAmount
    private(set) var state: State = .notStarted

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    /// The handshake began (the connection is active): its deadline is `now + timeout`.
    mutating func started(now: NIODeadline) -> Action {
        guard case .notStarted = state else { return .none }
        let deadline = now + timeout
        state = .running(deadline: deadline)
        return .wakeUp(at: deadline)
    }

    /// The timer fired at `now`. Early (a timer may fire before its deadline, e.g. set from a
    /// coarser clock), it sets itself again; after the handshake ended, it does nothing.
    mutating func timerFired(now: NIODeadline) -> Action {
        guard case .running(let deadline) = state else { return .none }
        guard now >= deadline else { return .wakeUp(at: deadline) }
        state = .ended
        return .close(.handshakeTimeout)
    }

    /// The handshake completed or failed before its deadline.
    mutating func ended() -> Action {
        switch state {
        case .running:
            state = .ended
            return .cancelTimer
        case .notStarted:
            state = .ended
            return .none
        case .ended:
            return .none
        }
    }
}
