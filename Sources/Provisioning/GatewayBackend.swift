public import Foundation

/// What to create: the lead's `gateway create` fills it from its flags and a fresh invite.
public struct GatewaySpec: Sendable {
    /// The gateway's name, also the name of the VM and of everything made for it.
    public var name: String
    /// The backend's default when nil (`AWS_REGION`, the Azure location, the GCP zone).
    public var region: String?
    /// The backend's default when nil (`t3.micro`, `Standard_B1s`, `e2-micro`).
    public var instanceType: String?
    /// The single-use invite the new node presents to join the mesh.
    public var joinToken: String
    /// The mesh port (TCP links and UDP gossip), opened to the world.
    public var meshPort: Int
    /// Service ports opened to the world (TCP), for the applications the gateway will serve.
    public var servicePorts: [ClosedRange<Int>]
    /// Domains that will point at the gateway.
    public var domains: [String]

    public init(name: String, region: String? = nil, instanceType: String? = nil, joinToken: String, meshPort: Int,
                servicePorts: [ClosedRange<Int>] = [80...80, 443...443, 1024...65535], domains: [String] = []) {
        self.name = name
        self.region = region
        self.instanceType = instanceType
        self.joinToken = joinToken
        self.meshPort = meshPort
        self.servicePorts = servicePorts
        self.domains = domains
    }
}

/// A gateway a backend made (or found when listing), with what it takes to delete it.
public struct ProvisionedGateway: Sendable, Codable, Equatable {
    public var name: String
    /// `aws`, `azure`, `gcp` or `local`.
    public var backend: String
    public var region: String
    /// The public IPv4 address, once known.
    public var address: String?
    /// The backend's state of the VM (`running`, `pending`, `Succeeded`, `RUNNING`, ...).
    public var status: String
    /// Identifiers of what was created (instance ID, security group ID, resource group, ...), by kind.
    public var resources: [String: String]

    public init(name: String, backend: String, region: String, address: String?, status: String, resources: [String: String]) {
        self.name = name
        self.backend = backend
        self.region = region
        self.address = address
        self.status = status
        self.resources = resources
    }
}

/// Progress of a creation or deletion, for the CLI's step-by-step display.
public enum ProvisioningEvent: Sendable, Equatable, CustomStringConvertible {
    /// A cloud resource exists now (`security group`, `sg-0abc`).
    case created(kind: String, id: String)
    /// The VM was asked to start and is booting.
    case booting(instance: String)
    /// The VM has its public address; the first-boot script is now installing Warren.
    case addressAssigned(String)
    /// A cloud resource was removed.
    case deleted(kind: String, id: String)

    public var description: String {
        switch self {
        case .created(let kind, let id): return "created \(kind) \(id)"
        case .booting(let instance): return "booting \(instance)"
        case .addressAssigned(let address): return "public address \(address)"
        case .deleted(let kind, let id): return "deleted \(kind) \(id)"
        }
    }
}

/// A place gateways can be made: a cloud, or this machine.
public protocol GatewayBackend: Sendable {
    /// `aws`, `azure`, `gcp` or `local`.
    var kind: String { get }
    /// Creates the VM and everything it needs, with the first-boot script that starts the gateway
    /// node; returns once the VM has its public address (joining the mesh is the caller's wait).
    /// On failure, removes what it made before throwing.
    func create(_ spec: GatewaySpec, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws -> ProvisionedGateway
    /// Removes the VM and everything created for it.
    func delete(_ gateway: ProvisionedGateway, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws
    /// The gateways this backend made that still exist.
    func list() async throws -> [ProvisionedGateway]
}

extension GatewayBackend {
    /// Runs the steps of a creation, which record in `made` each resource right after the call
    /// that made it (by ID, before the next call); on any error, `cleanUp` removes exactly those
    /// (never a resource found by name or tag, which may be another's) and the error is rethrown
    /// (the first one is the one worth showing). A clean-up that fails is reported with what may be
    /// left, not swallowed. The clean-up runs in a task of its own, so that a cancelled (timed-out)
    /// creation still cleans up.
    func creating(
        _ made: ProvisionedGateway, progress: @escaping @Sendable (ProvisioningEvent) -> Void,
        cleanUp: @escaping @Sendable (ProvisionedGateway) async throws -> Void,
        _ steps: (inout ProvisionedGateway) async throws -> Void
    ) async throws -> ProvisionedGateway {
        var made = made
        do {
            try await steps(&made)
            return made
        } catch {
            let made = made
            let failure = await Task { () -> String? in
                do { try await cleanUp(made); return nil } catch { return "\(error)" }
            }.value
            guard let failure else { throw error }
            throw ProvisioningError.cleanUpFailed(cause: "\(error)", cleanUp: failure,
                                                  left: made.resources.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" })
        }
    }
}

/// Settings and credentials of a backend: the project's secrets over the environment.
public struct BackendSettings: Sendable {
    private let values: [String: String]

    /// `secrets` (filled by the lead from the project's secrets) win over `environment`.
    public init(_ secrets: [String: String] = [:], environment: [String: String] = ProcessInfo.processInfo.environment) {
        values = environment.merging(secrets) { _, secret in secret }
    }

    public subscript(_ key: String) -> String? {
        values[key].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Checks every required setting before any is read, so one error lists all that are missing,
    /// each with how to set it: `settings` are (alternative keys, purpose).
    public func requireAll(_ settings: [(keys: [String], purpose: String)], backend: String) throws {
        let missing = settings.filter { setting in setting.keys.allSatisfy { self[$0] == nil } }
        guard !missing.isEmpty else { return }
        let lines = missing.map { "  \($0.purpose): set \($0.keys.joined(separator: " or "))" }
        throw ProvisioningError.invalidConfiguration("""
            the \(backend) backend is missing \(missing.count) setting\(missing.count == 1 ? "" : "s"):
            \(lines.joined(separator: "\n"))
            Set them in the environment of `warren gateway create`, or store them in the project with \
            `warren project set-backend PROJECT \(backend)` (which reads them from the environment).
            """)
    }

    /// The value of the first of `keys` that is set, or an error naming them all.
    public func required(_ keys: String..., purpose: String) throws -> String {
        for key in keys { if let value = self[key] { return value } }
        throw ProvisioningError.invalidConfiguration("\(purpose) is not set: set \(keys.joined(separator: " or ")) (in the environment, or with `warren project set-backend`)")
    }
}
