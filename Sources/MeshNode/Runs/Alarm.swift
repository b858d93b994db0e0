import NIOConcurrencyHelpers

/// A sleep that another task can cut short: `wake()` ends the sleep in progress, or the next one
/// if none is in progress. Each sleep is cut short by at most one wake, and a sleep that was not
/// woken lasts its whole duration, however many sleeps came before it.
///
/// (An `AsyncStream` iterated by a child task that is cancelled when the timer wins would not
/// do: cancelling a task waiting in `AsyncStream.next()` finishes the stream, so every later
/// sleep would return at once.)
final class Alarm: Sendable {
    private struct State {
        var woken = false
        var sleeper: Task<Void, Never>?
    }

    private let state = NIOLockedValueBox(State())

    func wake() {
        self.state.withLockedValue { state in
            if let sleeper = state.sleeper {
                sleeper.cancel()
                state.sleeper = nil
            } else {
                state.woken = true
            }
        }
    }

    /// Sleeps for `duration`, less if woken (or if the calling task is cancelled).
    func sleep(for duration: Duration) async {
        let sleeper = Task<Void, Never> { _ = try? await Task.sleep(for: duration) }
        let wokenAlready = self.state.withLockedValue { state -> Bool in
            if state.woken {
                state.woken = false
                return true
            }
            state.sleeper = sleeper
            return false
        }
        if wokenAlready { sleeper.cancel() }
        await withTaskCancellationHandler {
            await sleeper.value
        } onCancel: {
            sleeper.cancel()
        }
        self.state.withLockedValue { state in
            if state.sleeper == sleeper { state.sleeper = nil }
        }
    }
}
