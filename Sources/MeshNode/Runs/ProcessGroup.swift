#if canImport(Glibc)
import Glibc

/// Liveness and signals of processes and process groups. A zombie counts as gone: in a container
/// whose PID 1 does not reap, orphans stay zombies forever.
enum ProcessGroup {
    /// Whether `pid` runs (exists and is not a zombie).
    static func isAlive(pid: pid_t) -> Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0, errno != EPERM { return false }
        if let stat = ProcStat(pid: pid) { return !stat.isZombie }
        return true
    }

    /// Whether any process of the group runs.
    static func isAlive(pgid: pid_t) -> Bool {
        guard pgid > 0 else { return false }
        if kill(-pgid, 0) != 0, errno != EPERM { return false }
        guard let entries = opendir("/proc") else { return true }
        defer { closedir(entries) }
        var sawProc = false
        while let entry = readdir(entries) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let pid = pid_t(name) else { continue }
            sawProc = true
            if let stat = ProcStat(pid: pid), stat.processGroup == pgid, !stat.isZombie {
                return true
            }
        }
        // Without a readable /proc, trust kill().
        return !sawProc
    }

    /// Sends `signal` to every process of the group; false if the group is gone.
    @discardableResult
    static func signal(pgid: pid_t, _ signal: Int32) -> Bool {
        guard pgid > 0 else { return false }
        return kill(-pgid, signal) == 0
    }

    /// Whether the process's initial environment holds `NAME=value`: a check that a recorded pid
    /// still belongs to the run, not to a process that reused the number. Nil if unreadable.
    static func environment(of pid: pid_t, contains entry: String) -> Bool? {
        guard let data = readFile("/proc/\(pid)/environ") else { return nil }
        return data.split(separator: 0).contains { $0.elementsEqual(entry.utf8) }
    }

    static func readFile(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while result.count < limit {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            result.append(contentsOf: buffer[0..<count])
        }
        return result
    }
}

/// The fields of /proc/PID/stat that matter here.
struct ProcStat {
    var state: Character
    var processGroup: pid_t

    var isZombie: Bool { state == "Z" || state == "X" }

    init?(pid: pid_t) {
        guard let bytes = ProcessGroup.readFile("/proc/\(pid)/stat", limit: 4096) else { return nil }
        // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so split after the last ')'.
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count >= 3, let state = fields[0].first,
              let group = pid_t(String(decoding: fields[2], as: UTF8.self))
        else { return nil }
        self.state = Character(UnicodeScalar(state))
        self.processGroup = group
    }
}
#endif
