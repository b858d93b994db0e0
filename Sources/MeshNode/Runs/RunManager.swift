public import Foundation
public import Logging
import Provisioning
public import Trust

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
        /// The first and the longest wait between grant attempts while the gateway can't be
        /// asked; the longest bounds how late a run notices the gateway is back.
        public var retryInitial: Duration
        public var retryCap: Duration
        /// Domain claims, mesh-wide: write (or renew) this node's claim, withdraw it, and the live
        /// claims this node has heard. The defaults claim nothing (a node without a mesh).
        public var claim: @Sendable (DomainClaim) async -> Void = { _ in }
        public var unclaim: @Sendable (_ domain: String, _ runID: String) async -> Void = { _, _ in }
        public var claims: @Sendable () async -> DomainClaims = { DomainClaims() }
        /// How long after its claim a run waits before it leases: rival claims written at about
        /// the same time reach it first, so the later claimer usually fails before it prints a URL
        /// (and fails later when one arrives late, after a partition).
        public var claimSettle: Duration = .zero
        /// Why the gateway at an address is gone from the mesh ("gateway G was deleted"), or nil
        /// while it is a member (merely unreachable, or unknown yet). Asked after a failed call.
        public var departure: @Sendable (_ address: String) async -> String?

        public init(
            nodeID: String, secrets: @escaping @Sendable (String) async throws -> SecretValues,
            gateways: @escaping @Sendable () async -> [KnownGateway], leases: @escaping @Sendable () async -> LeaseTable,
            authority: any LeaseAuthority, lookup: @escaping GatewayResolver.Lookup = GatewayResolver.systemLookup,
            portTimeout: Duration = .seconds(60), renewInterval: Duration = .seconds(LeaseTable.defaultTTL / 3),
            retryInitial: Duration = .milliseconds(500), retryCap: Duration = Context.defaultRetryCap,
            departure: @escaping @Sendable (String) async -> String? = { _ in nil }
        ) {
            self.departure = departure
            self.retryInitial = retryInitial
            self.retryCap = retryCap
            self.nodeID = nodeID
            self.secrets = secrets
            self.gateways = gateways
            self.leases = leases
            self.authority = authority
            self.lookup = lookup
            self.portTimeout = portTimeout
            self.renewInterval = renewInterval
        }

        /// 5 s, or `$WARREN_RUN_RETRY_MAX_SECONDS` (a positive number) for tests that time how
        /// soon a run serves again once its gateway is back.
        public static let defaultRetryCap: Duration = retryCap(environment: ProcessInfo.processInfo.environment)

        static func retryCap(environment: [String: String]) -> Duration {
            guard let text = environment["WARREN_RUN_RETRY_MAX_SECONDS"], let seconds = Double(text), seconds > 0, seconds.isFinite else {
                return .seconds(5)
            }
            return .milliseconds(Int(seconds * 1000))
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
        /// How long the app may take to listen, in seconds (nil: the node's default).
        var timeout: Double?
        /// Every gateway's binding, `binding` first (a domain served by several gateways); nil:
        /// `binding` alone.
        var bindings: [Binding]? = nil
        /// When the run claimed its domain (host-routed runs).
        var claimedAt: Date? = nil

        var allBindings: [Binding] { bindings ?? [binding] }
        /// The domain the run claims mesh-wide: the host it is routed by, if any.
        var domain: String? { binding.host }
        /// Each connection to the app starts with a PROXY protocol v2 header (nil: no header).
        var proxyProtocol: Bool?
        /// False: `https: false`, the gateway does not terminate TLS for the run's domain.
        var https: Bool? = nil
    }

    private let store: StateStore
    private let supervisor: RunSupervisor
    private let context: Context
    private let logger: Logger
    private var records: [String: RunRecord] = [:]
    private var details: [String: Details] = [:]
    private var tasks: [String: Task<Void, Never>] = [:]
    /// Each run's lifecycle: what it waits for, its paths, what happens next. In memory only, as
    /// it describes the node's current attempts (a restarted node starts them over).
    private var lifecycles: [String: RunLifecycle] = [:]
    /// Gateways this node deleted, name by address: its runs bound to one say so at once, without
    /// waiting for a renewal to fail or for gossip to tell.
    private var deletedGateways: [String: String] = [:]
    /// Per run and gateway address: wakes that run's wait before its next grant or renewal, so
    /// that a change of the links to the gateway is acted on at once (`gatewayLinkLost`/`Up`).
    private var wakers: [String: [String: Alarm]] = [:]

    public init(store: StateStore, supervisor: RunSupervisor, context: Context, logger: Logger) {
        self.store = store
        self.supervisor = supervisor
        self.context = context
        self.logger = logger
    }

    // MARK: Starting

    /// Validates and starts a run; returns at once in state `starting` while the rest goes on.
    public func submit(_ request: RunRequest) async throws(RunRefusal) -> RunInfo {
        let secrets: SecretValues
        do {
            secrets = try await context.secrets(request.project)
        } catch {
            throw .secretsUnavailable(reason: "\(error)")
        }
        let parser = ServiceConfigurationParser(secrets: secrets, environment: request.environment)
        let service: ServiceConfiguration
        do {
            service = try parser.parse(yaml: request.configuration, file: request.configurationPath)
        } catch {
            throw .invalidConfiguration(path: request.configurationPath, issues: error.issues.map(\.description))
        }
        let active = Set(records.values.filter(\.state.isActive).map(\.name))
        let name = service.name ?? RandomName.make(avoiding: Set(records.values.map(\.name)))
        // Gossiped in its leases to every member, who print it: no escapes, whatever sent it.
        guard PlainName.isValid(name) else { throw .invalidName(name) }
        let gateways = await context.gateways()
        let bindings: [Binding]
        do {
            bindings = try GatewayResolver(gateways: gateways, lookup: context.lookup)
                .bindings(gateway: service.gateway?.value, domain: service.domain?.value, port: service.port.external, runName: name)
        } catch {
            throw .noBinding(reason: error.description)
        }
        let binding = bindings[0]
        let id = Self.makeID()
        // Runs share the node's network: a second app on the same port would fail to bind, and the
        // first run's listener would answer its readiness check.
        if let user = records.values.filter({ $0.state.isActive && details[$0.id]?.appPort == service.port.app })
            .min(by: { $0.createdAt < $1.createdAt }) {
            throw .appPortInUse(port: service.port.app, run: user.name, configurationPath: request.configurationPath, external: service.port.external)
        }
        if active.contains(name) {
            throw .nameInUse(name)
        }
        // Refuse before starting anything when this node already knows the holder. A lease of a
        // run of this node that has ended was released (the gateway forgot it); only gossip may
        // not have caught up, so that copy does not count.
        let ended = Set(records.values.filter { !$0.state.isActive }.map(\.id))
        let known = LeaseTable(leases: await context.leases().leases.filter { !ended.contains($0.runID) })
        for binding in bindings {
            if let holder = known.conflict(for: binding, runID: id, holder: context.nodeID, now: Date()) {
                throw .bindingHeld(LeaseConflict(requested: binding, holder: holder).description)
            }
        }
        let now = Date()
        if let domain = binding.host, let owner = await liveClaims().owner(of: domain, now: now) {
            throw .bindingHeld(owner.heldText)
        }

        let url = Self.url(for: binding, https: service.https, gateway: gateways.first { $0.address == binding.address })
        let timeout = request.timeout.flatMap { $0 > 0 && $0.isFinite ? $0 : nil }
        let saved = Details(configuration: request.configuration, configurationPath: request.configurationPath,
                            binding: binding, appPort: service.port.app, url: url, timeout: timeout,
                            bindings: bindings.count > 1 ? bindings : nil, claimedAt: binding.host == nil ? nil : now,
                            proxyProtocol: service.proxyProtocol ? true : nil, https: service.https ? nil : false)
        let record = RunRecord(
            id: id, name: name, project: request.project, configJSON: Self.encode(saved),
            directory: request.directory, state: .starting, logPath: supervisor.log(id: id).path)
        details[id] = saved
        try await save(record)
        lifecycles[id] = lifecycle(record, saved)

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
            try await execute(id, lifecycles[id]?.startFailed("the commands could not be started: \(error)") ?? [])
            throw .startFailed(name: name, reason: "\(error)")
        }
        logger.info("run started", metadata: ["run.id": "\(id)", "run.name": "\(name)", "lease.binding": "\(binding)"])
        tasks[id] = Task { await self.bringUp(id) }
        return info(records[id]!)
    }

    /// Claims the run's domain and keeps the claim; waits for the app, leases the binding on
    /// every gateway, then renews them until the run ends.
    private func bringUp(_ id: String) async {
        guard let d = details[id] else { return }
        await withTaskGroup(of: Void.self) { group in
            if let domain = d.domain { group.addTask { await self.keepClaim(id, domain: domain) } }
            group.addTask { await self.publish(id) }
        }
    }

    /// Whether the run still goes on (not ended, not being stopped or failed).
    private func isLive(_ id: String) -> Bool {
        lifecycles[id]?.isLive ?? false
    }

    private var timing: RunLifecycle.Timing {
        .init(renewInterval: context.renewInterval, retryInitial: context.retryInitial, retryCap: context.retryCap,
              claimSettle: context.claimSettle)
    }

    /// A run's lifecycle from its record; without its details (unreadable), it can still be
    /// stopped and can still end.
    private func lifecycle(_ record: RunRecord, _ d: Details?) -> RunLifecycle {
        RunLifecycle(state: record.state, appPort: d?.appPort ?? 0, gateways: d?.allBindings.map(\.address) ?? [], domain: d?.domain,
                     claimedAt: d?.claimedAt, detail: record.detail, timing: timing)
    }

    /// Carries out what a run's lifecycle decided, in order. Asking gateways and waiting for
    /// rival claims are left to the task that reported the event. Every action is carried out;
    /// the first failure to save is thrown at the end.
    private func execute(_ id: String, _ actions: [RunLifecycle.Action]) async throws(RunRefusal) {
        var failure: RunRefusal?
        for action in actions {
            do throws(RunRefusal) {
                switch action {
                case .save(let state):
                    try await setState(id, state)
                case .announceServing:
                    logger.info("run is serving", metadata: ["run.id": "\(id)", "run.url": "\(details[id]?.url ?? "")"])
                case .settleClaims, .askGateway:
                    break
                case .stopProcess(let gracePeriod):
                    if let gracePeriod {
                        _ = try? await supervisor.stop(id: id, gracePeriod: gracePeriod)
                    } else {
                        _ = try? await supervisor.stop(id: id)
                    }
                case .cancelTasks:
                    tasks[id]?.cancel()
                case .release:
                    await release(id)
                case .finish(let state, let detail, let exitCode):
                    try await finish(id, state: state, detail: detail, exitCode: exitCode)
                case .pathChanged(let from, let to):
                    logPathChange(id, from: from, to: to)
                }
            } catch {
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
    }

    private func logPathChange(_ id: String, from: RunPath.State, to: RunPath.State) {
        logger.info("run's public path changed", metadata: [
            "run.id": "\(id)", "run.path.from": "\(from.rawValue)", "run.path.to": "\(to.rawValue)",
        ])
    }

    /// The claims that count: a claim of this node for a run that is no longer active here is
    /// one its withdrawal has not reached yet (or one a crash left behind).
    private func liveClaims() async -> DomainClaims {
        DomainClaims(await context.claims().claims.filter { claim in
            claim.holder != context.nodeID || (records[claim.runID]?.state.isActive ?? false)
        })
    }

    /// Writes the run's claim on `domain` and renews it every renewal interval; fails the run as
    /// soon as a claim that goes before it is heard (the rule every node applies alike).
    private func keepClaim(_ id: String, domain: String) async {
        let clock = ContinuousClock()
        var written: ContinuousClock.Instant?
        let ttl = Self.seconds(context.renewInterval) * 3
        while !Task.isCancelled, isLive(id) {
            guard let d = details[id], let record = records[id] else { return }
            let now = Date()
            if written.map({ clock.now - $0 >= context.renewInterval }) ?? true {
                await context.claim(DomainClaim(domain: domain, holder: context.nodeID, runID: id, runName: record.name,
                                                claimed: d.claimedAt ?? record.createdAt, expires: now.addingTimeInterval(ttl)))
                written = clock.now
                // The run may have ended while the claim was written, its withdrawal already made.
                guard isLive(id) else {
                    await context.unclaim(domain, id)
                    return
                }
            }
            if let owner = await liveClaims().owner(of: domain, now: now), owner.runID != id || owner.holder != context.nodeID {
                guard isLive(id) else { return }
                logger.warning("domain claimed first by another run", metadata: [
                    "run.id": "\(id)", "domain": "\(domain)", "claim.run": "\(owner.runID)", "claim.holder": "\(owner.holder)",
                ])
                try? await execute(id, lifecycles[id]?.claimTaken(holder: owner.runName, description: owner.heldText, now: Date()) ?? [])
                return
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Waits for the app, then serves it through every gateway of its binding(s) at once.
    private func publish(_ id: String) async {
        guard let d = details[id] else { return }
        lifecycles[id]?.started(now: Date())
        do {
            let timeout = d.timeout.map { Duration.milliseconds(Int($0 * 1000)) } ?? context.portTimeout
            try await supervisor.waitForPort(id: id, port: d.appPort, timeout: timeout)
        } catch {
            if Task.isCancelled { return }
            try? await execute(id, lifecycles[id]?.appFailedToListen("\(error)") ?? [])
            return
        }
        var actions = lifecycles[id]?.appListening(now: Date()) ?? []
        if case .settleClaims(let wait)? = actions.first {
            try? await Task.sleep(for: wait)
            guard !Task.isCancelled else { return }
            actions = lifecycles[id]?.claimsSettled() ?? []
        }
        guard !Task.isCancelled else { return }
        try? await execute(id, actions)
        await withTaskGroup(of: Void.self) { group in
            for case .askGateway(let address, _) in actions {
                group.addTask { await self.serve(id, gateway: address) }
            }
        }
    }

    /// Asks the gateway at `address` for the run's binding as the lifecycle says: at once, again
    /// with backoff while the gateway can't be asked (the app keeps running and serves once it is
    /// back), then renewals, until the lifecycle stops asking (the run ended or failed).
    private func serve(_ id: String, gateway address: String) async {
        guard let d = details[id], let record = records[id],
              let binding = d.allBindings.first(where: { $0.address == address }) else { return }
        let request = LeaseRequest(binding: binding, runID: id, runName: record.name, holder: context.nodeID, appPort: d.appPort,
                                   https: d.https)
        let alarm = Alarm()
        wakers[id, default: [:]][address] = alarm
        defer { wakers[id]?[address] = nil }
        var wait = Duration.zero
        while !Task.isCancelled {
            if wait > .zero { await alarm.sleep(for: wait) }
            if Task.isCancelled || !isLive(id) { return }
            let actions: [RunLifecycle.Action]
            do {
                _ = try await context.authority.grant(request)
                deletedGateways[address] = nil
                actions = lifecycles[id]?.granted(address, now: Date()) ?? []
            } catch {
                if Task.isCancelled { return }
                let answer: RunLifecycle.Refusal
                if error is LeaseConflict || error is LeaseRefused {
                    answer = RunLifecycle.Refusal(error, departure: nil)
                    logger.warning("the gateway refused the binding", metadata: [
                        "run.id": "\(id)", "lease.binding": "\(binding)", "error": "\(error)",
                    ])
                } else {
                    answer = RunLifecycle.Refusal(error, departure: await departure(address))
                    logger.info("the gateway can't be asked for the binding; will retry", metadata: [
                        "run.id": "\(id)", "lease.binding": "\(binding)", "error": "\(error)",
                    ])
                }
                actions = lifecycles[id]?.notGranted(address, answer, now: Date()) ?? []
            }
            try? await execute(id, actions)
            let next = actions.lazy.compactMap { action -> Duration? in
                if case .askGateway(address, let after) = action { return after }
                return nil
            }.first
            guard let next else { return }
            wait = next
        }
    }

    /// This node's last link to the gateway at `address` closed: the runs it served say so now
    /// (`RunLifecycle.linkLost`) and ask it again at once, over whatever link can still be made
    /// (a relayed one), instead of at their next renewal.
    public func gatewayLinkLost(address: String, reason: String) {
        let now = Date()
        for id in lifecycles.keys where lifecycles[id]?.gatewayPaths[address]?.state == .serving {
            for case .pathChanged(let from, let to) in lifecycles[id]?.linkLost(address, reason: reason, now: now) ?? [] {
                logPathChange(id, from: from, to: to)
            }
            wakers[id]?[address]?.wake()
        }
    }

    /// A link to the gateway at `address` is up: runs waiting to ask it again (backing off while
    /// it could not be asked) ask now, so a path that was down serves again without that wait.
    public func gatewayLinkUp(address: String) {
        let waiting = lifecycles.filter { _, lifecycle in
            guard lifecycle.isLive, let path = lifecycle.gatewayPaths[address] else { return false }
            return path.state != .serving
        }
        for id in waiting.keys { wakers[id]?[address]?.wake() }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Why the gateway at `address` is gone, if it is: deleted by this node, or gone from the mesh.
    private func departure(_ address: String) async -> String? {
        if let name = deletedGateways[address] { return "gateway \(name) was deleted" }
        return await context.departure(address)
    }

    /// This node deleted the gateway `name` at `address` (`warren gateway delete`): its runs bound
    /// to it say so now, and drop their dead URL. They keep renewing, so a gateway made again at
    /// the same address serves them again.
    public func gatewayDeleted(name: String, address: String) {
        deletedGateways[address] = name
        let now = Date()
        for id in lifecycles.keys {
            // Only paths change here: nothing else to carry out.
            for case .pathChanged(let from, let to) in lifecycles[id]?.gatewayDeleted(name: name, address: address, now: now) ?? [] {
                logPathChange(id, from: from, to: to)
            }
        }
    }

    // MARK: Stopping and exits

    /// Stops a run by name or ID and releases its binding.
    public func stop(_ reference: String) async throws(RunRefusal) -> RunInfo {
        let record = try find(reference)
        guard let actions = lifecycles[record.id]?.stopRequested() else {
            // Every record gets a lifecycle at submit and at recovery; without one, only what a
            // gateway may still hold for the run is given back.
            await release(record.id)
            return info(record)
        }
        try await execute(record.id, actions)
        return info(records[record.id]!)
    }

    /// Follows the supervisor's exits (run once, for the node's lifetime).
    public func watchExits() async {
        for await exit in supervisor.exits {
            // While its port is awaited, the wait sees the exit too and fails the run with the
            // cause (the log's tail, or the program that holds the port).
            let actions = lifecycles[exit.id]?.processExited(
                exitCode: exit.status.exitCode, status: "\(exit.status)", awaitingPort: tasks[exit.id] != nil) ?? []
            try? await execute(exit.id, actions)
        }
    }

    private func release(_ id: String) async {
        guard let d = details[id], let record = records[id] else { return }
        await withTaskGroup(of: Void.self) { group in
            for binding in d.allBindings {
                let request = LeaseRequest(binding: binding, runID: id, runName: record.name, holder: context.nodeID, appPort: d.appPort,
                                   https: d.https)
                group.addTask { await self.context.authority.release(request) }
            }
        }
        if let domain = d.domain { await context.unclaim(domain, id) }
    }

    /// After a restart: adopts live runs (and renews their leases), marks the others ended.
    public func recover() async throws {
        let saved = try await store.runs()
        let updated = await supervisor.recover(saved)
        for record in updated {
            records[record.id] = record
            if let d = Self.decode(record.configJSON) { details[record.id] = d }
            lifecycles[record.id] = lifecycle(record, details[record.id])
            if record != saved.first(where: { $0.id == record.id }) { try await store.saveRun(record) }
            // A claim a crash left behind for a run that is over: withdraw it.
            if !record.state.isActive, let domain = details[record.id]?.domain { await context.unclaim(domain, record.id) }
            if record.state == .running || record.state == .leasing || record.state == .starting {
                tasks[record.id] = Task { await self.bringUp(record.id) }
            }
        }
    }

    /// Forgets an ended run (`warren rm`): its record goes, so `ps -a` no longer lists it. An
    /// active run is refused: stopping it is a separate, deliberate step.
    public func remove(_ reference: String) async throws(RunRefusal) -> RunInfo {
        let record = try find(reference)
        guard !record.state.isActive else {
            throw .stillActive(name: record.name, state: record.state.rawValue)
        }
        do {
            _ = try await store.deleteRun(id: record.id)
        } catch {
            throw .storeFailed(what: "could not remove run \(record.name) from the node's store", reason: "\(error)")
        }
        records[record.id] = nil
        details[record.id] = nil
        lifecycles[record.id] = nil
        tasks[record.id] = nil
        return info(record)
    }

    // MARK: Reading

    public func list() -> [RunInfo] {
        records.values.sorted { $0.createdAt < $1.createdAt }.map(info)
    }

    public func get(_ reference: String) throws(RunRefusal) -> RunInfo {
        info(try find(reference))
    }

    /// The log of a run and whether it has ended (for `logs -f`).
    public func log(_ reference: String) throws(RunRefusal) -> (log: RunLog, id: String) {
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
    private func find(_ reference: String) throws(RunRefusal) -> RunRecord {
        if let r = records[reference] { return r }
        if let r = records.values.filter({ $0.name == reference }).max(by: { $0.createdAt < $1.createdAt }) { return r }
        throw .unknownRun(reference)
    }

    private func info(_ r: RunRecord) -> RunInfo {
        let d = details[r.id]
        let lifecycle = lifecycles[r.id]
        let active = r.state.isActive
        return RunInfo(
            id: r.id, name: r.name, project: r.project, state: r.state, gateway: d?.binding.address,
            url: r.state == .running && lifecycle?.path?.state != .gone ? d?.url : nil, externalPort: d?.binding.port ?? 0, appPort: d?.appPort ?? 0,
            host: d?.binding.host, node: context.nodeID, exitCode: r.exitCode, error: r.detail, created: r.createdAt,
            waitingFor: active && r.state != .stopping ? lifecycle?.waiting : nil, path: path(r),
            gateways: d?.allBindings.map { RunGatewayInfo(address: $0.address, path: active ? lifecycle?.gatewayPaths[$0.address] : nil) })
    }

    /// The run's public path as it is now: an ended run serves nobody, whatever it last knew.
    private func path(_ r: RunRecord) -> RunPath? {
        guard let p = lifecycles[r.id]?.path else { return nil }
        if r.state.isActive || p.state == .lost || p.state == .refused { return p }
        return nil
    }

    /// How many active runs are in each path state (for the metrics).
    public func pathCounts() -> [RunPath.State: Int] {
        var counts = Dictionary(uniqueKeysWithValues: RunPath.State.allCases.map { ($0, 0) })
        for r in records.values where r.state.isActive && r.state != .stopping {
            counts[lifecycles[r.id]?.path?.state ?? .pending, default: 0] += 1
        }
        return counts
    }

    // MARK: Saving

    /// Moves an active run on; an ended run stays ended (a task that learns late of its end must
    /// not bring it back).
    private func setState(_ id: String, _ state: RunState) async throws(RunRefusal) {
        guard var r = records[id], r.state.isActive else { return }
        r.state = state
        try await save(r)
    }

    private func finish(_ id: String, state: RunState, detail: String?, exitCode: Int32? = nil) async throws(RunRefusal) {
        guard var r = records[id] else { return }
        r.state = state
        r.detail = detail
        if let exitCode { r.exitCode = exitCode }
        tasks[id] = nil
        try await save(r)
        logger.info("run ended", metadata: ["run.id": "\(id)", "run.state": "\(state.rawValue)", "run.detail": "\(detail ?? "")"])
    }

    private func save(_ record: RunRecord) async throws(RunRefusal) {
        var r = record
        r.updatedAt = Date()
        records[r.id] = r
        do {
            try await store.saveRun(r)
        } catch {
            throw .storeFailed(what: "the run's record could not be saved", reason: "\(error)")
        }
    }

    /// The URL users reach the run at: https:// (on the gateway's HTTPS port) for a name the
    /// gateway terminates TLS for, which is a host-routed binding on its HTTP port when it has ACME
    /// and the service did not say `https: false`; http:// otherwise.
    static func url(for binding: Binding, https: Bool = true, gateway: KnownGateway? = nil) -> String {
        let host = binding.host ?? (binding.address.contains(":") ? "[\(binding.address)]" : binding.address)
        if https, let name = binding.host, let gateway, let httpsPort = gateway.httpsPort, binding.port == gateway.httpPort {
            return httpsPort == 443 ? "https://\(name)" : "https://\(name):\(httpsPort)"
        }
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

    /// Whether the app of `runID` asked for a PROXY protocol v2 header on each connection.
    public func sendsProxyHeader(runID: String) -> Bool {
        details[runID]?.proxyProtocol == true
    }
}
