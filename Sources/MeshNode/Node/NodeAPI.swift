import Foundation
import Trust

/// A project's secrets as the node serves them: sealed at rest and in gossip, opened only for the
/// project's members.
public protocol SecretsService: Sendable {
    func add(project: String, name: String, value: String) async throws -> SecretInfo
    func list(project: String) async throws -> [SecretInfo]
    func delete(project: String, name: String) async throws
    /// The opened values, for interpolating a configuration.
    func values(project: String) async throws -> SecretValues
}

/// The routes of the local API (see APITypes.swift for the table), over the node's parts.
public struct NodeAPI: Sendable {
    public var node: @Sendable () async -> NodeInfo
    public var peers: @Sendable () async -> [PeerInfo]
    public var gateways: @Sendable () async -> [GatewayInfo]
    public var leases: @Sendable () async -> [LeaseInfo]
    /// The live domain claims this node has heard (`warren domains`).
    public var domains: @Sendable () async -> [DomainClaimInfo]
    public var secrets: any SecretsService
    public var runs: RunManager
    /// `gateway create/delete`.
    public var provisioner: GatewayProvisioner
    /// The certificates this gateway terminates TLS with (empty on other nodes).
    public var certificates: @Sendable () async -> [CertificateStatus]

    public init(
        node: @escaping @Sendable () async -> NodeInfo, peers: @escaping @Sendable () async -> [PeerInfo],
        gateways: @escaping @Sendable () async -> [GatewayInfo], leases: @escaping @Sendable () async -> [LeaseInfo],
        domains: @escaping @Sendable () async -> [DomainClaimInfo] = { [] },
        certificates: @escaping @Sendable () async -> [CertificateStatus] = { [] },
        secrets: any SecretsService, runs: RunManager, provisioner: GatewayProvisioner
    ) {
        self.node = node
        self.peers = peers
        self.gateways = gateways
        self.leases = leases
        self.domains = domains
        self.certificates = certificates
        self.secrets = secrets
        self.runs = runs
        self.provisioner = provisioner
    }

    public var router: APIRouter {
        var r = APIRouter()
        let api = self
        r.get("/v1/node") { _ in try .json(await api.node()) }
        r.get("/v1/peers") { _ in try .json(await api.peers()) }
        r.get("/v1/gateways") { _ in try .json(await api.gateways()) }
        r.get("/v1/leases") { _ in try .json(await api.leases()) }
        r.get("/v1/domains") { _ in try .json(await api.domains()) }
        r.get("/v1/certs") { _ in try .json(await api.certificates()) }
        addGatewayProvisioningRoutes(to: &r)

        r.get("/v1/projects/:project/secrets") { req in
            try .json(try await api.secrets.list(project: req.parameter("project")))
        }
        r.post("/v1/projects/:project/secrets") { req in
            let body = try req.decode(SecretAddRequest.self)
            guard SecretName.isValid(body.name) else {
                throw APIError.badRequest("`\(body.name)` is not a valid secret name: use letters, digits and _, not starting with a digit")
            }
            return try .json(try await api.secrets.add(project: req.parameter("project"), name: body.name, value: body.value), status: 201)
        }
        r.delete("/v1/projects/:project/secrets/:name") { req in
            try await api.secrets.delete(project: req.parameter("project"), name: req.parameter("name"))
            return .noContent
        }

        r.post("/v1/config/check") { req in
            let body = try req.decode(ConfigCheckRequest.self)
            let values = try await api.secrets.values(project: body.project)
            let service: ServiceConfiguration
            do {
                service = try ServiceConfigurationParser(secrets: values, environment: body.environment)
                    .parse(yaml: body.configuration, file: body.configurationPath)
            } catch let error as ConfigurationError {
                let n = error.issues.count
                throw APIError(status: 422, "\(body.configurationPath): \(n) problem\(n == 1 ? "" : "s") found",
                               issues: error.issues.map { "\($0.file):\($0.line):\($0.column): error: \($0.message)" })
            }
            return try .json(ServiceSummaryInfo(service))
        }

        r.get("/v1/runs") { _ in try .json(await api.runs.list()) }
        r.post("/v1/runs") { req in
            try .json(try await api.runs.submit(req.decode(RunRequest.self)), status: 201)
        }
        r.get("/v1/runs/:id") { req in try .json(try await api.runs.get(req.parameter("id"))) }
        r.post("/v1/runs/:id/stop") { req in try .json(try await api.runs.stop(req.parameter("id"))) }
        r.delete("/v1/runs/:id") { req in try .json(try await api.runs.remove(req.parameter("id"))) }
        r.get("/v1/runs/:id/logs") { req in
            let (log, id) = try await api.runs.log(req.parameter("id"))
            let tail = Int(req.query["tail"] ?? "") ?? 200
            let follow = req.query["follow"] == "1"
            // `from=start`: the whole log, then what follows (an attached `warren run` misses nothing).
            let fromStart = req.query["from"] == "start"
            let runs = api.runs
            return APIResponse(body: .stream { writer in
                if !fromStart {
                    let lines = log.tail(lines: tail)
                    if !lines.isEmpty { try await writer.write(lines.joined(separator: "\n") + "\n") }
                }
                guard follow else { return }
                for try await chunk in log.follow(from: fromStart ? .beginning : .end, isFinished: { await !runs.isActive(id) }) {
                    try await writer.write(chunk)
                }
            })
        }
        return r
    }
}
