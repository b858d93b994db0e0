/// One suspicion timer (memberlist `suspicion.go`, Lifeguard's dynamic suspicion): the timeout
/// starts at `maxTimeout` and falls towards `minTimeout` as independent members confirm the
/// suspicion, logarithmically in the number of confirmations up to `expected`.
struct Suspicion: Sendable {
    let incarnation: UInt32
    let start: Duration
    let minTimeout: Duration
    let maxTimeout: Duration
    /// Confirmations needed to reach the minimum timeout; 0 means the timeout is `minTimeout` at once.
    let expected: Int
    /// Who has reported the suspicion (the first reporter is not counted as a confirmation).
    private(set) var reporters: [NodeID]
    private(set) var deadline: Duration
    /// How long before the deadline the suspect is told once more (`nextTimer`).
    let noticeLead: Duration
    /// Whether that last notice went out.
    private(set) var noticed = false

    init(
        incarnation: UInt32, start: Duration, minTimeout: Duration, maxTimeout: Duration, expected: Int, from: NodeID,
        noticeLead: Duration = .zero
    ) {
        self.incarnation = incarnation
        self.start = start
        self.minTimeout = minTimeout
        self.maxTimeout = maxTimeout
        self.expected = expected
        self.reporters = [from]
        self.deadline = start + (expected < 1 ? minTimeout : maxTimeout)
        self.noticeLead = noticeLead
    }

    /// When this suspicion's timer fires next: first `noticeLead` before the deadline, to tell the
    /// suspect, then at the deadline, for the verdict.
    var nextTimer: Duration { noticed ? deadline : max(start, deadline - noticeLead) }

    mutating func markNoticed() { noticed = true }

    var confirmations: Int { reporters.count - 1 }

    /// Records an independent confirmation; true if it was new and shortened the timeout.
    mutating func confirm(from: NodeID) -> Bool {
        guard confirmations < expected, !reporters.contains(from) else { return false }
        reporters.append(from)
        let fraction = ln(Double(confirmations) + 1) / ln(Double(expected) + 1)
        let timeout = maxTimeout - (maxTimeout - minTimeout) * fraction
        deadline = start + max(timeout, minTimeout)
        return true
    }
}
