public import Foundation
public import Provisioning

// The local API's gateway provisioning bodies (beside APITypes.swift's table):
//
//   POST   /v1/gateways                ← GatewayCreateRequest → NDJSON of GatewayProgress, the last
//                                        `ready` or `failed` (400 before any line for a bad request)
//   DELETE /v1/gateways/{name}         ← GatewayDeleteRequest (optional) → NDJSON of GatewayProgress,
//                                        the last `deleted` or `failed` (404/409 before any line)
//   GET    /v1/gateways/provisioned    → [GatewayRecord]: the gateways this node made
//
// Creation runs as long as its request: a client that goes away (Ctrl-C) cancels it, and the node
// removes what it made.

/// `warren gateway create`.
public struct GatewayCreateRequest: Codable, Sendable {
    public var project: String
    /// `local`, `aws`, `azure` or `gcp`; nil takes the project's `WARREN_BACKEND` secret, else `local`.
    public var backend: String?
    public var name: String?
    public var region: String?
    public var instanceType: String?
    /// Domains that will point at the gateway (`--domain`, repeatable).
    public var domains: [String]
    /// The loopback address of a local gateway; nil picks a free one.
    public var address: String?
    /// How long to wait for the gateway to join the mesh; nil is the backend's default.
    public var timeoutSeconds: Double?
    /// The caller's backend settings (`GatewayCreateRequest.backendEnvironment`), under the
    /// project's secrets and over the node's own environment.
    public var environment: [String: String]
    /// `--acme-email`, `--acme-directory` and `--acme-ca-bundle` (the file's PEM): the mesh's ACME
    /// setting, which every gateway without ACME flags of its own follows; nil keeps the mesh's.
    public var acmeEmail: String?
    public var acmeDirectory: String?
    public var acmeCaBundle: String?

    public init(project: String, backend: String? = nil, name: String? = nil, region: String? = nil, instanceType: String? = nil,
                domains: [String] = [], address: String? = nil, timeoutSeconds: Double? = nil, environment: [String: String] = [:],
                acmeEmail: String? = nil, acmeDirectory: String? = nil, acmeCaBundle: String? = nil) {
        self.acmeCaBundle = acmeCaBundle
        self.acmeEmail = acmeEmail
        self.acmeDirectory = acmeDirectory
        self.project = project
        self.backend = backend
        self.name = name
        self.region = region
        self.instanceType = instanceType
        self.domains = domains
        self.address = address
        self.timeoutSeconds = timeoutSeconds
        self.environment = environment
    }

    /// The variables of `environment` that configure backends (credentials, regions, endpoints,
    /// the release URL): what the CLI passes on, and what `project set-backend` stores.
    public static func backendEnvironment(_ environment: [String: String]) -> [String: String] {
        environment.filter { key, value in
            !value.isEmpty && (["AWS_", "AZURE_", "GOOGLE_", "GCP_"].contains { key.hasPrefix($0) } || key == "WARREN_RELEASE_URL" || key == "WARREN_RELEASE_SHA256")
        }
    }
}

/// `warren gateway delete`: the caller's backend settings, as for creation.
public struct GatewayDeleteRequest: Codable, Sendable {
    public var environment: [String: String]

    public init(environment: [String: String] = [:]) {
        self.environment = environment
    }
}

/// One line of a creation's or deletion's progress.
public struct GatewayProgress: Codable, Sendable, Equatable {
    public enum Step: String, Codable, Sendable {
        /// The request is accepted: `gateway` names it and its backend.
        case accepted
        /// A resource exists (a cloud resource, the local state directory).
        case resources
        /// The machine or process is starting.
        case booting
        /// The new node is an alive member of the mesh.
        case joined
        /// Its gateway entry is alive in gossip: `gateway` holds the result.
        case ready
        /// Something made is being removed (after a failure, or by a deletion).
        case cleanup
        /// A deletion finished.
        case deleted
        /// The operation failed; `error` says why and what was cleaned up.
        case failed
    }

    public var step: Step
    public var message: String
    public var gateway: GatewayRecord?
    public var error: String?

    public init(step: Step, message: String, gateway: GatewayRecord? = nil, error: String? = nil) {
        self.step = step
        self.message = message
        self.gateway = gateway
        self.error = error
    }
}

/// A gateway this node made, kept in `<state>/gateways/<name>/gateway.json` so `delete` knows
/// which backend, project and resources it has.
public struct GatewayRecord: Codable, Sendable, Equatable {
    public var gateway: ProvisionedGateway
    /// The project whose backend settings made it (and will delete it).
    public var project: String
    public var created: Date

    public init(gateway: ProvisionedGateway, project: String, created: Date) {
        self.gateway = gateway
        self.project = project
        self.created = created
    }

    public var name: String { gateway.name }
}
