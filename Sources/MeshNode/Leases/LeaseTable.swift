public import Foundation
public import Trust

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

    /// The live lease that stands in the way of `binding` for `runID` of node `holder`, if any. A
    /// run's own lease never conflicts with itself (a renewal, or a restart asking again); but a run
    /// ID is a name, not a capability: the same run ID held by another node stands in the way of
    /// every binding, so no node can take over or extend another node's grant by naming its run.
    public func conflict(for binding: Binding, runID: String, holder: String, now: Date) -> Lease? {
        leases.first { lease in
            guard lease.isLive(at: now) else { return false }
            if lease.runID == runID { return lease.holder != holder }
            return lease.binding.conflicts(with: binding)
        }
    }

    /// Grants `binding` to the run, or renews its existing grant; throws when another run holds it,
    /// or another node holds a lease under the same run ID.
    @discardableResult
    public mutating func grant(
        _ binding: Binding, runID: String, runName: String, holder: String, appPort: Int,
        now: Date, ttl: TimeInterval = LeaseTable.defaultTTL, https: Bool? = nil
    ) throws(LeaseConflict) -> Lease {
        if let holding = conflict(for: binding, runID: runID, holder: holder, now: now) {
            throw LeaseConflict(requested: binding, holder: holding, requestedRunID: runID)
        }
        let lease = Lease(binding: binding, runID: runID, runName: runName, holder: holder, appPort: appPort, expires: now.addingTimeInterval(ttl), https: https)
        leases.removeAll { $0.runID == runID && $0.binding == binding }
        leases.append(lease)
        return lease
    }

    /// Drops the run's leases held by `holder` (it stopped); returns them. Another node's leases
    /// under the same run ID stay: only their holder, a removal or the TTL frees them.
    @discardableResult
    public mutating func release(runID: String, holder: String) -> [Lease] {
        let gone = leases.filter { $0.runID == runID && $0.holder == holder }
        leases.removeAll { $0.runID == runID && $0.holder == holder }
        return gone
    }

    /// Drops every lease `holder` holds (a node removed from the mesh); returns them.
    @discardableResult
    public mutating func release(heldBy holder: String) -> [Lease] {
        let gone = leases.filter { $0.holder == holder }
        leases.removeAll { $0.holder == holder }
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
