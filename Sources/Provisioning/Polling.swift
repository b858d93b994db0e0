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
