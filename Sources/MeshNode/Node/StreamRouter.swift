import Gossip
import Link
import Logging
import Metrics
import NIOCore
import Proxy
import ServiceLifecycle

/// Answers the streams peers open on links: gossip messages, lease calls (on a gateway), and
/// public connections to this node's apps (on a runner); a member relays links between others.
/// Complete at `init`; `StreamInbox` brings it the streams, in the node's service group.
struct StreamRouter: Sendable {
    let mesh: MeshState
    let leases: GatewayLeases?
    let runs: RunManager
    /// Admission: a peer that is not a member may only present its invite token to `desk`.
    let gate: MeshGate
    let desk: AdmissionDesk
    /// Project member removals asked by an admin outside the project.
    let admin: MeshAdminAPI
    /// Relayed links: this node relays them between members, and accepts them.
    let relay: LinkRelay
    /// The calls (gossip, admission, leases, removals), answered in tasks of each link's own loop.
    let calls: LinkRPCServer
    let logger: Logger

    /// The server of the router's calls: a link past its bound of calls at once gets 503, counted
    /// in `warren_link_rpc_refused_total`.
    static func callServer() -> LinkRPCServer {
        LinkRPCServer(refused: { _ in Counter(label: "warren_link_rpc_refused_total").increment() })
    }

    func accept(_ headers: [(String, String)], _ stream: LinkStream) async -> Int {
        let path = LinkPath.of(headers)
        let peer = stream.peer
        if path == LinkPath.admissionJoin.rawValue {
            return await calls.serve(stream) { bytes in await desk.answer(bytes, from: peer) }
        }
        if !gate.isMember(peer) {
            if path == LinkRelay.openPath { Counter(label: "warren_relay_refused_total", dimensions: [("reason", "not a member")]).increment() }
            return 403
        }
        switch path {
        case LinkPath.relay.rawValue:
            return await relay.serve(headers, stream)
        case LinkPath.relayAccept.rawValue:
            return await relay.accept(headers, stream)
        case LinkPath.gossip.rawValue:
            return await calls.serve(stream) { bytes in
                await mesh.receive(message: bytes, from: peer)
                return []
            }
        case LinkPath.leaseGrant.rawValue, LinkPath.leaseRelease.rawValue:
            guard let leases else { return 404 }
            return await calls.serve(stream) { bytes in
                await LinkLeases.serve(path, bytes, leases: leases, from: peer)
            }
        case LinkPath.projectRemoveMember.rawValue:
            return await calls.serve(stream) { bytes in await admin.serveRemoval(bytes, from: peer) }
        case LinkPath.proxy.rawValue:
            // Only a port of a run that this node serves, and only for the gateway it leased from.
            guard let port = LinkHeader.appPort.value(in: headers).flatMap({ Int($0) }),
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
}

/// The streams peers open, from the link endpoint's acceptor to the router: a bounded buffer
/// (when it is full the oldest waiting stream is refused with 503) consumed by `run`, which
/// answers each in a child task of its own (an app being dialled must not hold up the others),
/// and runs the router's calls beside them.
final class StreamInbox: Sendable {
    /// How many opened streams may wait for the router.
    static let buffered = 512

    struct Opened: Sendable {
        var headers: [(String, String)]
        var stream: LinkStream
        var answer: CheckedContinuation<Int, Never>
    }

    private let streams: AsyncStream<Opened>
    private let continuation: AsyncStream<Opened>.Continuation

    init() {
        let (streams, continuation) = AsyncStream.makeStream(of: Opened.self, bufferingPolicy: .bufferingNewest(Self.buffered))
        self.streams = streams
        self.continuation = continuation
    }

    /// The endpoint's `LinkStreamAcceptor`: the router's status for the stream, 503 once stopped
    /// or when the stream waited too long.
    func accept(_ headers: [(String, String)], _ stream: LinkStream) async -> Int {
        await withCheckedContinuation { answer in
            switch continuation.yield(Opened(headers: headers, stream: stream, answer: answer)) {
            case .enqueued: break
            case .dropped(let oldest): oldest.answer.resume(returning: 503)
            case .terminated: answer.resume(returning: 503)
            @unknown default: answer.resume(returning: 503)
            }
        }
    }

    /// Routes streams until graceful shutdown, then refuses new ones and answers those waiting
    /// (503), and returns once the calls taken have been answered.
    func run(_ router: StreamRouter) async {
        await withDiscardingTaskGroup { group in
            group.addTask { await router.calls.run() }
            group.addTask {
                await withDiscardingTaskGroup { routing in
                    // On graceful shutdown this ends once `finish` has ended the stream and every
                    // stream still waiting has been routed.
                    for await opened in self.streams {
                        routing.addTask { opened.answer.resume(returning: await router.accept(opened.headers, opened.stream)) }
                    }
                }
                // No stream is left to route, so no call is left to take.
                router.calls.finish()
            }
            try? await gracefulShutdown()
            continuation.finish()
        }
    }
}
