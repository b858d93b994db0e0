#if canImport(Glibc)
import Glibc

/// A process that outlives its starter: a session of its own (so a terminal's Ctrl-C or the
/// starter's shutdown never reaches it), stdin from /dev/null, stdout and stderr appended to a
/// log file. How the local backend runs gateway nodes.
enum DetachedProcess {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts `arguments[0]` with `arguments`; returns its pid, which is also its session and
    /// process-group ID.
    static func spawn(_ arguments: [String], environment: [String: String], logPath: String) throws(Failure) -> pid_t {
        do {
            return try ProcessSpawner.spawn(
                arguments, environment: environment.map { "\($0.key)=\($0.value)" }, logPath: logPath, isolation: .session)
        } catch {
            throw Failure(description: error.reason)
        }
    }

    /// Stops the process group `pid`: SIGTERM, then SIGKILL if it still runs after `grace`.
    /// Returns whether it had to be killed.
    @discardableResult
    static func stop(pid: pid_t, grace: Duration) async -> Bool {
        guard pid > 0 else { return false }
        ProcessGroup.signal(pgid: pid, SIGTERM)
        let clock = ContinuousClock()
        let deadline = clock.now + grace
        while clock.now < deadline {
            // A zombie counts as gone; reaping it after the check leaves none behind.
            if !ProcessGroup.isAlive(pgid: pid) { await reapExited(pid); return false }
            await pause()
        }
        ProcessGroup.signal(pgid: pid, SIGKILL)
        for _ in 0..<40 {
            if !ProcessGroup.isAlive(pgid: pid) { await reapExited(pid); break }
            await pause()
        }
        return true
    }

    /// Reaps `pid` once it is gone. A multi-threaded process's leader shows as a zombie while its
    /// other threads are still exiting, and can't be collected until they have: one WNOHANG wait
    /// at that moment would leave a zombie behind for good.
    private static func reapExited(_ pid: pid_t) async {
        var status: Int32 = 0
        for _ in 0..<100 {
            // pid: collected; -1: not this process's child (ECHILD); 0: not yet collectable.
            if waitpid(pid, &status, WNOHANG) != 0 { return }
            await pause()
        }
    }

    /// 50 ms, also in a cancelled task: a stop that was asked for finishes even if its caller gives up.
    private static func pause() async {
        do { try await Task.sleep(for: .milliseconds(50)) } catch { usleep(50_000) }
    }

    /// Collects the exit status if `pid` is this process's child (it is when this node started it
    /// and has not restarted since), so no zombie is left behind.
    static func reap(_ pid: pid_t) {
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }
}
#endif
