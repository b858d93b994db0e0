public import Foundation
public import Logging
public import Trust

/// The authority for bindings on this gateway's own addresses: only it can bind those sockets, so
/// only it decides. Grants are checked against its own table and the claims it has heard by gossip,
/// saved before they are answered (a restarted gateway serves the same bindings when its runners
/// come back), published to the mesh, and dropped when not renewed within their TTL.
public actor GatewayLeases: LeaseAuthority {
    public struct Hooks: Sendable {
        /// The leases this gateway holds changed: publish the change (gossip) and re-route all
        /// that are held now (proxy).
        public var changed: @Sendable (_ granted: [Lease], _ removed: [Lease], _ held: [Lease]) async -> Void
        /// Other gateways' and stale copies of leases heard by gossip, to refuse what they hold.
        public var gossiped: @Sendable () async -> LeaseTable

        /// Why the public listener for `binding` is not up after the last `changed` (nil: it
        /// listens). A grant is confirmed only once it listens, so a runner never reports a URL
        /// that another program answers.
        public var listenerFailure: @Sendable (_ binding: Binding) async -> String?
        /// The run that owns `domain` by the claims this gateway has heard (nil: nobody claims it).
        public var domainOwner: @Sendable (_ domain: String) async -> DomainClaim? = { _ in nil }

        public init(
            changed: @escaping @Sendable ([Lease], [Lease], [Lease]) async -> Void, gossiped: @escaping @Sendable () async -> LeaseTable,
            listenerFailure: @escaping @Sendable (Binding) async -> String? = { _ in nil }
        ) {
            self.changed = changed
            self.gossiped = gossiped
            self.listenerFailure = listenerFailure
        }
    }

    /// The addresses this gateway serves.
    public let addresses: Set<String>
    /// The gateway's name, for refusals a person reads.
    public let name: String?
    private var table = LeaseTable()
    private let store: StateStore
    private let hooks: Hooks
    private let ttl: TimeInterval
    private let logger: Logger

    public init(
        addresses: Set<String>, name: String? = nil, store: StateStore, hooks: Hooks, ttl: TimeInterval = LeaseTable.defaultTTL, logger: Logger
    ) {
        self.addresses = addresses
        self.name = name
        self.store = store
        self.hooks = hooks
        self.ttl = ttl
        self.logger = logger
    }

    /// Routes the leases held again, unchanged (how they are served changed: HTTPS turned on).
    public func reroute() async {
        await hooks.changed([], [], table.leases)
    }

    /// Loads the saved leases (after a restart) that have not expired.
    public func load(now: Date = Date()) async throws {
        _ = try await store.removeLeases(expiredBefore: now)
        for r in try await store.leases() where addresses.contains(r.gatewayAddress) {
            table.merge(Lease(binding: Binding(address: r.gatewayAddress, port: r.port, host: r.host), runID: r.runID,
                              runName: r.runName, holder: r.holderNode, appPort: r.appPort, expires: r.expiresAt, https: r.https))
        }
        await hooks.changed(table.leases, [], table.leases)
    }

    public var leases: [Lease] { table.leases }

    public func grant(_ request: LeaseRequest) async throws -> Lease {
        try await grant(request, now: Date())
    }

    func grant(_ request: LeaseRequest, now: Date) async throws -> Lease {
        guard addresses.contains(request.binding.address) else {
            throw LeaseRefused("this gateway\(name.map { " (\($0))" } ?? "") serves \(addresses.sorted().joined(separator: ", ")), not \(request.binding.address); name one of its addresses in `gateway:`")
        }
        // A domain belongs to the run with the earliest claim, mesh-wide: no other run gets it
        // here. Not a refusal: the asking run's own claim may not have reached this gateway yet;
        // the runner decides, by the same rule, whether its run has lost.
        if let host = request.binding.host, let owner = await hooks.domainOwner(host),
           owner.runID != request.runID || owner.holder != request.holder {
            logger.info("lease withheld: another run owns the domain", metadata: [
                "lease.binding": "\(request.binding)", "run.id": "\(request.runID)", "claim.run": "\(owner.runID)",
            ])
            throw LeaseUnavailable(address: request.binding.address, reason: "this gateway has heard that \(owner.heldText)")
        }
        // A claim heard by gossip that this gateway has not (e.g. granted before a restart that
        // lost nothing but arrived late) still counts: refuse rather than hand out a port twice.
        if let heard = await hooks.gossiped().conflict(for: request.binding, runID: request.runID, holder: request.holder, now: now),
           addresses.contains(heard.binding.address), !table.leases.contains(where: { $0.runID == heard.runID && $0.holder == heard.holder }) {
            table.merge(heard)
        }
        let lease: Lease
        do {
            lease = try table.grant(request.binding, runID: request.runID, runName: request.runName, holder: request.holder,
                                    appPort: request.appPort, now: now, ttl: ttl, https: request.https)
        } catch {
            logger.info("lease refused", metadata: ["lease.binding": "\(request.binding)", "run.id": "\(request.runID)", "lease.holder": "\(error.holder.holder)", "lease.holder.run": "\(error.holder.runID)"])
            throw error
        }
        try await persist(lease)
        await hooks.changed([lease], [], table.leases)
        if let failure = await hooks.listenerFailure(lease.binding) {
            // A lease without its listener serves nobody (or serves whoever holds the port): give
            // it back so the runner fails with the cause instead of printing a URL.
            let gone = table.release(runID: request.runID, holder: lease.holder)
            for lease in gone { try? await unpersist(lease) }
            await hooks.changed([], gone, table.leases)
            logger.warning("lease refused: its public port could not be bound", metadata: [
                "lease.binding": "\(request.binding)", "run.id": "\(request.runID)", "error": "\(failure)",
            ])
            throw LeaseRefused("port \(lease.binding.port) on gateway \(name ?? lease.binding.address) \(failure)")
        }
        return lease
    }

    /// Releases the run's leases held by `request.holder` (the node at the other end of the link
    /// the call came on); a lease of another node under the same run ID stays.
    public func release(_ request: LeaseRequest) async {
        let gone = table.release(runID: request.runID, holder: request.holder)
        for lease in gone { try? await unpersist(lease) }
        if !gone.isEmpty {
            logger.info("lease released", metadata: ["run.id": "\(request.runID)", "lease.holder": "\(request.holder)"])
            await hooks.changed([], gone, table.leases)
        }
    }

    /// Releases every lease held by `holder` (a node ID, printed): a node removed from the mesh.
    public func release(heldBy holder: String) async {
        let gone = table.release(heldBy: holder)
        for lease in gone { try? await unpersist(lease) }
        if !gone.isEmpty {
            logger.info("leases of a removed member released", metadata: ["lease.holder": "\(holder)", "lease.count": "\(gone.count)"])
            await hooks.changed([], gone, table.leases)
        }
    }

    /// Drops leases not renewed in time (their runner is gone). Call periodically.
    public func expire(now: Date = Date()) async {
        let gone = table.expire(now: now)
        for lease in gone { try? await unpersist(lease) }
        if !gone.isEmpty {
            logger.info("leases expired", metadata: ["lease.count": "\(gone.count)"])
            await hooks.changed([], gone, table.leases)
        }
    }

    private func persist(_ lease: Lease) async throws {
        let b = lease.binding
        try await store.saveLease(LeaseRecord(gatewayAddress: b.address, port: b.port, host: b.host, runID: lease.runID,
                                              holderNode: lease.holder, runName: lease.runName, appPort: lease.appPort,
                                              expiresAt: lease.expires, https: lease.https))
    }

    private func unpersist(_ lease: Lease) async throws {
        let b = lease.binding
        _ = try await store.deleteLease(gatewayAddress: b.address, port: b.port, host: b.host)
    }
}
