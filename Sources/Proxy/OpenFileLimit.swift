#if canImport(Glibc)
import Glibc
#endif

/// The process's limit on open descriptors. A gateway holds a descriptor for every public
/// connection and a runner one for every connection to an app, so the soft limit many systems
/// start processes with (1,024) would refuse connections long before the machine is busy.
public enum OpenFileLimit {
    /// The soft and hard RLIMIT_NOFILE of this process, or nil where it can't be read.
    public static var current: (soft: UInt64, hard: UInt64)? {
        var limit = rlimit()
        guard getrlimit(resourceNumber, &limit) == 0 else { return nil }
        return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
    }

    /// Raises the soft limit to the hard limit, which any process may do (Go's runtime and
    /// systemd's services do the same), and when the hard limit is below `wanted`, both to `wanted`
    /// where that is allowed (root may). Returns the soft limit in force afterwards.
    @discardableResult
    public static func raise(toAtLeast wanted: UInt64 = 65_536) -> UInt64? {
        var limit = rlimit()
        guard getrlimit(resourceNumber, &limit) == 0 else { return nil }
        if UInt64(limit.rlim_max) < wanted {
            var higher = limit
            higher.rlim_cur = rlim_t(wanted)
            higher.rlim_max = rlim_t(wanted)
            if setrlimit(resourceNumber, &higher) == 0 { return current?.soft }
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(resourceNumber, &limit)
        }
        return current?.soft
    }

    /// Sets the soft limit (at most the hard one); for tests that need a low limit.
    @discardableResult
    public static func setSoftLimit(_ soft: UInt64) -> Bool {
        var limit = rlimit()
        guard getrlimit(resourceNumber, &limit) == 0, soft <= UInt64(limit.rlim_max) else { return false }
        limit.rlim_cur = rlim_t(soft)
        return setrlimit(resourceNumber, &limit) == 0
    }

    private static var resourceNumber: __rlimit_resource_t { __rlimit_resource_t(RLIMIT_NOFILE.rawValue) }
}
