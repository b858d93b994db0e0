#if canImport(Glibc)
import Foundation
import Glibc

/// Starts processes with posix_spawn: stdin from /dev/null, stdout and stderr appended to a log
/// file, signal dispositions and mask reset (a node that ignores SIGTERM or SIGPIPE must not pass
/// that on), in a process group or a session of their own. Runs and local gateways start here.
enum ProcessSpawner {
    struct Failure: Error {
        var reason: String
    }

    /// What the child is cut off from.
    enum Isolation {
        /// A new process group (ID = the child's pid): signals to the group reach all its processes.
        case processGroup
        /// A new session (and group): a terminal's Ctrl-C or the starter's shutdown never reaches it.
        case session
    }

    /// Runs `/bin/sh -c SCRIPT` in `directory`, in a process group of its own.
    static func spawnShell(script: String, directory: String, environment: [String], logPath: String) throws(Failure) -> pid_t {
        var script = script
        var chdir: String? = directory
        if SpawnExtensions.addChdir == nil {
            script = "cd -- " + shellQuoted(directory) + "\n" + script
            chdir = nil
        }
        return try spawn(["/bin/sh", "-c", script], environment: environment, directory: chdir, logPath: logPath, isolation: .processGroup)
    }

    /// Starts `arguments[0]` (a path) with `arguments` and `environment` ("K=V" strings); returns
    /// its pid, which is also its process-group (and, for `.session`, session) ID.
    static func spawn(
        _ arguments: [String], environment: [String], directory: String? = nil, logPath: String, isolation: Isolation
    ) throws(Failure) -> pid_t {
        guard let executable = arguments.first else { throw Failure(reason: "no program to start") }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }

        let separation = isolation == .session ? spawnSetSID : POSIX_SPAWN_SETPGROUP
        try check(posix_spawnattr_setflags(&attributes, Int16(separation | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)), "set spawn flags")
        if isolation == .processGroup {
            // Group 0: a new group whose ID is the child's pid.
            try check(posix_spawnattr_setpgroup(&attributes, 0), "set process group")
        }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        try check(posix_spawnattr_setsigmask(&attributes, &noSignals), "set signal mask")
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in 1..<Int32(32) where signal != SIGKILL && signal != SIGSTOP {
            sigaddset(&defaults, signal)
        }
        try check(posix_spawnattr_setsigdefault(&attributes, &defaults), "reset signal handlers")

        try check(posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0), "redirect stdin")
        try check(posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600), "open the log \(logPath)")
        try check(posix_spawn_file_actions_adddup2(&actions, 1, 2), "redirect stderr")
        if let directory {
            guard let addChdir = SpawnExtensions.addChdir else { throw Failure(reason: "cannot change directory: this C library lacks posix_spawn_file_actions_addchdir_np") }
            try check(addChdir(&actions, directory), "change directory")
        }
        if let addCloseFrom = SpawnExtensions.addCloseFrom {
            // File descriptors the node opened without CLOEXEC must not leak into the child.
            try check(addCloseFrom(&actions, 3), "close inherited descriptors")
        }

        var cArguments = arguments.map { strdup($0) } + [nil]
        var cEnvironment = environment.map { strdup($0) } + [nil]
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
            throw Failure(reason: "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// glibc's POSIX_SPAWN_SETSID (2.26+), behind _GNU_SOURCE in <spawn.h>.
    private static let spawnSetSID: Int32 = 0x80

    private static func check(_ result: Int32, _ what: String) throws(Failure) {
        if result != 0 {
            throw Failure(reason: "cannot \(what): \(String(cString: strerror(result)))")
        }
    }

    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// glibc's posix_spawn extensions, which Swift does not import (they sit behind _GNU_SOURCE).
/// Looked up at run time; missing ones (glibc < 2.29/2.34) have a fallback.
private enum SpawnExtensions {
    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    static let addChdir: AddChdir? = lookup("posix_spawn_file_actions_addchdir_np")
    static let addCloseFrom: AddCloseFrom? = lookup("posix_spawn_file_actions_addclosefrom_np")

    private static func lookup<F>(_ name: String) -> F? {
        // RTLD_DEFAULT is the null handle on glibc.
        guard let symbol = dlsym(nil, name) else { return nil }
        return unsafeBitCast(symbol, to: F.self)
    }
}
#endif
