#if canImport(Glibc)
import Foundation
import Glibc

/// Starts `/bin/sh -c SCRIPT` in a new process group with posix_spawn: stdin from /dev/null,
/// stdout and stderr appended to a log file, signal dispositions and mask reset (a node that
/// ignores SIGTERM or SIGPIPE must not pass that on to its runs).
enum ProcessSpawner {
    struct Failure: Error {
        var reason: String
    }

    static func spawnShell(script: String, directory: String, environment: [String], logPath: String) throws(Failure) -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }

        let flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        try check(posix_spawnattr_setflags(&attributes, Int16(flags)), "set spawn flags")
        // Group 0: a new group whose ID is the child's pid.
        try check(posix_spawnattr_setpgroup(&attributes, 0), "set process group")
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
        try check(posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600), "open the log")
        try check(posix_spawn_file_actions_adddup2(&actions, 1, 2), "redirect stderr")

        var script = script
        if let addChdir = SpawnExtensions.addChdir {
            try check(addChdir(&actions, directory), "change directory")
        } else {
            script = "cd -- " + shellQuoted(directory) + "\n" + script
        }
        if let addCloseFrom = SpawnExtensions.addCloseFrom {
            // File descriptors the node opened without CLOEXEC must not leak into the run.
            try check(addCloseFrom(&actions, 3), "close inherited descriptors")
        }

        let argv = ["/bin/sh", "-c", script]
        var cArguments = argv.map { strdup($0) } + [nil]
        var cEnvironment = environment.map { strdup($0) } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &cArguments, &cEnvironment)
        guard result == 0 else {
            throw Failure(reason: String(cString: strerror(result)))
        }
        return pid
    }

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
