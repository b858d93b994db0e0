import Gossip
import Link
import NIOCore
import Proxy

/// The Proxy's way to a runner's app: a new stream on the link the runner holds to this gateway.
struct LinkConnector: UpstreamConnector {
    let pool: LinkPool

    func connect(
        to route: Route, clientAddress: SocketAddress?, serverAddress: SocketAddress?, on eventLoop: any EventLoop,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel> {
        guard let peer = NodeID(route.upstream), let link = pool.existing(peer) else {
            return eventLoop.makeFailedFuture(ProxyError.upstreamNotConnected(route))
        }
        var headers = [(":path", "/proxy"), ("warren-app-port", String(route.appPort)), ("warren-run", route.runID)]
        // For the PROXY protocol header of a service that asked for one (the runner knows which).
        if let client = clientAddress.flatMap(EndpointText.format) { headers.append(("warren-client", client)) }
        if let server = serverAddress.flatMap(EndpointText.format) { headers.append(("warren-server", server)) }
        let promise = eventLoop.makePromise(of: (any Channel).self)
        promise.completeWithTask { [headers] in
            do {
                return try await link.openStream(headers: headers, initializer: initializer).channel
            } catch LinkError.streamRefused(let status) where status == 502 {
                throw ProxyError.upstreamRefused(route)
            } catch {
                throw ProxyError.upstreamNotConnected(route)
            }
        }
        return promise.futureResult
    }
}
