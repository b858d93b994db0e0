import Foundation
import Gossip
import Link
public import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Provisioning
import Proxy
public import ServiceLifecycle
import Trust

/// A Warren agent: identity, links, gossip, and — as its roles say — the gateway's leases and
/// public listeners, and the runs of services. `init` builds every part, complete, binds its
/// sockets and recovers its state; `services` are the parts that run, in start order, for one
/// `ServiceGroup`, which stops them in reverse (ARCHITECTURE.md, Lifecycle).
public final class NodeAgent: Sendable {
    public let options: AgentOptions
    /// The node's services in start order; graceful shutdown stops them last to first.
    public let services: [ServiceGroupConfiguration.ServiceConfiguration]

    public init(options o: AgentOptions, logger baseLogger: Logger) async throws {
        options = o
        try PrivateFiles.ensureDirectory(o.stateDirectory)
        let identity = try NodeIdentity.loadOrCreate(directory: o.stateDirectory)
        let logger = { var l = baseLogger; l[metadataKey: "node.id"] = "\(identity.id.short)"; return l }()
        if let name = o.gatewayName, !PlainName.isValid(name) {
            throw NodeStartError(description: "gateway name \(PlainName.describe(name)) is not a plain name: \(PlainName.rule)")
        }
        let started = Date()
        if o.isGateway, o.publicAddress == nil {
            throw NodeStartError(description: "a gateway needs --public-address: the address services name in `gateway:`")
        }
        if let limit = OpenFileLimit.raise(), limit < 4096 {
            logger.warning("few open files allowed: every proxied connection takes a descriptor", metadata: [
                "limit": "\(limit)", "hint": "raise the hard limit, e.g. LimitNOFILE=65536 in a systemd unit or `ulimit -Hn`",
            ])
        }
        try MeshSetup.checkDatabase(stateDirectory: o.stateDirectory)
        let store = try StateStore(stateDirectory: o.stateDirectory, logger: logger)
        try MeshSetup.checkMarker(stateDirectory: o.stateDirectory, stored: try await MeshSetup.meshID(store: store))
        let plan = try await MeshSetup.plan(join: o.join, store: store)
        let meshID = plan.meshID?.description ?? o.meshID
        let gate = MeshGate(meshID: plan.meshID, logger: logger)

        // What the replicated entries say (gateways, leases, claims), fed by the mesh below.
        let view = MeshView()

        // Links: every stream a peer opens waits in the inbox for the router's service.
        let inbox = StreamInbox()
        let endpoint = LinkEndpoint(identity: identity, meshID: meshID, logger: logger, admit: { gate.mayLink($0) },
                                    acceptStream: { headers, stream in await inbox.accept(headers, stream) })
        let gatewayIDs: @Sendable () async -> Set<NodeID> = { Set(await view.gateways.keys) }
        let pool = LinkPool(endpoint: endpoint, logger: logger, gatewayLinkLimit: o.maxGatewayLinks, gateways: gatewayIDs)

        // Sockets: links (TCP) and gossip (UDP) on the same port.
        let listen = HostPort.format(o.listenHost, o.listenPort)
        let port = try await NodeStartError.binding("links (TCP)", on: listen) { try await endpoint.listen(host: o.listenHost, port: o.listenPort) }
        let transport = try await NodeStartError.binding("gossip (UDP)", on: listen) {
            try await GossipTransport.bind(host: o.listenHost, port: port)
        }
        let links = MeshLinks(has: { pool.existing($0) != nil }) { peer, address, linksOnly, bytes in
            // Never dial a node removed from the mesh: it would be linked again from this side.
            guard gate.mayLink(peer) else { return }
            do {
                let link = try await pool.link(to: peer, address: address, linksOnly: linksOnly)
                _ = try await LinkRPC.call(link, path: LinkPath.gossip.rawValue, body: bytes)
            } catch {
                logger.debug("gossip over a link failed", metadata: ["peer.id": "\(peer.short)", "error": "\(error)"])
            }
        }
        let mesh = try MeshState(
            identity: identity, address: o.advertisedAddress, metadata: MemberTraits(isGateway: o.isGateway, linksOnly: o.linksOnly).metadata, config: o.gossip,
            store: store, logger: logger, gate: gate, transport: transport, links: links)
        await mesh.observeEntries { entry in await view.apply(entry) }

        // The gateway role: leases on its address, published to the mesh, and the public listeners.
        let gatewayName = o.gatewayName ?? "warren-gateway-\(identity.id.short)"
        // A gateway's ACME settings: its own flags, else the mesh's setting as gossip brings it.
        let acme = NIOLockedValueBox<AcmeSettings?>(o.acme)
        let sharing = CertificateSharing(replica: mesh, local: try LocalMember(identity: identity.keyPair))
        let certificates: CertificateManager? = o.isGateway ? CertificateManager(
            settings: o.acme ?? AcmeSettings(httpPort: o.httpPort, httpsPort: o.httpsPort), stateDirectory: o.stateDirectory,
            gatewayName: gatewayName, logger: logger, sharing: sharing) : nil
        let (gatewayLeases, ingress) = try Self.gatewayRole(
            o, id: identity.id, name: gatewayName, store: store, mesh: mesh, view: view, pool: pool, certificates: certificates,
            acme: { acme.withLockedValue { $0 } }, logger: logger)

        let supervisor = RunSupervisor(stateDirectory: o.stateDirectory, logger: logger)
        let authority = LinkLeases(view: view, pool: pool, localID: identity.id, local: gatewayLeases)
        let local = try LocalMember(identity: identity.keyPair)
        let secrets = ProjectSecrets(replica: mesh, local: local)
        var context = RunManager.Context(
            nodeID: identity.id.description,
            secrets: { project in try await secrets.values(project: project) },
            gateways: { await view.knownGateways },
            leases: { await view.leaseTable() },
            authority: authority,
            departure: { address in
                guard let (id, g, removed) = await view.announcedGateway(address: address) else { return nil }
                if removed { return "gateway \(g.name) was deleted (removed from the mesh)" }
                switch await mesh.member(id)?.state {
                case .left: return "gateway \(g.name) left the mesh (deleted, or its node stopped)"
                // A member this node does not know is not one that left: a node that has just
                // started has not heard of it yet, and its runs keep asking.
                default: return nil
                }
            })
        context.claim = { claim in
            do {
                try await mesh.put(kind: .domainClaim, key: claim.key, value: claim.encoded)
            } catch {
                logger.error("could not write a domain claim", metadata: ["domain": "\(claim.domain)", "run.id": "\(claim.runID)", "error": "\(error)"])
            }
        }
        context.unclaim = { domain, runID in try? await mesh.delete(kind: .domainClaim, key: DomainClaim.key(domain: domain, runID: runID)) }
        context.claims = { await view.domainClaims() }
        context.claimSettle = .seconds(1)
        let runs = RunManager(store: store, supervisor: supervisor, context: context, logger: logger)

        let admin = MeshAdminAPI(gate: gate, mesh: mesh, keys: identity.keyPair, local: local, advertised: o.advertisedAddress,
                                 endpoint: endpoint, leases: gatewayLeases, logger: logger)
        await mesh.observeRoster { old, new in
            await view.setRemoved(new.map { Set($0.removals.keys) } ?? [])
            await admin.rosterChanged(old: old, new: new)
        }
        await mesh.observeRotations { await admin.rekeyContested() }
        let router = StreamRouter(
            mesh: mesh, leases: gatewayLeases, runs: runs, gate: gate,
            desk: AdmissionDesk(gate: gate, mesh: mesh, keys: identity.keyPair, logger: logger), admin: admin,
            relay: LinkRelay(localID: identity.id, pool: pool, endpoint: endpoint, gateways: gatewayIDs, logger: logger),
            calls: StreamRouter.callServer(), logger: logger)

        try await mesh.restore()
        try await gatewayLeases?.load()
        let releaseServer = try await Self.serveRelease(o, logger: logger)
        // The gateway entry says whether it serves HTTPS (runs print https:// URLs by it).
        let release = releaseServer.map { (sha256: $0.release.sha256, port: $0.port) }
        let announce: @Sendable () async throws -> Void = {
            guard o.isGateway, let publicAddress = o.publicAddress else { return }
            var entry = GatewayEntry(
                name: gatewayName, address: publicAddress, domains: o.domains,
                meshAddress: o.advertisedAddress, backend: o.backend, region: nil)
            let settings = acme.withLockedValue { $0 }
            entry.httpPort = settings?.httpPort ?? o.httpPort
            entry.httpsPort = settings?.httpsPort
            if let release, let port = release.port {
                entry.releaseSHA256 = release.sha256
                entry.releaseURL = "http://\(HostPort.format(publicAddress, port))\(ReleaseServer.path(sha256: release.sha256))"
            }
            try await mesh.put(kind: .gateway, key: identity.id.description, value: Array(JSONEncoder().encode(entry)))
        }
        try await announce()
        try await runs.recover()

        let provisioner = GatewayProvisioner(node: o, boundPort: port, secrets: secrets, admin: admin, mesh: mesh, view: view, gate: gate, store: store)
        let api = NodeAPI(
            node: {
                NodeInfo(id: identity.id.description, meshID: meshID, listen: HostPort.format(o.listenHost, port),
                         isGateway: o.isGateway, publicAddress: o.publicAddress, stateDirectory: o.stateDirectory,
                         version: WarrenVersion.current, started: started)
            },
            peers: {
                let removed = gate.roster?.removals ?? [:]
                return await mesh.members().filter { $0.id != identity.id }.map { m in
                    PeerInfo(id: m.id.description, address: m.address, state: removed[m.id] == nil ? "\(m.state)" : "removed",
                             isGateway: MemberTraits(metadata: m.metadata).isGateway,
                             linked: pool.existing(m.id) != nil)
                }
            },
            gateways: {
                let states = Dictionary(await mesh.members().map { ($0.id, "\($0.state)") }, uniquingKeysWith: { $1 })
                return await view.gatewayInfos(members: states)
            },
            leases: {
                // A run of this node that ended has released its lease (`stop` waits for the
                // gateway's answer): gossip's copy may lag, so it no longer counts here.
                let me = identity.id.description
                var shown: [LeaseInfo] = []
                for lease in await view.leaseTable().leases {
                    if lease.holder == me, !(await runs.isActive(lease.runID)) { continue }
                    shown.append(LeaseInfo(lease))
                }
                return shown
            },
            domains: {
                let claims = await view.domainClaims(), now = Date()
                let owners = Set(claims.owners(now: now).map(\.key))
                return claims.claims.map { DomainClaimInfo($0, owner: owners.contains($0.key)) }
            },
            certificates: { await certificates?.status ?? [] },
            secrets: secrets, runs: runs, provisioner: provisioner)
        var routes = api.router
        admin.register(into: &routes)
        let server = try await LocalAPIServer.bind(stateDirectory: o.stateDirectory, router: routes, logger: logger)
        let metricsServer: MetricsServer? = if let m = o.metrics {
            try await NodeStartError.binding("metrics", on: HostPort.format(m.host, m.port)) {
                try await MetricsServer.bind(host: m.host, port: m.port, emit: m.emit, logger: logger)
            }
        } else {
            nil
        }

        logger.info("node started", metadata: [
            "node.listen": "\(HostPort.format(o.listenHost, port))", "node.gateway": "\(o.publicAddress ?? "-")",
            "node.state": "\(o.stateDirectory)",
        ])
        // Local gateways this node made outlive it, but not a reboot: they start again with it.
        for restart in await provisioner.restartLocalGateways() {
            if let failure = restart.failure {
                logger.error("could not start a local gateway again", metadata: ["gateway": "\(restart.name)", "error": "\(failure)"])
            } else if let pid = restart.pid {
                logger.notice("started a local gateway again", metadata: ["gateway": "\(restart.name)", "pid": "\(pid)"])
            }
        }

        // Behind NAT, gossip reaches this node over the links it holds: keep its contact's up,
        // and links to every gateway and to at least two members. Every second: until the
        // links to gateways other than the contact are up, members take them for granted
        // (`MeshReach`) and probes of this node through those gateways fail.
        @Sendable func joined(_ peer: NodeID?, _ address: String) async {
            if o.linksOnly, let peer { await pool.keep(peer, address: address) }
        }
        var joins: [@Sendable () async throws -> Void] = []
        for seed in plan.seeds {
            joins.append { await joined(try await TokenJoin.join(seed, endpoint: endpoint, mesh: mesh, admission: plan.meshID != nil, logger: logger), seed) }
        }
        if let (text, token) = plan.token, !(gate.roster?.isMember(identity.id) ?? false) {
            joins.append {
                let contact = try await TokenJoin.join(token: token, text: text, addresses: [o.advertisedAddress], endpoint: endpoint,
                                                       mesh: mesh, store: store, logger: logger)
                await joined(contact.peer, contact.address)
            }
        } else if let (_, token) = plan.token {
            // Admitted on an earlier run: rejoin through the members the token lists.
            for seed in token.addresses {
                joins.append { await joined(try await TokenJoin.join(seed, endpoint: endpoint, mesh: mesh, admission: true, logger: logger), seed) }
            }
        }

        var services: [any Service] = [StopStep("node") { logger.info("node stopped") }]
        if let releaseServer { services.append(releaseServer) }
        if let metricsServer { services.append(metricsServer) }
        services.append(StopStep("gossip socket") { await transport.close() })
        services.append(StopStep("links") {
            await pool.shutdown()
            await endpoint.shutdown()
        })
        services.append(StreamRouterService(inbox: inbox, router: router))
        if let ingress { services.append(StopStep("public listeners") { await ingress.shutdown() }) }
        if let certificates { services.append(StopStep("certificates") { await certificates.shutdown() }) }
        services.append(UntilShutdown("runs", { await runs.watchExits() }, then: { await runs.shutdown() }))
        let linkWatch = GatewayLinkWatch(
            gateway: { id in await view.gateways[id].map { ($0.address, $0.name) } },
            linked: { pool.existing($0) != nil }, runs: runs)
        services.append(UntilShutdown("gateway links") { await linkWatch.run(endpoint.events) })
        services.append(MeshService(mesh: mesh))
        if let gatewayLeases {
            services.append(Periodic("lease expiry", every: .seconds(1)) { await gatewayLeases.expire() })
        }
        if let certificates, let gatewayLeases, o.acme == nil {
            let bundle = URL(fileURLWithPath: o.stateDirectory).appendingPathComponent("certificates/mesh-ca.pem")
            let applied = NIOLockedValueBox<MeshACME?>(nil)
            services.append(Periodic("mesh ACME setting", every: .seconds(1), now: true) {
                let setting = await mesh.snapshots(kinds: [.meshSetting]).first { $0.key == MeshACME.key }.flatMap { try? MeshACME.decode($0.value) }
                // The setting itself, not only what it makes: a new bundle keeps the file's path.
                guard setting != applied.withLockedValue({ $0 }) else { return }
                let wanted = NodeAgent.meshACME(setting, caBundlePath: bundle.path, httpPort: o.httpPort, httpsPort: o.httpsPort)
                do {
                    if let pem = setting?.caBundlePEM {
                        try FileManager.default.createDirectory(at: bundle.deletingLastPathComponent(), withIntermediateDirectories: true,
                                                                attributes: [.posixPermissions: 0o700])
                        try Data(pem.utf8).write(to: bundle, options: .atomic)
                    }
                } catch {
                    logger.error("the mesh's ACME CA bundle could not be written", metadata: ["file": "\(bundle.path)", "error": "\(error)"])
                    return
                }
                logger.notice("the mesh's ACME setting changed", metadata: [
                    "acme.directory": "\(wanted?.directoryURL ?? "none: no HTTPS")", "acme.ca_bundle": "\(setting?.caBundlePEM != nil)",
                ])
                applied.withLockedValue { $0 = setting }
                acme.withLockedValue { $0 = wanted }
                if let wanted { await certificates.use(wanted) }
                await gatewayLeases.reroute()
                do { try await announce() } catch {
                    logger.warning("could not announce the gateway's HTTPS port", metadata: ["error": "\(error)"])
                }
            })
        }
        services.append(Periodic("idle relayed links", every: .seconds(5)) {
            let live = Set(await mesh.members().filter { $0.state == .alive || $0.state == .suspect }.map(\.id))
            await pool.closeIdleRelayedLinks(wanted: { live.contains($0) && gate.mayLink($0) })
        })
        if o.linksOnly {
            services.append(Periodic("links kept", every: .seconds(1), now: true) {
                await pool.keepLinks(among: await mesh.members(), local: identity.id)
            })
        }
        if metricsServer != nil {
            services.append(UntilShutdown("node metrics") {
                await NodeMetrics().run(mesh: mesh, view: view, endpoint: endpoint, leases: gatewayLeases, runs: runs, proxy: ingress)
            })
        }
        services.append(server)
        var configurations = services.map {
            ServiceGroupConfiguration.ServiceConfiguration(
                service: $0, successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup)
        }
        if !joins.isEmpty {
            let joins = joins
            // Joins end when joined; a join that fails stops the node, in order, with its error.
            configurations.append(.init(
                service: UntilShutdown("joins") {
                    try await withThrowingDiscardingTaskGroup { group in
                        for join in joins { group.addTask { try await join() } }
                    }
                },
                successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup))
        }
        self.services = configurations
    }

    /// The release server of a gateway started with `--serve-release`, when the node has a release
    /// to serve (a first boot kept it); a node without one, or whose tarball changed, serves none
    /// and says why in its log.
    static func serveRelease(_ o: AgentOptions, logger: Logger) async throws -> ReleaseServer? {
        guard let endpoint = o.serveRelease else { return nil }
        let release: ReleaseServer.Release
        do {
            guard let installed = try ReleaseServer.installed(stateDirectory: o.stateDirectory) else {
                logger.notice("no release to serve: this node was not installed by a gateway's first boot", metadata: [
                    "hint": "\(FirstBootScript.releaseTarballFile) and \(FirstBootScript.releaseSHA256File) in the state directory are what is served",
                ])
                return nil
            }
            release = installed
        } catch {
            logger.error("the release is not served", metadata: ["error": "\(error)"])
            return nil
        }
        return try await NodeStartError.binding("the release (HTTP)", on: HostPort.format(endpoint.host, endpoint.port)) {
            try await ReleaseServer.bind(host: endpoint.host, port: endpoint.port, release: release, logger: logger)
        }
    }

    /// The gateway role: leases on its address, published to the mesh, and the public listeners
    /// kept in step with them. Nil for a node that is not a gateway.
    static func gatewayRole(
        _ o: AgentOptions, id: NodeID, name: String, store: StateStore, mesh: MeshState, view: MeshView, pool: LinkPool,
        certificates: CertificateManager?, acme: @escaping @Sendable () -> AcmeSettings?, logger: Logger
    ) throws -> (GatewayLeases?, GatewayIngress?) {
        guard o.isGateway, let publicAddress = o.publicAddress, let bindHost = o.resolvedPublicBindHost else { return (nil, nil) }
        var configuration = try ProxyConfiguration(environment: ProcessInfo.processInfo.environment)
        configuration.tls = certificates?.tls
        let proxy = GatewayIngress(
            group: MultiThreadedEventLoopGroup.singleton, connector: LinkConnector(pool: pool, localID: id),
            configuration: configuration, logger: logger)
        // Ports the last `apply` could not bind, with the reason, for confirming grants.
        let bindFailures = NIOLockedValueBox<[Int: String]>([:])
        var hooks = GatewayLeases.Hooks(
            changed: { granted, removed, held in
                for lease in granted {
                    try? await mesh.put(kind: .lease, key: MeshView.leaseKey(lease.binding), value: Array(try JSONEncoder().encode(lease)))
                }
                for lease in removed { try? await mesh.delete(kind: .lease, key: MeshView.leaseKey(lease.binding)) }
                var failed: [Int: String] = [:]
                let settings = acme()
                if let certificates { await certificates.serve(settings.map { terminatedNames(held, acme: $0) } ?? []) }
                for failure in await proxy.apply(routingTable(held, bindHost: bindHost, acme: settings)) {
                    logger.error("a public port could not be bound", metadata: ["error": "\(failure)"])
                    if case .bindFailed(let address, let reason) = failure { failed[address.port] = reason }
                }
                bindFailures.withLockedValue { $0 = failed }
            },
            gossiped: { await view.leaseTable(authoredBy: id) },
            listenerFailure: { binding in
                guard let reason = bindFailures.withLockedValue({ $0[binding.port] }) else { return nil }
                return bindFailureText(reason)
            })
        hooks.domainOwner = { domain in await view.domainClaims().owner(of: domain, now: Date()) }
        let leases = GatewayLeases(addresses: [publicAddress], name: name, store: store, hooks: hooks, logger: logger)
        return (leases, proxy)
    }

    /// A listener's bind error as the runner's user reads it, after "port P on gateway G".
    static func bindFailureText(_ reason: String) -> String {
        if reason.contains("Address already in use") || reason.contains("EADDRINUSE") {
            return "is taken by another program; stop it on the gateway or publish on another port"
        }
        return "could not be bound (\(reason)); publish on another port or fix the gateway"
    }

    /// The public listeners for a gateway's leases. With ACME, a name held on the HTTP port is
    /// also served on the HTTPS port, where the gateway terminates TLS.
    static func routingTable(_ leases: [Lease], bindHost: String, acme: AcmeSettings? = nil) -> RoutingTable {
        var table = RoutingTable()
        for lease in leases {
            let address = ListenAddress(host: bindHost, port: lease.binding.port)
            let route = Route(runID: lease.runID, upstream: lease.holder, appPort: lease.appPort)
            if let host = lease.binding.host {
                try? table.addHost(host, route: route, on: address)
            } else {
                try? table.addExclusive(route, on: address)
            }
        }
        if let acme {
            // After the leases' own bindings: a service that terminates TLS itself on the HTTPS
            // port (SNI passthrough) keeps its name there.
            for lease in leases where lease.binding.port == acme.httpPort && lease.terminatesTLS {
                guard let host = lease.binding.host else { continue }
                let route = Route(runID: lease.runID, upstream: lease.holder, appPort: lease.appPort, terminatesTLS: true)
                try? table.addHost(host, route: route, on: ListenAddress(host: bindHost, port: acme.httpsPort))
            }
        }
        return table
    }

    /// A gateway's ACME settings from the mesh's setting (for a gateway without flags of its
    /// own): its CA bundle, when it has one, is read from `caBundlePath`; nil: no HTTPS.
    static func meshACME(_ setting: MeshACME?, caBundlePath: String, httpPort: Int, httpsPort: Int) -> AcmeSettings? {
        guard let setting else { return nil }
        return AcmeSettings(directoryURL: setting.directory, email: setting.email,
                            caBundlePath: setting.caBundlePEM == nil ? nil : caBundlePath, httpPort: httpPort, httpsPort: httpsPort)
    }

    /// The names a gateway terminates TLS for: host-routed leases on its HTTP port, but for
    /// services that opted out (`https: false`).
    static func terminatedNames(_ leases: [Lease], acme: AcmeSettings) -> Set<String> {
        Set(leases.filter { $0.binding.port == acme.httpPort && $0.terminatesTLS }.compactMap(\.binding.host))
    }
}
