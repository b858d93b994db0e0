#if canImport(Glibc)
import Glibc

/// A process that outlives its starter: a session of its own (so a terminal's Ctrl-C or the
/// starter's shutdown never reaches it), stdin from /dev/null, stdout and stderr appended to a
/// log file. How the local backend runs gateway nodes.
enum DetachedProcess {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// glibc's POSIX_SPAWN_SETSID (2.26+), behind _GNU_SOURCE in <spawn.h>.
    private static let spawnSetSID: Int32 = 0x80

    /// Starts `arguments[0]` with `arguments`; returns its pid, which is also its session and
    /// process-group ID.
    static func spawn(_ arguments: [String], environment: [String: String], logPath: String) throws(Failure) -> pid_t {
        guard let executable = arguments.first else { throw Failure(description: "no program to start") }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }

        try check(posix_spawnattr_setflags(&attributes, Int16(spawnSetSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)), "set spawn flags")
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        try check(posix_spawnattr_setsigmask(&attributes, &noSignals), "set signal mask")
        // A node that ignores SIGINT or SIGPIPE must not pass that on.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in 1..<Int32(32) where signal != SIGKILL && signal != SIGSTOP {
            sigaddset(&defaults, signal)
        }
        try check(posix_spawnattr_setsigdefault(&attributes, &defaults), "reset signal handlers")
        try check(posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0), "redirect stdin")
        try check(posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600), "open the log \(logPath)")
        try check(posix_spawn_file_actions_adddup2(&actions, 1, 2), "redirect stderr")

        var cArguments = arguments.map { strdup($0) } + [nil]
        var cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        var result = posix_spawn(&pid, executable, &actions, &attributes, &cArguments, &cEnvironment)
        // ETXTBSY: the file was just written, and a process forked elsewhere meanwhile still holds
        // it open for writing for an instant. Retried briefly, as Go's os/exec does.
        for _ in 0..<20 where result == ETXTBSY {
            usleep(25_000)
            result = posix_spawn(&pid, executable, &actions, &attributes, &cArguments, &cEnvironment)
        }
        guard result == 0 else {
            throw Failure(description: "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
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
            if !ProcessGroup.isAlive(pgid: pid) { reap(pid); return false }
            await pause()
        }
        ProcessGroup.signal(pgid: pid, SIGKILL)
        for _ in 0..<40 {
            if !ProcessGroup.isAlive(pgid: pid) { reap(pid); break }
            await pause()
        }
        return true
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

    private static func check(_ result: Int32, _ what: String) throws(Failure) {
        if result != 0 {
            throw Failure(description: "cannot \(what): \(String(cString: strerror(result)))")
        }
    }
}
#endif
