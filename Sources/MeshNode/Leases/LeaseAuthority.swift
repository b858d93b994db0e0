/// What a runner asks of the gateway that owns a binding's address.
public struct LeaseRequest: Codable, Sendable, Equatable {
    public var binding: Binding
    public var runID: String
    public var runName: String
    /// The runner's node ID (printed form).
    public var holder: String
    public var appPort: Int

    public init(binding: Binding, runID: String, runName: String, holder: String, appPort: Int) {
        self.binding = binding
        self.runID = runID
        self.runName = runName
        self.holder = holder
        self.appPort = appPort
    }
}

/// The gateway side of leases, as a runner sees it: the local gateway service when this node owns
/// the address, or a call over the link to the gateway node that does.
public protocol LeaseAuthority: Sendable {
    /// Grants the binding, or renews the run's grant of it. Throws `LeaseConflict` when another
    /// run holds it, and `LeaseUnavailable` when the gateway can't be asked now.
    func grant(_ request: LeaseRequest) async throws -> Lease
    /// Gives the binding back (the run stopped). Best effort: an unreachable gateway lets it expire.
    func release(_ request: LeaseRequest) async
}

/// The gateway that owns the address could not be asked.
public struct LeaseUnavailable: Error, Sendable, Equatable, CustomStringConvertible {
    public var address: String
    public var reason: String

    public init(address: String, reason: String) {
        self.address = address
        self.reason = reason
    }

    public var description: String { "gateway \(address) can't be reached: \(reason)" }
}
