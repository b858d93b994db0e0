#if canImport(Glibc)
import Glibc

/// Who listens on a TCP port of this node's network namespace: the socket inodes of
/// /proc/net/tcp{,6} in state LISTEN, matched against the `socket:[inode]` descriptors of
/// processes. A port that accepts is a run's only if one of its processes holds the listener;
/// otherwise a run whose app failed to bind would be reported up while another program answers.
enum PortOwner {
    enum Verdict: Equatable {
        /// A process of the group holds a listener on the port.
        case group
        /// Only other processes do (pid and command, for the message).
        case other(pid: pid_t, command: String)
        /// Nobody visible holds one, or /proc can't be read: the probe is all there is to go on.
        case unknown
    }

    /// Whose listener on `port` it is, as seen from process group `pgid`.
    static func check(port: Int, pgid: pid_t) -> Verdict {
        let inodes = listeningInodes(port: port)
        guard !inodes.isEmpty else { return .unknown }
        var other: (pid_t, String)?
        for pid in processes() {
            guard let stat = ProcStat(pid: pid), !stat.isZombie else { continue }
            let ours = stat.processGroup == pgid
            // Scanning every process's descriptors is only needed to name a stranger once.
            if !ours, other != nil { continue }
            guard holds(pid: pid, anyOf: inodes) else { continue }
            if ours { return .group }
            other = (pid, command(of: pid))
        }
        if let (pid, command) = other { return .other(pid: pid, command: command) }
        return .unknown
    }

    /// The inodes of listening sockets on `port`, any address, IPv4 and IPv6.
    static func listeningInodes(port: Int) -> Set<UInt64> {
        var inodes: Set<UInt64> = []
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let bytes = ProcessGroup.readFile(table, limit: 16 << 20) else { continue }
            inodes.formUnion(parse(String(decoding: bytes, as: UTF8.self), port: port))
        }
        return inodes
    }

    /// The listening inodes on `port` in the text of /proc/net/tcp or tcp6:
    /// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …`, the local
    /// address as `HEXADDR:HEXPORT` and the state `0A` for LISTEN.
    static func parse(_ text: String, port: Int) -> Set<UInt64> {
        var inodes: Set<UInt64> = []
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9, fields[3] == "0A",
                  let colon = fields[1].lastIndex(of: ":"),
                  Int(fields[1][fields[1].index(after: colon)...], radix: 16) == port,
                  let inode = UInt64(fields[9]), inode != 0
            else { continue }
            inodes.insert(inode)
        }
        return inodes
    }

    private static func processes() -> [pid_t] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var pids: [pid_t] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let pid = pid_t(name) { pids.append(pid) }
        }
        return pids
    }

    private static func holds(pid: pid_t, anyOf inodes: Set<UInt64>) -> Bool {
        let path = "/proc/\(pid)/fd"
        guard let dir = opendir(path) else { return false }
        defer { closedir(dir) }
        var buffer = [CChar](repeating: 0, count: 64)
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard name.first?.isNumber == true else { continue }
            let count = readlink("\(path)/\(name)", &buffer, buffer.count - 1)
            guard count > 9 else { continue }
            let target = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // "socket:[12345]"
            guard target.hasPrefix("socket:["), target.hasSuffix("]"),
                  let inode = UInt64(target.dropFirst(8).dropLast()) else { continue }
            if inodes.contains(inode) { return true }
        }
        return false
    }

    private static func command(of pid: pid_t) -> String {
        guard let bytes = ProcessGroup.readFile("/proc/\(pid)/cmdline", limit: 512), !bytes.isEmpty else { return "?" }
        return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
    }
}
#endif
