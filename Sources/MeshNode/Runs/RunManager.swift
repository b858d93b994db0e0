public import Foundation
public import Logging
import Provisioning

/// The runs of this node, from `warren run` to the end: parse the configuration with the project's
/// secrets, find the gateway and check the binding, start the commands, wait for the app's port,
/// lease the binding from the gateway and keep renewing it, release it when the run ends.
///
/// Every state change is saved before it is reported, so a node killed at any point finds its
/// runs again (`recover`).
public actor RunManager {
    /// What the manager needs from the rest of the node.
    public struct Context: Sendable {
        public var nodeID: String
        /// The secrets of a project, opened (members only).
        public var secrets: @Sendable (_ project: String) async throws -> SecretValues
        /// The gateways the mesh knows now.
        public var gateways: @Sendable () async -> [KnownGateway]
        /// This node's replica of every gateway's leases (gossiped), for refusing early.
        public var leases: @Sendable () async -> LeaseTable
        public var authority: any LeaseAuthority
        public var lookup: GatewayResolver.Lookup
        public var portTimeout: Duration
        public var renewInterval: Duration

        public init(
            nodeID: String, secrets: @escaping @Sendable (String) async throws -> SecretValues,
            gateways: @escaping @Sendable () async -> [KnownGateway], leases: @escaping @Sendable () async -> LeaseTable,
            authority: any LeaseAuthority, lookup: @escaping GatewayResolver.Lookup = GatewayResolver.systemLookup,
            portTimeout: Duration = .seconds(60), renewInterval: Duration = .seconds(LeaseTable.defaultTTL / 3)
        ) {
            self.nodeID = nodeID
            self.secrets = secrets
            self.gateways = gateways
            self.leases = leases
            self.authority = authority
            self.lookup = lookup
            self.portTimeout = portTimeout
            self.renewInterval = renewInterval
        }
    }

    /// What is saved with a run besides the store's columns. Never a secret's value: the raw
    /// configuration is kept, not the interpolated one.
    struct Details: Codable {
        var configuration: String
        var configurationPath: String
        var binding: Binding
        var appPort: Int
        var url: String
    }

    private let store: StateStore
    private let supervisor: RunSupervisor
    private let context: Context
    private let logger: Logger
    private var records: [String: RunRecord] = [:]
    private var details: [String: Details] = [:]
    private var tasks: [String: Task<Void, Never>] = [:]

    public init(store: StateStore, supervisor: RunSupervisor, context: Context, logger: Logger) {
        self.store = store
        self.supervisor = supervisor
        self.context = context
        self.logger = logger
    }

    // MARK: Starting

    /// Validates and starts a run; returns at once in state `starting` while the rest goes on.
    public func submit(_ request: RunRequest) async throws(APIError) -> RunInfo {
        let secrets: SecretValues
        do {
            secrets = try await context.secrets(request.project)
        } catch {
            throw APIError(status: 403, "\(error)")
        }
        let parser = ServiceConfigurationParser(secrets: secrets, environment: request.environment)
        let service: ServiceConfiguration
        do {
            service = try parser.parse(yaml: request.configuration, file: request.configurationPath)
        } catch {
            throw APIError(status: 400, "\(request.configurationPath) is not a valid service configuration",
                           issues: error.issues.map(\.description))
        }
        let binding: Binding
        do {
            binding = try GatewayResolver(gateways: await context.gateways(), lookup: context.lookup)
                .binding(gateway: service.gateway?.value, domain: service.domain?.value, port: service.port.external)
        } catch {
            throw APIError(status: 400, error.description)
        }
        let id = Self.makeID()
        let active = Set(records.values.filter(\.state.isActive).map(\.name))
        let name = service.name ?? RandomName.make(avoiding: Set(records.values.map(\.name)))
        if active.contains(name) {
            throw .conflict("a run named \"\(name)\" is already active on this node; stop it (`warren stop \(name)`) or change `name:`")
        }
        // Refuse before starting anything when this node already knows the holder. A lease of a
        // run of this node that has ended was released (the gateway forgot it); only gossip may
        // not have caught up, so that copy does not count.
        let ended = Set(records.values.filter { !$0.state.isActive }.map(\.id))
        let known = LeaseTable(leases: await context.leases().leases.filter { !ended.contains($0.runID) })
        if let holder = known.conflict(for: binding, runID: id, now: Date()) {
            throw .conflict(LeaseConflict(requested: binding, holder: holder).description)
        }

        let url = Self.url(for: binding)
        let record = RunRecord(
            id: id, name: name, project: request.project,
            configJSON: Self.encode(Details(configuration: request.configuration, configurationPath: request.configurationPath,
                                            binding: binding, appPort: service.port.app, url: url)),
            directory: request.directory, state: .starting, logPath: supervisor.log(id: id).path)
        details[id] = Details(configuration: request.configuration, configurationPath: request.configurationPath,
                              binding: binding, appPort: service.port.app, url: url)
        try await save(record)

        var environment = Dictionary(service.env.map { ($0.name, $0.value.value) }, uniquingKeysWith: { $1 })
        environment["WARREN_RUN_NAME"] = name
        let spec = RunSpec(id: id, setup: service.setup.map(\.value), commands: service.commands.map(\.value),
                           directory: request.directory, environment: environment)
        do {
            let started = try await supervisor.start(spec)
            var r = record
            r.pid = started.pid
            r.pgid = started.pgid
            try await save(r)
        } catch {
            try await finish(id, state: .failed, detail: "the commands could not be started: \(error)")
            throw .internalError("the commands of \(name) could not be started: \(error)")
        }
        logger.info("run started", metadata: ["run.id": "\(id)", "run.name": "\(name)", "lease.binding": "\(binding)"])
        tasks[id] = Task { await self.bringUp(id) }
        return info(records[id]!)
    }

    /// Waits for the app, leases the binding, then renews it until the run ends.
    private func bringUp(_ id: String) async {
        guard let d = details[id], let record = records[id] else { return }
        do {
            try await supervisor.waitForPort(id: id, port: d.appPort, timeout: context.portTimeout)
        } catch {
            if Task.isCancelled { return }
            await abandon(id, reason: "\(error)", gracePeriod: .seconds(2))
            return
        }
        try? await setState(id, .leasing)
        let request = LeaseRequest(binding: d.binding, runID: id, runName: record.name, holder: context.nodeID, appPort: d.appPort)
        do {
            _ = try await context.authority.grant(request)
        } catch {
            if Task.isCancelled { return }
            await abandon(id, reason: "\(error)", gracePeriod: .seconds(2))
            return
        }
        try? await setState(id, .running)
        logger.info("run is serving", metadata: ["run.id": "\(id)", "run.url": "\(d.url)"])
        await keepRenewing(request)
    }

    /// Stops a run that can't go on, with the reason. The reason is noted first: `watchExits` may
    /// see the exit the stop causes before this finishes, and ends the run with the noted reason.
    /// Its binding is released too: a grant whose answer was lost (the link dropped) must not
    /// hold the port until its TTL runs out.
    private func abandon(_ id: String, reason: String, gracePeriod: Duration) async {
        records[id]?.detail = reason
        _ = try? await supervisor.stop(id: id, gracePeriod: gracePeriod)
        await release(id)
        try? await finish(id, state: .failed, detail: reason)
    }

    private func keepRenewing(_ request: LeaseRequest) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: context.renewInterval)
            if Task.isCancelled { return }
            do {
                _ = try await context.authority.grant(request)
            } catch let conflict as LeaseConflict {
                // Someone else holds it now (we were gone too long): this run can no longer serve.
                logger.warning("lease lost", metadata: ["run.id": "\(request.runID)", "error": "\(conflict)"])
                await abandon(request.runID, reason: "its binding was taken while it could not renew: \(conflict)", gracePeriod: .seconds(5))
                return
            } catch {
                // The gateway is unreachable for now: keep trying; the lease lasts its TTL meanwhile.
                logger.debug("lease renewal failed; will retry", metadata: ["run.id": "\(request.runID)", "error": "\(error)"])
            }
        }
    }

    // MARK: Stopping and exits

    /// Stops a run by name or ID and releases its binding.
    public func stop(_ reference: String) async throws(APIError) -> RunInfo {
        let record = try find(reference)
        guard record.state.isActive else {
            // Ended already; give back any binding the gateway may still hold for it.
            await release(record.id)
            return info(record)
        }
        try await setState(record.id, .stopping)
        tasks[record.id]?.cancel()
        _ = try? await supervisor.stop(id: record.id)
        await release(record.id)
        try await finish(record.id, state: .stopped, detail: nil)
        return info(records[record.id]!)
    }

    /// Follows the supervisor's exits (run once, for the node's lifetime).
    public func watchExits() async {
        for await exit in supervisor.exits {
            guard let record = records[exit.id], record.state.isActive, record.state != .stopping else { continue }
            tasks[exit.id]?.cancel()
            await release(exit.id)
            let wasServing = record.state == .running
            let state: RunState = wasServing || exit.status.exitCode == 0 ? .exited : .failed
            let detail = wasServing ? "the commands ended (\(exit.status))" : nil
            try? await finish(exit.id, state: state, detail: detail ?? records[exit.id]?.detail, exitCode: exit.status.exitCode)
        }
    }

    private func release(_ id: String) async {
        guard let d = details[id], let record = records[id] else { return }
        await context.authority.release(LeaseRequest(binding: d.binding, runID: id, runName: record.name, holder: context.nodeID, appPort: d.appPort))
    }

    /// After a restart: adopts live runs (and renews their leases), marks the others ended.
    public func recover() async throws {
        let saved = try await store.runs()
        let updated = await supervisor.recover(saved)
        for record in updated {
            records[record.id] = record
            if let d = Self.decode(record.configJSON) { details[record.id] = d }
            if record != saved.first(where: { $0.id == record.id }) { try await store.saveRun(record) }
            if record.state == .running || record.state == .leasing || record.state == .starting {
                tasks[record.id] = Task { await self.bringUp(record.id) }
            }
        }
    }

    // MARK: Reading

    public func list() -> [RunInfo] {
        records.values.sorted { $0.createdAt < $1.createdAt }.map(info)
    }

    public func get(_ reference: String) throws(APIError) -> RunInfo {
        info(try find(reference))
    }

    /// The log of a run and whether it has ended (for `logs -f`).
    public func log(_ reference: String) throws(APIError) -> (log: RunLog, id: String) {
        let record = try find(reference)
        return (supervisor.log(id: record.id), record.id)
    }

    public func isActive(_ id: String) -> Bool {
        records[id]?.state.isActive ?? false
    }

    /// Stops every task (node shutdown); the runs' processes are left running for the next start.
    public func shutdown() async {
        for task in tasks.values { task.cancel() }
        tasks = [:]
        await supervisor.detachAll()
    }

    /// A run by ID, or by name (the newest run of that name).
    private func find(_ reference: String) throws(APIError) -> RunRecord {
        if let r = records[reference] { return r }
        if let r = records.values.filter({ $0.name == reference }).max(by: { $0.createdAt < $1.createdAt }) { return r }
        throw .notFound("no run \"\(reference)\" on this node (see `warren ps -a`)")
    }

    private func info(_ r: RunRecord) -> RunInfo {
        let d = details[r.id]
        return RunInfo(
            id: r.id, name: r.name, project: r.project, state: r.state, gateway: d?.binding.address,
            url: r.state == .running ? d?.url : nil, externalPort: d?.binding.port ?? 0, appPort: d?.appPort ?? 0,
            host: d?.binding.host, node: context.nodeID, exitCode: r.exitCode, error: r.detail, created: r.createdAt)
    }

    // MARK: Saving

    private func setState(_ id: String, _ state: RunState) async throws(APIError) {
        guard var r = records[id] else { return }
        r.state = state
        try await save(r)
    }

    private func finish(_ id: String, state: RunState, detail: String?, exitCode: Int32? = nil) async throws(APIError) {
        guard var r = records[id] else { return }
        r.state = state
        r.detail = detail
        if let exitCode { r.exitCode = exitCode }
        tasks[id] = nil
        try await save(r)
        logger.info("run ended", metadata: ["run.id": "\(id)", "run.state": "\(state.rawValue)", "run.detail": "\(detail ?? "")"])
    }

    private func save(_ record: RunRecord) async throws(APIError) {
        var r = record
        r.updatedAt = Date()
        records[r.id] = r
        do {
            try await store.saveRun(r)
        } catch {
            throw .internalError("the run's record could not be saved: \(error)")
        }
    }

    static func url(for binding: Binding) -> String {
        let host = binding.host ?? (binding.address.contains(":") ? "[\(binding.address)]" : binding.address)
        return binding.port == 80 ? "http://\(host)" : "http://\(host):\(binding.port)"
    }

    static func makeID() -> String {
        var g = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        return String((0..<12).map { _ in alphabet[Int(g.next() % 32)] })
    }

    static func encode(_ d: Details) -> String {
        (try? String(decoding: JSONEncoder().encode(d), as: UTF8.self)) ?? "{}"
    }

    static func decode(_ s: String) -> Details? {
        try? JSONDecoder().decode(Details.self, from: Data(s.utf8))
    }
}

extension RunManager {
    /// Whether a public connection for `runID` may be dialled to `appPort`: the run is this
    /// node's, serving or about to, and that is its app's port.
    public func serves(runID: String, appPort: Int) -> Bool {
        guard let record = records[runID], record.state == .running || record.state == .leasing else { return false }
        return details[runID]?.appPort == appPort
    }
}
