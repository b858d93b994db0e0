import Foundation

/// Passing refusals a fake cloud can be told to answer, as the real clouds do at times: every
/// `every`-th API call (the token endpoint aside) is refused once, by throttling and by a transient
/// server error in turn, at most `limit` times; and a resource made moments ago answers "not found"
/// to its first `notFoundReads` reads (eventual consistency).
public final class FaultInjection: @unchecked Sendable {  // all state behind `lock`
    public enum Fault: Sendable, Equatable { case throttle, serverError }

    private let lock = NSLock()
    private let every: Int
    private var left: Int
    private var calls = 0
    private var injected: [Fault] = []
    private let notFoundReads: Int
    private var unseen: [String: Int] = [:]
    private var notFoundAnswered = 0

    /// No faults.
    public static var none: FaultInjection { FaultInjection(every: 0, limit: 0, notFoundReads: 0) }

    public init(every: Int = 3, limit: Int = 6, notFoundReads: Int = 1) {
        self.every = every
        self.left = limit
        self.notFoundReads = notFoundReads
    }

    /// The faults answered so far, in order.
    public var faults: [Fault] { lock.withLock { injected } }
    /// How many reads were answered "not found" for a resource just made.
    public var notFoundCount: Int { lock.withLock { notFoundAnswered } }

    /// The fault to answer this call with, if any.
    public func nextFault() -> Fault? {
        lock.withLock {
            calls += 1
            guard every > 0, left > 0, calls % every == 0 else { return nil }
            left -= 1
            let fault: Fault = injected.count % 2 == 0 ? .throttle : .serverError
            injected.append(fault)
            return fault
        }
    }

    /// Notes that `key` (a path or ID) was just made.
    public func created(_ key: String) {
        lock.withLock { if notFoundReads > 0 { unseen[key] = notFoundReads } }
    }

    /// Whether this read of `key` is to answer "not found" (the resource exists, but not yet for readers).
    public func hidesRead(of key: String) -> Bool {
        lock.withLock {
            guard let count = unseen[key], count > 0 else { return false }
            unseen[key] = count - 1
            notFoundAnswered += 1
            return true
        }
    }
}
