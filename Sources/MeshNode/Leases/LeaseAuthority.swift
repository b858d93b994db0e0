public import Trust
/// What a runner asks of the gateway that owns a binding's address.
public struct LeaseRequest: Codable, Sendable, Equatable {
    public var binding: Binding
    public var runID: String
    public var runName: String
    /// The runner's node ID (printed form).
    public var holder: String
    public var appPort: Int
    /// False: `https: false` in the service's file (no TLS termination for its name); nil: the default.
    public var https: Bool?

    public init(binding: Binding, runID: String, runName: String, holder: String, appPort: Int, https: Bool? = nil) {
        self.https = https
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
    /// Grants the binding, or renews the run's grant of it, once the gateway listens for it. Throws
    /// `LeaseConflict` when another run holds it, `LeaseRefused` when the gateway refuses for
    /// another reason (it can't bind the port), and `LeaseUnavailable` when it can't be asked now.
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

/// The gateway answered, and no: not another run's lease (that is `LeaseConflict`) but a reason
/// asking again will not cure, such as an address it does not serve or a public port another
/// program holds. A run fails on it, where `LeaseUnavailable` only makes it retry.
public struct LeaseRefused: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
