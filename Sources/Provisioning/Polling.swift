import Foundation

/// Polls a condition until it gives a value, with a bounded wait: how backends wait for clouds.
struct Polling: Sendable {
    var interval: Duration
    var timeout: Duration

    func waitFor<T>(_ what: String, _ poll: () async throws -> T?) async throws -> T {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            if let value = try await poll() { return value }
            guard clock.now < deadline else {
                throw ProvisioningError.timedOut("timed out after \(timeout) waiting for \(what)")
            }
            try await Task.sleep(for: interval)
        }
    }
}

/// Retries of a cloud call refused for a passing reason: throttling (Azure and GCP 429, EC2
/// `RequestLimitExceeded`), a transient 5xx, or a resource not yet visible right after its creation
/// (EC2's eventual consistency). Exponential backoff with jitter, the cloud's `Retry-After` taken
/// when it gives one, both capped; bounded in attempts, after which the last answer stands.
struct Retrying: Sendable {
    /// Attempts in all, the first included.
    var attempts = 8
    var initialDelay: Duration = .seconds(1)
    var maxDelay: Duration = .seconds(20)

    /// What one attempt came to: a final value, or a value (the answer to report if no attempt is
    /// left) worth trying again, after the cloud's own delay when it named one.
    enum Attempt<T> {
        case done(T)
        case again(T, retryAfter: Duration?)
    }

    /// The wait before attempt `attempt + 1`: `initialDelay` doubled per attempt, between half and
    /// all of it (jitter spreads the retries of several creators), capped by `maxDelay`.
    func delay(after attempt: Int, retryAfter: Duration?) -> Duration {
        if let retryAfter { return min(retryAfter, maxDelay) }
        let doubled = initialDelay * (1 << min(attempt - 1, 20))
        return min(doubled, maxDelay) * Double.random(in: 0.5...1)
    }

    func run<T>(_ body: (_ attempt: Int) async throws -> Attempt<T>) async throws -> T {
        var attempt = 1
        while true {
            switch try await body(attempt) {
            case .done(let value):
                return value
            case .again(let value, let retryAfter):
                guard attempt < attempts else { return value }
                try await Task.sleep(for: delay(after: attempt, retryAfter: retryAfter))
                attempt += 1
            }
        }
    }

    /// The seconds of an HTTP `Retry-After` header (RFC 9110 §10.2.3); its date form is not used by
    /// the clouds here and counts as absent.
    static func retryAfter(_ header: String?) -> Duration? {
        guard let header, let seconds = Int(header.trimmingCharacters(in: .whitespaces)), seconds >= 0 else { return nil }
        return .seconds(seconds)
    }
}
