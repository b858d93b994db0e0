public import Foundation

/// The leases a gateway has granted on its addresses, or a node's replica of all gateways' grants.
///
/// A value type with no clock of its own: the caller passes `now`, so expiry is tested without
/// waiting.
public struct LeaseTable: Sendable, Equatable {
    /// 30 s, or `$WARREN_LEASE_TTL_SECONDS` (a positive number) so that end-to-end tests see a
    /// killed runner's lease expire in seconds. Runners renew every third of it, so set it alike
    /// on every node of a mesh.
    public static let defaultTTL: TimeInterval = ttl(environment: ProcessInfo.processInfo.environment)

    static func ttl(environment: [String: String]) -> TimeInterval {
        guard let text = environment["WARREN_LEASE_TTL_SECONDS"], let seconds = TimeInterval(text), seconds > 0, seconds.isFinite else {
            return 30
        }
        return seconds
    }

    /// Live and not yet collected leases, by run and binding.
    public private(set) var leases: [Lease] = []

    public init(leases: [Lease] = []) {
        self.leases = leases
    }

    /// The live lease that stands in the way of `binding` for `runID`, if any. A run's own lease
    /// never conflicts with itself (a renewal, or a restart asking again).
    public func conflict(for binding: Binding, runID: String, now: Date) -> Lease? {
        leases.first { $0.isLive(at: now) && $0.runID != runID && $0.binding.conflicts(with: binding) }
    }

    /// Grants `binding` to the run, or renews its existing grant; throws when another run holds it.
    @discardableResult
    public mutating func grant(
        _ binding: Binding, runID: String, runName: String, holder: String, appPort: Int,
        now: Date, ttl: TimeInterval = LeaseTable.defaultTTL
    ) throws(LeaseConflict) -> Lease {
        if let holding = conflict(for: binding, runID: runID, now: now) {
            throw LeaseConflict(requested: binding, holder: holding)
        }
        let lease = Lease(binding: binding, runID: runID, runName: runName, holder: holder, appPort: appPort, expires: now.addingTimeInterval(ttl))
        leases.removeAll { $0.runID == runID && $0.binding == binding }
        leases.append(lease)
        return lease
    }

    /// Extends every lease of the run; returns how many there were (0: the run holds nothing, and
    /// should ask again).
    @discardableResult
    public mutating func renew(runID: String, now: Date, ttl: TimeInterval = LeaseTable.defaultTTL) -> Int {
        var n = 0
        for i in leases.indices where leases[i].runID == runID && leases[i].isLive(at: now) {
            leases[i].expires = now.addingTimeInterval(ttl)
            n += 1
        }
        return n
    }

    /// Drops the run's leases (it stopped); returns them.
    @discardableResult
    public mutating func release(runID: String) -> [Lease] {
        let gone = leases.filter { $0.runID == runID }
        leases.removeAll { $0.runID == runID }
        return gone
    }

    /// Drops the leases that have expired by `now`; returns them.
    @discardableResult
    public mutating func expire(now: Date) -> [Lease] {
        let gone = leases.filter { !$0.isLive(at: now) }
        leases.removeAll { !$0.isLive(at: now) }
        return gone
    }

    /// Adopts a lease learnt from elsewhere (gossip, or the state database after a restart),
    /// replacing any older copy of the same grant.
    public mutating func merge(_ lease: Lease) {
        if let i = leases.firstIndex(where: { $0.runID == lease.runID && $0.binding == lease.binding }) {
            if lease.expires > leases[i].expires { leases[i] = lease }
        } else {
            leases.append(lease)
        }
    }
}
