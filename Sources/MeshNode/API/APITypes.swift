public import Foundation
public import Trust

// The local API's bodies: JSON over the node's Unix socket (`<state dir>/node.sock`). The CLI is
// its only client; both sides use these types, so they can't drift apart.
//
//   GET    /v1/node                              → NodeInfo
//   GET    /v1/peers                             → [PeerInfo]
//   GET    /v1/gateways                          → [GatewayInfo]
//   GET    /v1/leases                            → [LeaseInfo]
//   GET    /v1/domains                           → [DomainClaimInfo]
//   GET    /v1/projects/{project}/secrets        → [SecretInfo]
//   POST   /v1/projects/{project}/secrets        ← SecretAddRequest → SecretInfo
//   DELETE /v1/projects/{project}/secrets/{name}
//   GET    /v1/runs                              → [RunInfo]
//   POST   /v1/runs                              ← RunRequest → RunInfo (409 with the holder on a lease conflict)
//   GET    /v1/runs/{id}                         → RunInfo
//   GET    /v1/runs/{id}/logs?tail=N&follow=1    → text, streamed while following
//   POST   /v1/runs/{id}/stop                    → RunInfo
//   DELETE /v1/runs/{id}                         → RunInfo (409 while the run is active)
//   POST   /v1/config/check                      ← ConfigCheckRequest → ServiceSummaryInfo (422 with the issues)
//
// Errors are `APIErrorBody` with a status that says what kind of failure it was.

/// The JSON body of an error response.
public struct APIErrorBody: Codable, Sendable, Equatable {
    public var error: String
    /// For a refused configuration: each problem as `file:line:column: message`.
    public var issues: [String]?

    public init(error: String, issues: [String]? = nil) {
        self.error = error
        self.issues = issues
    }
}

public struct NodeInfo: Codable, Sendable, Equatable {
    public var id: String
    public var meshID: String
    public var listen: String
    public var isGateway: Bool
    public var publicAddress: String?
    public var stateDirectory: String
    /// The node's version; nil from a node older than this field.
    public var version: String?
    /// When the agent started, for its uptime.
    public var started: Date?

    public init(
        id: String, meshID: String, listen: String, isGateway: Bool, publicAddress: String?, stateDirectory: String,
        version: String? = nil, started: Date? = nil
    ) {
        self.id = id
        self.meshID = meshID
        self.listen = listen
        self.isGateway = isGateway
        self.publicAddress = publicAddress
        self.stateDirectory = stateDirectory
        self.version = version
        self.started = started
    }
}

public struct PeerInfo: Codable, Sendable, Equatable {
    public var id: String
    public var address: String
    /// alive, suspect, dead or left, as gossip sees it; removed once the mesh removed it for good.
    public var state: String
    public var isGateway: Bool
    /// Whether this node holds an encrypted link to it now.
    public var linked: Bool
    /// True for the row of the node that answered (`warren peers` lists it too); absent otherwise.
    public var isSelf: Bool?

    public init(id: String, address: String, state: String, isGateway: Bool, linked: Bool, isSelf: Bool? = nil) {
        self.id = id
        self.address = address
        self.state = state
        self.isGateway = isGateway
        self.linked = linked
        self.isSelf = isSelf
    }
}

public struct GatewayInfo: Codable, Sendable, Equatable {
    public var name: String
    public var address: String
    public var domains: [String]
    public var node: String
    public var backend: String
    public var region: String?
    public var status: String
    /// `port` or `host:port` of every live binding on it.
    public var bindings: [String]
    /// The release the gateway serves to new gateways (`ReleaseServer`): its SHA-256 and URL.
    public var releaseSHA256: String?
    public var releaseURL: String?

    public init(
        name: String, address: String, domains: [String], node: String, backend: String, region: String?, status: String, bindings: [String],
        releaseSHA256: String? = nil, releaseURL: String? = nil
    ) {
        self.releaseSHA256 = releaseSHA256
        self.releaseURL = releaseURL
        self.name = name
        self.address = address
        self.domains = domains
        self.node = node
        self.backend = backend
        self.region = region
        self.status = status
        self.bindings = bindings
    }
}

public struct LeaseInfo: Codable, Sendable, Equatable {
    public var gateway: String
    public var port: Int
    public var host: String?
    public var run: String
    public var runID: String
    public var node: String
    public var expires: Date
    /// The lease time of the node that answered; holders renew every third of it, so a lease
    /// with less than half of it left has missed renewals.
    public var ttlSeconds: Double?

    public init(_ lease: Lease, ttl: TimeInterval = LeaseTable.defaultTTL) {
        gateway = lease.binding.address
        port = lease.binding.port
        host = lease.binding.host
        run = lease.runName
        runID = lease.runID
        node = lease.holder
        expires = lease.expires
        ttlSeconds = ttl
    }
}

public struct SecretAddRequest: Codable, Sendable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// A secret as anyone may see it: never its value.
public struct SecretInfo: Codable, Sendable, Equatable {
    public var project: String
    public var name: String
    public var version: UInt64

    public init(project: String, name: String, version: UInt64) {
        self.project = project
        self.name = name
        self.version = version
    }
}

public struct RunRequest: Codable, Sendable {
    public var project: String
    /// The configuration file's text and its path as the user named it (for messages).
    public var configuration: String
    public var configurationPath: String
    /// The run's working directory, absolute.
    public var directory: String
    /// The caller's environment, for `${{ env.NAME }}` and `env` entries given without a value.
    public var environment: [String: String]
    /// How long the app may take to listen on its port, in seconds; nil: the node's default (60 s).
    public var timeout: Double?

    public init(
        project: String, configuration: String, configurationPath: String, directory: String, environment: [String: String],
        timeout: Double? = nil
    ) {
        self.timeout = timeout
        self.project = project
        self.configuration = configuration
        self.configurationPath = configurationPath
        self.directory = directory
        self.environment = environment
    }
}

public struct RunInfo: Codable, Sendable, Equatable {
    public typealias State = RunState

    public var id: String
    public var name: String
    public var project: String
    public var state: State
    public var gateway: String?
    public var url: String?
    public var externalPort: Int
    public var appPort: Int
    public var host: String?
    public var node: String
    public var exitCode: Int32?
    public var error: String?
    public var created: Date
    /// What the run waits for now, in words ("the app to listen on port 8000", "gateway
    /// 203.0.113.10 (retrying, last error: …)"); nil when it waits for nothing.
    public var waitingFor: String?
    /// Whether the public can reach the run now; nil for a run that never got that far. With
    /// several gateways: serving when any of them serves it (`gateways` has each one's).
    public var path: RunPath?
    /// Every gateway the run is published on, with its path there (a domain served by several
    /// gateways); nil from nodes that predate it.
    public var gateways: [RunGatewayInfo]?

    public init(
        id: String, name: String, project: String, state: State, gateway: String?, url: String?, externalPort: Int,
        appPort: Int, host: String?, node: String, exitCode: Int32?, error: String?, created: Date,
        waitingFor: String? = nil, path: RunPath? = nil, gateways: [RunGatewayInfo]? = nil
    ) {
        self.waitingFor = waitingFor
        self.path = path
        self.gateways = gateways
        self.id = id
        self.name = name
        self.project = project
        self.state = state
        self.gateway = gateway
        self.url = url
        self.externalPort = externalPort
        self.appPort = appPort
        self.host = host
        self.node = node
        self.exitCode = exitCode
        self.error = error
        self.created = created
    }

    public var isActive: Bool { [.starting, .leasing, .running, .stopping].contains(state) }
}

/// One gateway a run is published on, and the run's path through it.
public struct RunGatewayInfo: Codable, Sendable, Equatable {
    /// The gateway's public address, where clients connect.
    public var address: String
    public var path: RunPath?

    public init(address: String, path: RunPath?) {
        self.address = address
        self.path = path
    }
}

/// A domain claim as `warren domains` lists it: who claimed a domain, and whether that run owns it
/// (the earliest live claim, then the lowest run ID, on every node that has heard the same claims).
public struct DomainClaimInfo: Codable, Sendable, Equatable {
    public var domain: String
    public var run: String
    public var runID: String
    public var node: String
    public var claimed: Date
    public var owner: Bool

    public init(_ claim: DomainClaim, owner: Bool) {
        domain = claim.domain
        run = claim.runName
        runID = claim.runID
        node = claim.holder
        claimed = claim.claimed
        self.owner = owner
    }
}

/// `warren config check` with a node running: the file is resolved with the project's secrets, as
/// `run` would resolve it.
public struct ConfigCheckRequest: Codable, Sendable {
    public var project: String
    public var configuration: String
    public var configurationPath: String
    /// The caller's environment, for `${{ env.NAME }}`.
    public var environment: [String: String]

    public init(project: String, configuration: String, configurationPath: String, environment: [String: String]) {
        self.project = project
        self.configuration = configuration
        self.configurationPath = configurationPath
        self.environment = environment
    }
}

/// A resolved service as it may be shown: secrets masked (`***`) everywhere but in the gateway,
/// which is the address users visit.
public struct ServiceSummaryInfo: Codable, Sendable, Equatable {
    public var name: String?
    public var gateway: String
    public var externalPort: Int
    public var appPort: Int
    public var setup: [String]
    public var commands: [String]
    public var env: [String: String]
    public var domain: String?
    public var ignoredFields: [String]

    public init(_ s: ServiceConfiguration) {
        name = s.name
        gateway = s.gateway?.value ?? "(the mesh's only gateway)"
        externalPort = s.port.external
        appPort = s.port.app
        setup = s.setup.map(\.display)
        commands = s.commands.map(\.display)
        env = Dictionary(s.env.map { ($0.name, $0.value.display) }, uniquingKeysWith: { $1 })
        domain = s.domain?.display
        ignoredFields = s.ignoredFields
    }
}

/// A run's public path: the gateway's listener, the link to this node and the lease that ties them.
public struct RunPath: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum State: String, Codable, Sendable, CaseIterable {
        /// Not leased yet: the app is starting or the gateway has not answered.
        case pending
        /// Leased and renewed: the gateway routes public traffic to the run.
        case serving
        /// The gateway could not be asked since `since`: the last renewal failed, or this node's
        /// last link to it closed (without a link the gateway reaches no run of this node).
        case unreachable
        /// The gateway gave the binding to another run (`holder`).
        case lost
        /// The gateway refused the binding for good (`lastError` says why).
        case refused
        /// The gateway left the mesh: deleted, removed, or its node stopped (`lastError` says
        /// which). Renewals go on, so the run serves again if the same gateway comes back.
        case gone
    }

    public var state: State
    /// When the path entered this state.
    public var since: Date
    /// For `lost`: the run that holds the binding now.
    public var holder: String?
    /// The last error on the path (a failed grant or renewal); kept after the path recovers.
    public var lastError: String?

    public init(state: State, since: Date, holder: String? = nil, lastError: String? = nil) {
        self.state = state
        self.since = since
        self.holder = holder
        self.lastError = lastError
    }

    public var description: String {
        switch state {
        case .pending: return lastError.map { "waiting for the gateway (retrying, last error: \($0))" } ?? "pending"
        case .serving: return "serving"
        case .unreachable:
            return "gateway unreachable since \(Self.time(since))" + (lastError.map { " (retrying, last error: \($0))" } ?? "")
        case .lost: return "lease lost to run \(holder ?? "?")"
        case .refused: return "refused: \(lastError ?? "?")"
        case .gone: return lastError ?? "the gateway left the mesh"
        }
    }

    /// UTC, to the second (RFC 3339).
    static func time(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }
}
