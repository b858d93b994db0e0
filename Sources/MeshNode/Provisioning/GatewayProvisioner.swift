public import Foundation
public import Gossip
public import Provisioning
import Trust

/// A gateway of the mesh as the provisioner waits for it: its announcement and its member's state.
public struct MeshGateway: Sendable, Equatable {
    public var name: String
    /// The gateway's node ID.
    public var node: String
    /// The public address services name it by.
    public var address: String
    /// Its member's state in gossip.
    public var state: MemberState
    /// The release it serves (`--serve-release`), by SHA-256, and where.
    public var releaseSHA256: String?
    public var releaseURL: String?

    public init(name: String, node: String, address: String, state: MemberState, releaseSHA256: String? = nil, releaseURL: String? = nil) {
        self.name = name
        self.node = node
        self.address = address
        self.state = state
        self.releaseSHA256 = releaseSHA256
        self.releaseURL = releaseURL
    }
}

/// `warren gateway create/delete` on the node: picks the backend from the request and the
/// project's secrets, has it make the machine (or local process), waits until the new gateway is
/// alive in gossip, and keeps a record of what it made so `delete` can remove it. A creation that
/// fails, times out or is cancelled removes what it made.
public actor GatewayProvisioner {
    public struct Context: Sendable {
        /// The node's state directory; gateways are recorded (and local ones live) in `gateways/`.
        public var stateDirectory: String
        /// Where a local gateway joins a mesh without admission (this node's listen address, "host:port").
        public var localJoin: String
        /// Where a cloud gateway joins a mesh without admission: this node's advertised address,
        /// which must be reachable from the cloud.
        public var cloudJoin: String
        /// A single-use invite token of role gateway, valid for `ttl` seconds, that this node
        /// signs; nil when its mesh has no admission (the default mesh, never `mesh init`), where
        /// gateways join by address. Throws when this node may not invite (not an admin).
        public var invite: @Sendable (_ ttl: TimeInterval) async throws -> String?
        /// Removes the node (its ID) from the mesh with a signed removal, as `warren mesh remove`
        /// does; false when there is nothing to remove (no admission, or not a member).
        public var removeMember: @Sendable (_ node: String) async throws -> Bool
        /// The project's opened secrets (backend kind and credentials).
        public var projectSettings: @Sendable (_ project: String) async throws -> [String: String]
        /// The state of every member gossip knows, by node ID; a member removed from the mesh is
        /// not listed.
        public var members: @Sendable () async -> [String: MemberState]
        /// The gateways announced by members gossip knows.
        public var gateways: @Sendable () async -> [MeshGateway]
        /// The node's environment, under the caller's and the project's settings.
        public var environment: [String: String]
        /// Makes the backend `kind`; tests swap in fakes.
        public var makeBackend: @Sendable (_ kind: String, _ settings: BackendSettings, _ local: LocalBackend.Configuration) throws -> any GatewayBackend
        public var pollInterval: Duration
        /// The mesh's ACME setting as this node's replica has it (nil: none yet), and a write of it:
        /// `gateway create --acme-…` sets it for every gateway without flags of its own.
        public var acme: @Sendable () async -> GatewayACME? = { nil }
        public var setACME: @Sendable (GatewayACME) async throws -> Void = { _ in }

        public init(
            stateDirectory: String, localJoin: String, cloudJoin: String,
            invite: @escaping @Sendable (TimeInterval) async throws -> String? = { _ in nil },
            removeMember: @escaping @Sendable (String) async throws -> Bool = { _ in false },
            projectSettings: @escaping @Sendable (String) async throws -> [String: String],
            members: @escaping @Sendable () async -> [String: MemberState], gateways: @escaping @Sendable () async -> [MeshGateway],
            environment: [String: String] = ProcessInfo.processInfo.environment,
            makeBackend: @escaping @Sendable (String, BackendSettings, LocalBackend.Configuration) throws -> any GatewayBackend = GatewayProvisioner.defaultBackend,
            pollInterval: Duration = .milliseconds(200)
        ) {
            self.stateDirectory = stateDirectory
            self.localJoin = localJoin
            self.cloudJoin = cloudJoin
            self.invite = invite
            self.removeMember = removeMember
            self.projectSettings = projectSettings
            self.members = members
            self.gateways = gateways
            self.environment = environment
            self.makeBackend = makeBackend
            self.pollInterval = pollInterval
        }
    }

    /// The backends a gateway can be made with.
    public static let kinds = ["local"] + GatewayBackends.cloudKinds
    /// How long a new gateway has to join: a local process starts in seconds; a VM boots and
    /// downloads Warren first.
    public static let defaultTimeout: [String: Duration] = ["local": .seconds(60)]
    public static let defaultCloudTimeout: Duration = .seconds(600)
    /// How much longer than the creation's timeout a gateway's invite stays valid: the token is
    /// issued before the VM is made, and a first boot may run a little late.
    public static let inviteMargin: Duration = .seconds(300)

    public static let defaultBackend: @Sendable (String, BackendSettings, LocalBackend.Configuration) throws -> any GatewayBackend = { kind, settings, local in
        kind == "local" ? LocalBackend(configuration: local) : try GatewayBackends.make(kind: kind, settings: settings)
    }

    /// A checked request, ready to run.
    public struct Creation: Sendable {
        public var project: String
        public var spec: GatewaySpec
        public var timeout: Duration
        /// The member the gateway dials first: the invite's first address, or the join address.
        public var joinsThrough: String
        /// Whether the gateway joins with a single-use invite (a mesh with admission).
        public var invited: Bool
        /// Where the gateway downloads the release from, when a gateway of the mesh serves it.
        public var releaseSource: String?
        var backend: any GatewayBackend
        public var backendKind: String { backend.kind }
    }

    private let context: Context
    private var inFlight: [String: Task<GatewayRecord, any Error>] = [:]

    public init(context: Context) {
        self.context = context
    }

    var directory: String { context.stateDirectory + "/gateways" }

    /// Local gateways live under `directory` and run `$WARREN_GATEWAY_BINARY`, else this binary.
    private func localConfiguration(address: String?) -> LocalBackend.Configuration {
        LocalBackend.Configuration(
            directory: directory, binary: context.environment[LocalBackend.binaryVariable].flatMap { $0.isEmpty ? nil : $0 },
            address: address, environment: context.environment)
    }

    // MARK: - Create

    /// Checks `request` and configures its backend. The errors are the caller's to fix (an
    /// unknown backend, a missing credential, a name taken), before anything is made.
    public func prepare(_ request: GatewayCreateRequest) async throws -> Creation {
        let secrets: [String: String]
        do {
            secrets = try await context.projectSettings(request.project)
        } catch {
            throw ProvisioningError.invalidConfiguration("the settings of project \(request.project) could not be read: \(error)")
        }
        let kind = (request.backend ?? secrets["WARREN_BACKEND"] ?? "local").lowercased()
        guard Self.kinds.contains(kind) else {
            throw ProvisioningError.invalidConfiguration("unknown gateway backend \(kind.debugDescription): use one of \(Self.kinds.joined(separator: ", "))")
        }
        if request.address != nil, kind != "local" {
            throw ProvisioningError.invalidConfiguration("--address is for the local backend; \(kind) gateways get their address from the cloud")
        }
        let taken = await takenNames()
        let name: String
        if let given = request.name {
            try GatewayName.validate(given)
            guard !taken.contains(given) else {
                throw ProvisioningError.invalidConfiguration("a gateway named \(given) exists already: choose another --name, or delete it with `warren gateway delete \(given)`")
            }
            name = given
        } else {
            name = GatewayName.generate(avoiding: taken)
        }
        for domain in request.domains { try GatewayDomain.validate(domain) }
        try await meshACME(request)
        var environment = installedRelease().merging(context.environment.merging(request.environment) { _, caller in caller }) { _, set in set }
        var releaseSource: (url: String, note: String)?
        if kind != "local" { releaseSource = await servedRelease(secrets: secrets, request: request, environment: environment) }
        if let releaseSource { environment["WARREN_RELEASE_URL"] = releaseSource.url }
        let settings = BackendSettings(secrets, environment: environment)
        let backend = try context.makeBackend(kind, settings, localConfiguration(address: request.address))
        var timeout = Self.defaultTimeout[kind] ?? Self.defaultCloudTimeout
        if let seconds = request.timeoutSeconds {
            guard seconds > 0, seconds <= 86_400 else {
                throw ProvisioningError.invalidConfiguration("--timeout must be between 0 and 86400 seconds, got \(seconds)")
            }
            timeout = .milliseconds(Int64(seconds * 1000))
        }
        // A mesh with admission admits the gateway with a single-use invite this node signs. A
        // mesh never initialised with `mesh init` (the default mesh, no roster) has no invites:
        // there the gateway joins by address, as every node of that mesh does.
        let token = try await invite(ttl: timeout + Self.inviteMargin)
        let address = kind == "local" ? context.localJoin : context.cloudJoin
        let spec = GatewaySpec(
            name: name, region: request.region, instanceType: request.instanceType,
            joinToken: token ?? address, meshPort: AgentOptions.defaultPort, domains: request.domains)
        let joinsThrough = token.flatMap { try? InviteToken(encoded: $0) }?.addresses.first ?? address
        return Creation(project: request.project, spec: spec, timeout: timeout, joinsThrough: joinsThrough, invited: token != nil,
                        releaseSource: releaseSource?.note, backend: backend)
    }

    /// The mesh's ACME setting after the request: its flags written as the mesh's setting, which
    /// the new gateway (started without ACME flags) follows as every such gateway does; the
    /// setting unchanged without them (none: no TLS termination). A flag given alone keeps the
    /// others from the setting.
    @discardableResult
    func meshACME(_ request: GatewayCreateRequest) async throws -> GatewayACME? {
        let kept = await context.acme()
        guard request.acmeEmail != nil || request.acmeDirectory != nil || request.acmeCaBundle != nil else { return kept }
        let acme = try GatewayACME(directory: request.acmeDirectory ?? kept?.directory, email: request.acmeEmail ?? kept?.email,
                                   caBundlePEM: request.acmeCaBundle ?? kept?.caBundlePEM)
        guard acme != kept else { return acme }
        do {
            try await context.setACME(acme)
        } catch {
            throw ProvisioningError.invalidConfiguration(
                "the mesh's ACME setting could not be written (in a mesh with admission only an admin sets it): \(error)")
        }
        return acme
    }

    /// A gateway of the mesh that serves the release the new gateway is to install (by its
    /// SHA-256: the caller's, or the one this node was installed from), unless a release URL was
    /// given (the caller's environment, this node's, or the project's settings): then the user's
    /// URL stands. Gateways serve the release they were installed from (`ReleaseServer`).
    func servedRelease(secrets: [String: String], request: GatewayCreateRequest, environment: [String: String]) async -> (url: String, note: String)? {
        let given = [secrets, request.environment, context.environment].compactMap { $0["WARREN_RELEASE_URL"] }.first { !$0.isEmpty }
        guard given == nil else { return nil }
        guard let wanted = (secrets["WARREN_RELEASE_SHA256"].flatMap { $0.isEmpty ? nil : $0 } ?? environment["WARREN_RELEASE_SHA256"])?.lowercased() else {
            return nil
        }
        let offers = await context.gateways().filter { $0.state == .alive && $0.releaseSHA256 == wanted && $0.releaseURL != nil }
        guard let source = offers.min(by: { $0.name < $1.name }), let url = source.releaseURL else { return nil }
        return (url, "the release (SHA-256 \(wanted.prefix(12))…) comes from gateway \(source.name) at \(url)")
    }

    /// The release this node was installed from by a gateway's first boot (its URL and SHA-256,
    /// which the script records in the state directory): what the gateways it creates install,
    /// unless the settings say otherwise. Empty on a node installed by other means.
    func installedRelease() -> [String: String] {
        var release: [String: String] = [:]
        for (key, file) in [("WARREN_RELEASE_URL", FirstBootScript.releaseURLFile), ("WARREN_RELEASE_SHA256", FirstBootScript.releaseSHA256File)] {
            let path = URL(fileURLWithPath: context.stateDirectory).appendingPathComponent(file).path
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
                if !value.isEmpty { release[key] = value }
            }
        }
        return release
    }

    /// The gateway's invite, or nil without admission; a node that may not invite is told so
    /// before anything is made.
    private func invite(ttl: Duration) async throws -> String? {
        do {
            return try await context.invite(Double(ttl.components.seconds) + Double(ttl.components.attoseconds) / 1e18)
        } catch {
            throw ProvisioningError.invalidConfiguration(
                "a gateway joins the mesh with an invite this node signs, and it cannot: \(Self.describe(error)). Run `warren gateway create` on an admin's node (`warren mesh members` shows the roles)")
        }
    }

    /// Makes the gateway and waits until it is alive in gossip, reporting each step. On failure,
    /// timeout or cancellation of the calling task, removes what was made and throws.
    public func create(_ creation: Creation, progress: @escaping @Sendable (GatewayProgress) -> Void) async throws -> GatewayRecord {
        let name = creation.spec.name
        // Checked again here, atomically with the start: two creations of one name may have been prepared.
        guard inFlight[name] == nil, (try? record(named: name)) ?? nil == nil else {
            throw GatewayCreationError(description: "a gateway named \(name) is being created or exists already: choose another --name")
        }
        let task = Task { try await self.run(creation, progress: progress) }
        inFlight[name] = task
        defer { inFlight[name] = nil }
        return try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    }

    private func run(_ creation: Creation, progress: @escaping @Sendable (GatewayProgress) -> Void) async throws -> GatewayRecord {
        let spec = creation.spec
        let backend = creation.backend
        let pending = ProvisionedGateway(name: spec.name, backend: backend.kind, region: spec.region ?? "-", address: nil, status: "creating", resources: [:])
        var note = ""
        if backend.kind != "local" {
            let through = creation.joinsThrough
            note = "; it joins the mesh\(creation.invited ? " with a single-use invite" : "") through \(through)"
            if through.hasPrefix("127.") || through.hasPrefix("[::1]") || through.hasPrefix("localhost") {
                note += " (a loopback address a cloud VM cannot reach: start this node with --advertise PUBLIC-ADDRESS:PORT)"
            }
        }
        // One `accepted` event, the one that names the gateway (the CLI cancels by that name).
        if let source = creation.releaseSource { note += "; \(source)" }
        progress(GatewayProgress(step: .accepted, message: "creating \(spec.name) with the \(backend.kind) backend\(note)",
                                 gateway: GatewayRecord(gateway: pending, project: creation.project, created: Date())))
        let made: ProvisionedGateway
        do {
            made = try await backend.create(spec) { event in progress(Self.progress(for: event)) }
        } catch {
            throw GatewayCreationError(description: "creating \(spec.name) with the \(backend.kind) backend failed: \(Self.describe(error))")
        }
        let record = GatewayRecord(gateway: made, project: creation.project, created: Date())
        do {
            try Task.checkCancellation()
            try save(record)
            return try await waitUntilReady(record, creation: creation, progress: progress)
        } catch {
            let why = Self.describe(error)
            progress(GatewayProgress(step: .cleanup, message: "removing what was made for \(spec.name)"))
            // A fresh task: the cleanup must run to its end even when this one is cancelled.
            let cleanup = Task { try await self.remove(record, backend: backend, progress: progress) }
            do {
                try await cleanup.value
            } catch {
                throw GatewayCreationError(
                    description: "\(why); removing what was made failed too: \(Self.describe(error)). Left behind: \(Self.describe(made.resources))")
            }
            throw GatewayCreationError(description: "\(why); removed what was made for \(spec.name)")
        }
    }

    private func waitUntilReady(
        _ record: GatewayRecord, creation: Creation, progress: @escaping @Sendable (GatewayProgress) -> Void
    ) async throws -> GatewayRecord {
        let (timeout, backend) = (creation.timeout, creation.backend)
        let made = record.gateway
        let nodeID = made.resources["node"]
        let local = backend as? LocalBackend
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var joined = false
        while true {
            try Task.checkCancellation()
            if let nodeID, !joined, await context.members()[nodeID] == .alive {
                joined = true
                progress(GatewayProgress(step: .joined, message: "node \(nodeID.prefix(8)) joined the mesh"))
            }
            let entry = await context.gateways().first { g in
                g.state == .alive && (nodeID.map { g.node == $0 } ?? (g.name == made.name || (made.address != nil && g.address == made.address)))
            }
            if let entry {
                if !joined { progress(GatewayProgress(step: .joined, message: "node \(entry.node.prefix(8)) joined the mesh")) }
                var ready = record
                ready.gateway.status = "ready"
                ready.gateway.address = entry.address
                ready.gateway.resources["node"] = entry.node
                try? save(ready)
                progress(GatewayProgress(step: .ready, message: "gateway \(made.name) is ready at \(entry.address)", gateway: ready))
                return ready
            }
            if let local, !local.isRunning(made.name) {
                let tail = local.logTail(made.name)
                throw ProvisioningError.invalidConfiguration("the gateway node \(made.name) exited before joining the mesh\(tail.isEmpty ? "" : "; its log ends with:\n\(tail)")")
            }
            guard clock.now < deadline else {
                let hint = local.map { "; its log ends with:\n\($0.logTail(made.name))" }
                    ?? " (it joins through \(creation.joinsThrough), which must be reachable from the VM; its console log tells more)"
                throw ProvisioningError.timedOut("gateway \(made.name) did not join the mesh within \(timeout)\(hint)")
            }
            try await Task.sleep(for: context.pollInterval)
        }
    }

    // MARK: - Delete

    /// Removes a gateway this node made: cancels its creation if it is still running, else has
    /// its backend remove the machine and everything made for it, then forgets it.
    public func delete(name: String, environment: [String: String], progress: @escaping @Sendable (GatewayProgress) -> Void) async throws {
        if let task = inFlight[name] {
            progress(GatewayProgress(step: .cleanup, message: "cancelling the creation of \(name)"))
            task.cancel()
            _ = try? await task.value
            progress(GatewayProgress(step: .deleted, message: "creation of \(name) cancelled; what was made is removed"))
            return
        }
        try await checkDeletable(name)
        guard let record = try record(named: name) else { throw ProvisioningError.notFound(name) }
        let secrets = (try? await context.projectSettings(record.project)) ?? [:]
        let settings = BackendSettings(secrets, environment: context.environment.merging(environment) { _, caller in caller })
        let backend = try context.makeBackend(record.gateway.backend, settings, localConfiguration(address: nil))
        let task = Task { try await self.remove(record, backend: backend, progress: progress) }
        try await task.value
        progress(GatewayProgress(step: .deleted, message: "gateway \(name) deleted", gateway: record))
    }

    /// Throws unless `name` is a gateway this node made or is making: `ProvisioningError.notFound`,
    /// or a refusal that names the node running a gateway made elsewhere.
    public func checkDeletable(_ name: String) async throws {
        if inFlight[name] != nil { return }
        do {
            if try record(named: name) != nil { return }
        } catch {
            throw GatewayRefusal.notDeletable(Self.describe(error))
        }
        if let known = await context.gateways().first(where: { $0.name == name }) {
            throw GatewayRefusal.notDeletable(
                "gateway \(name) was not created by this node (it runs as node \(known.node.prefix(8)) at \(known.address)): delete it from the node that created it, or stop its `warren node start`")
        }
        throw ProvisioningError.notFound(name)
    }

    /// The backend's delete, then the member, then the record. A local gateway's directory holds
    /// the record too.
    private func remove(_ record: GatewayRecord, backend: any GatewayBackend, progress: @escaping @Sendable (GatewayProgress) -> Void) async throws {
        do {
            try await backend.delete(record.gateway) { event in
                progress(GatewayProgress(step: .cleanup, message: event.description))
            }
        } catch ProvisioningError.notFound {
            // Gone already (removed by hand, or a half-made local gateway): forget it.
        }
        // With its machine gone, the gateway leaves the roster too (a signed removal, as `warren
        // mesh remove` writes), so it shows neither as a member nor as a gateway that left.
        var memberFailure: String?
        if let node = record.gateway.resources["node"] {
            do {
                if try await context.removeMember(node) {
                    progress(GatewayProgress(step: .cleanup, message: "removed node \(node.prefix(8)) from the mesh"))
                }
            } catch {
                memberFailure = "gateway \(record.name) is deleted, but its node could not be removed from the mesh: \(Self.describe(error)); remove it with `warren mesh remove \(node)`"
            }
        }
        try? FileManager.default.removeItem(atPath: directory + "/" + record.name)
        if let memberFailure { throw ProvisioningError.invalidConfiguration(memberFailure) }
    }

    // MARK: - Restart

    /// What starting a local gateway again did.
    public struct LocalRestart: Sendable {
        public var name: String
        /// The new process; nil when it was running already.
        public var pid: Int32?
        public var failure: String?
    }

    /// Starts again the local gateways this node made whose processes are gone (the machine
    /// rebooted, or they were killed); the node calls it when it starts.
    public func restartLocalGateways() -> [LocalRestart] {
        let local = LocalBackend(configuration: localConfiguration(address: nil))
        // Only gateways that joined once: one whose creation was cut short holds no membership
        // and would wait forever for an invite it no longer has (`gateway delete` removes it).
        let joined = records().filter { $0.gateway.backend == "local" && $0.gateway.status == "ready" && inFlight[$0.name] == nil }
        return joined.map { record in
            do {
                return LocalRestart(name: record.name, pid: try local.restart(record.name))
            } catch {
                return LocalRestart(name: record.name, failure: Self.describe(error))
            }
        }
    }

    // MARK: - Records

    /// The gateways this node made, as last recorded.
    public func records() -> [GatewayRecord] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().compactMap { try? record(named: $0) }
    }

    private func record(named name: String) throws -> GatewayRecord? {
        guard (try? GatewayName.validate(name)) != nil,
              let data = FileManager.default.contents(atPath: directory + "/" + name + "/gateway.json")
        else { return nil }
        return try APIJSON.makeDecoder().decode(GatewayRecord.self, from: data)
    }

    private func save(_ record: GatewayRecord) throws {
        let dir = directory + "/" + record.name
        try PrivateFiles.ensureDirectory(directory)
        try PrivateFiles.ensureDirectory(dir)
        try APIJSON.makeEncoder().encode(record).write(to: URL(fileURLWithPath: dir + "/gateway.json"), options: .atomic)
    }

    private func takenNames() async -> Set<String> {
        var names = Set(await context.gateways().map(\.name))
        names.formUnion(inFlight.keys)
        names.formUnion(((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []))
        return names
    }

    // MARK: - Wording

    static func progress(for event: ProvisioningEvent) -> GatewayProgress {
        switch event {
        case .created: return GatewayProgress(step: .resources, message: event.description)
        case .booting, .addressAssigned: return GatewayProgress(step: .booting, message: event.description)
        case .deleted: return GatewayProgress(step: .cleanup, message: event.description)
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case is CancellationError: return "cancelled"
        default: return "\(error)"
        }
    }

    static func describe(_ resources: [String: String]) -> String {
        resources.isEmpty ? "nothing recorded" : resources.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
}

/// Why a request to create or delete a gateway is refused before anything is made or removed.
public enum GatewayRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The creation request can't be carried out as asked (a backend, credential or name).
    case invalidRequest(String)
    /// The gateway exists but this node may not delete it.
    case notDeletable(String)

    public var description: String {
        switch self {
        case .invalidRequest(let text), .notDeletable(let text): return text
        }
    }
}

/// Why a creation failed, and what became of what it had made.
public struct GatewayCreationError: Error, CustomStringConvertible {
    public var description: String
}
