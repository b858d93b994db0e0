import Gossip
import Link
import Metrics
import NIOCore
import NIOPosix
import Proxy

/// The Proxy's way to a runner's app: a new stream on the link the runner holds to this gateway
/// (a relayed one when there is no direct link, see `LinkRelay`), or, for a run of this node itself, a TCP connection to the app on loopback (a node holds no
/// link to itself).
struct LinkConnector: UpstreamConnector {
    let pool: LinkPool
    /// This node's ID: routes whose upstream it is are this node's own runs.
    var localID: NodeID?
    var appHost = "127.0.0.1"

    func connect(
        to route: Route, clientAddress: SocketAddress?, serverAddress: SocketAddress?, on eventLoop: any EventLoop,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel> {
        if let localID, route.upstream == localID.description {
            return dialLocal(route, on: eventLoop, initializer: initializer)
        }
        guard let peer = NodeID(route.upstream) else {
            return eventLoop.makeFailedFuture(ProxyError.upstreamNotConnected(route))
        }
        let pool = self.pool
        var headers = [(":path", LinkPath.proxy.rawValue), (LinkHeader.appPort.rawValue, String(route.appPort)), (LinkHeader.run.rawValue, route.runID)]
        // For the PROXY protocol header of a service that asked for one (the runner knows which).
        if let client = clientAddress.flatMap(EndpointText.format) { headers.append((LinkHeader.client.rawValue, client)) }
        if let server = serverAddress.flatMap(EndpointText.format) { headers.append((LinkHeader.server.rawValue, server)) }
        let promise = eventLoop.makePromise(of: (any Channel).self)
        promise.completeWithTask { [headers] in
            // No live link to the runner (it holds links to fewer gateways, or is re-making its
            // link to this one): one relay hop through a member linked to it.
            var link = pool.existing(peer)
            for attempt in 0..<2 {
                if link == nil { link = try? await pool.relayed(to: peer) }
                guard let current = link else { break }
                do {
                    let stream = try await current.openStream(headers: headers, initializer: initializer)
                    if current.relay != nil { Counter(label: "warren_relay_streams_total", dimensions: [("role", "gateway")]).increment() }
                    return stream.channel
                } catch LinkError.streamRefused(let status) where status == 502 {
                    throw ProxyError.upstreamRefused(route)
                } catch LinkError.closed where attempt == 0 && current.relay == nil {
                    // A direct link that died under the stream: once more, through a relay.
                    link = nil
                } catch {
                    break
                }
            }
            throw ProxyError.upstreamNotConnected(route)
        }
        return promise.futureResult
    }

    /// The app of a run on this node, as the runner's end of a link dials it (`AppDialer`). Only
    /// this gateway's own grants put this node's ID in a route (a peer's lease request has its
    /// holder set to the peer the link proved), so the route is one of this node's runs.
    private func dialLocal(
        _ route: Route, on eventLoop: any EventLoop, initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel> {
        ClientBootstrap(group: eventLoop)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { initializer($0) }
            .connect(host: appHost, port: route.appPort)
            .flatMapErrorThrowing { _ in throw ProxyError.upstreamRefused(route) }
    }
}
