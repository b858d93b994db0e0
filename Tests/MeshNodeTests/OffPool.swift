// Blocking test work kept off Swift's concurrency pool.

import Foundation

/// Runs blocking work (a child process, a pipe) on a thread of its own: it must not occupy one of
/// the concurrency pool's threads (two on a 2-core machine), which every other test needs.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Waits for a started process on a thread of its own.
func waitForExit(_ process: Process) async {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            process.waitUntilExit()
            continuation.resume()
        }
    }
}
