public import Foundation

/// A gateway's grant of a binding to one run, for a while. The runner renews it; the gateway
/// forgets it when it expires, so a runner that is gone frees its ports by itself.
public struct Lease: Codable, Sendable, Equatable {
    public var binding: Binding
    public var runID: String
    /// The run's name as users see it in `warren ps`.
    public var runName: String
    /// The node that runs the service (printed form of its NodeID).
    public var holder: String
    /// The app's port on the holder, where the gateway's streams are dialled.
    public var appPort: Int
    public var expires: Date
    /// False when the service opted out of TLS termination (dstack's `https: false`): the gateway
    /// serves its name over plain HTTP only. Nil (the default, and what older nodes send) lets a
    /// gateway with ACME terminate TLS for it.
    public var https: Bool?

    public init(binding: Binding, runID: String, runName: String, holder: String, appPort: Int, expires: Date, https: Bool? = nil) {
        self.https = https
        self.binding = binding
        self.runID = runID
        self.runName = runName
        self.holder = holder
        self.appPort = appPort
        self.expires = expires
    }

    public func isLive(at now: Date) -> Bool { expires > now }

    /// Whether a gateway with ACME terminates TLS for this lease's name.
    public var terminatesTLS: Bool { https != false }
}

/// A binding is already held: says by whom, and what to do instead.
public struct LeaseConflict: Error, Equatable, Sendable, Codable, CustomStringConvertible {
    public var requested: Binding
    public var holder: Lease
    /// The run ID that asked, when known: it tells a run ID held by another node from a port held
    /// by another run.
    public var requestedRunID: String?

    public init(requested: Binding, holder: Lease, requestedRunID: String? = nil) {
        self.requested = requested
        self.holder = holder
        self.requestedRunID = requestedRunID
    }

    public var description: String {
        let node = String(holder.holder.prefix(8))
        if requestedRunID == holder.runID {
            return "run ID \(holder.runID) already holds a lease on node \(node)… (\(holder.binding)); a run ID belongs to the node that "
                + "started the run: start the service from that node, or stop and start it again here for a new run ID"
        }
        let what = requested.host.map { "\($0) on port \(requested.port) of gateway \(requested.address)" }
            ?? "port \(requested.port) on gateway \(requested.address)"
        let held = holder.binding.isExclusive ? "" : " (for \(holder.binding.host!))"
        return "\(what) is held by run \"\(holder.runName)\" on node \(node)…\(held); use another port or a domain"
    }
}
