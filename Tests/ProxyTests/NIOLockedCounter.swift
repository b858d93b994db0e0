import NIOConcurrencyHelpers

/// A thread-safe counter for test apps.
final class NIOLockedCounter: Sendable {
    private let box = NIOLockedValueBox(0)
    var value: Int { self.box.withLockedValue { $0 } }
    func add(_ n: Int) { self.box.withLockedValue { $0 += n } }
}
