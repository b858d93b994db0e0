/// Exponential backoff with jitter for redialling a link: the n-th wait is drawn uniformly from
/// [d/2, d] where d = min(initial × 2ⁿ, cap). A pure value: give it the random source.
public struct LinkBackoff: Sendable {
    public var initial: Duration
    public var cap: Duration
    private var attempt = 0

    public init(initial: Duration = .milliseconds(500), cap: Duration = .seconds(10)) {
        self.initial = initial
        self.cap = cap
    }

    /// The wait before the next attempt.
    public mutating func next(using random: inout some RandomNumberGenerator) -> Duration {
        let factor = 1 << min(attempt, 20)
        attempt += 1
        let ceiling = min(initial * factor, cap)
        let millis = max(Int(ceiling / .milliseconds(1)), 1)
        return .milliseconds(Int.random(in: (millis / 2)...millis, using: &random))
    }

    /// Starts over after a link that worked.
    public mutating func reset() { attempt = 0 }
}
