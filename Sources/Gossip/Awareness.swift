/// Lifeguard's local health multiplier (memberlist `awareness.go`): a node that misses acks and
/// nacks it should have received suspects itself of being slow, and stretches its own probe
/// interval and timeout instead of accusing healthy peers.
struct Awareness: Sendable {
    /// 0 is healthy; at most `maxMultiplier - 1`.
    private(set) var score = 0
    let maxMultiplier: Int

    init(maxMultiplier: Int) {
        self.maxMultiplier = max(1, maxMultiplier)
    }

    mutating func apply(delta: Int) {
        score = min(max(score + delta, 0), maxMultiplier - 1)
    }

    /// `timeout` · (score + 1).
    func scale(_ timeout: Duration) -> Duration {
        timeout * (score + 1)
    }
}
