import Gossip
import Link
import Logging
import Metrics
import NIOCore
import Proxy

/// Answers the streams peers open on links: gossip messages, lease calls (on a gateway), and
/// public connections to this node's apps (on a runner).
actor StreamRouter {
    private var mesh: MeshState?
    private var leases: GatewayLeases?
    private var runs: RunManager?
    private var logger = Logger(label: "warren.node")
    private var gate: MeshGate?
    private var desk: AdmissionDesk?
    private var admin: MeshAdminAPI?
    private var relay: LinkRelay?

    func configure(mesh: MeshState, leases: GatewayLeases?, runs: RunManager, logger: Logger) {
        self.mesh = mesh
        self.leases = leases
        self.runs = runs
        self.logger = logger
    }

    /// Project member removals asked by an admin outside the project.
    func configureProjects(_ admin: MeshAdminAPI) {
        self.admin = admin
    }

    /// Relayed links: this node relays them between members, and accepts them.
    func configureRelay(_ relay: LinkRelay) {
        self.relay = relay
    }

    /// Admission: a peer that is not a member may only present its invite token.
    func configureAdmission(gate: MeshGate, desk: AdmissionDesk) {
        self.gate = gate
        self.desk = desk
    }

    func accept(_ headers: [(String, String)], _ stream: LinkStream) async -> Int {
        let path = LinkPath.of(headers)
        let peer = stream.peer
        if let desk, path == LinkPath.admissionJoin.rawValue {
            return await answer(LinkRPC.serve(stream) { bytes in await desk.answer(bytes, from: peer) })
        }
        if let gate, !gate.isMember(peer) {
            if path == LinkRelay.openPath { Counter(label: "warren_relay_refused_total", dimensions: [("reason", "not a member")]).increment() }
            return 403
        }
        switch path {
        case LinkPath.relay.rawValue:
            guard let relay else { return 404 }
            return await relay.serve(headers, stream)
        case LinkPath.relayAccept.rawValue:
            guard let relay else { return 404 }
            return await relay.accept(headers, stream)
        case LinkPath.gossip.rawValue:
            guard let mesh else { return 503 }
            return await answer(LinkRPC.serve(stream) { bytes in
                await mesh.receive(message: bytes, from: peer)
                return []
            })
        case LinkPath.leaseGrant.rawValue, LinkPath.leaseRelease.rawValue:
            guard let leases else { return 404 }
            return await answer(LinkRPC.serve(stream) { bytes in
                await LinkLeases.serve(path, bytes, leases: leases, from: peer)
            })
        case LinkPath.projectRemoveMember.rawValue:
            guard let admin else { return 404 }
            return await answer(LinkRPC.serve(stream) { bytes in await admin.serveRemoval(bytes, from: peer) })
        case LinkPath.proxy.rawValue:
            // Only a port of a run that this node serves, and only for the gateway it leased from.
            guard let runs, let port = LinkHeader.appPort.value(in: headers).flatMap({ Int($0) }),
                  let runID = LinkHeader.run.value(in: headers),
                  await runs.serves(runID: runID, appPort: port) else { return 403 }
            var preamble: ByteBuffer?
            if await runs.sendsProxyHeader(runID: runID) {
                // The app parses a header on every connection: one that can't be made is no connection.
                guard let client = LinkHeader.client.value(in: headers).flatMap(EndpointText.parse),
                      let server = LinkHeader.server.value(in: headers).flatMap(EndpointText.parse),
                      let header = ProxyProtocolHeader(source: client, destination: server) else {
                    logger.warning("a proxied connection came without client addresses; its run wants a PROXY header",
                                   metadata: ["run.id": "\(runID)", "peer": "\(peer)"])
                    return 400
                }
                preamble = header.bytes
            }
            do {
                let app = try await AppDialer().dial(appPort: port, for: stream.channel, preamble: preamble).get()
                Splice.attach(stream.channel, app)
                return 200
            } catch {
                logger.debug("app refused a proxied connection", metadata: ["run.id": "\(runID)", "error": "\(error)"])
                return 502
            }
        default:
            return 404
        }
    }

    private func answer(_ setUp: EventLoopFuture<Void>) async -> Int {
        (try? await setUp.get()) != nil ? 200 : 500
    }
}
