// What every connection accepted by a gateway listener needs to find and reach its route.

import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Shared, thread-safe state of one listener: the current table and how to reach upstreams.
struct IngressContext: Sendable {
    let address: ListenAddress
    let table: NIOLockedValueBox<RoutingTable>
    let connector: any UpstreamConnector
    let configuration: ProxyConfiguration
    let limits: ConnectionLimits
    let logger: Logger

    func lookup(host: String?) -> RouteLookup {
        self.table.withLockedValue { $0.lookup(self.address, host: host) }
    }

    var binding: Binding? {
        self.table.withLockedValue { $0.bindings[self.address] }
    }

    /// Opens a connection to `route`'s app for `client`, within the route's and runner's caps and
    /// the connect timeout. Fails with `ProxyError.overloaded` (a cap is reached),
    /// `.upstreamTimedOut`, or what the connector reports. The future completes on `client`'s loop.
    func connectUpstream(
        for client: any Channel,
        route: Route,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel> {
        let eventLoop = client.eventLoop
        if let limit = self.limits.admitUpstream(route) {
            return eventLoop.makeFailedFuture(ProxyError.overloaded(route, limit: limit))
        }
        let limits = self.limits
        let promise = eventLoop.makePromise(of: (any Channel).self)
        let done = NIOLoopBoundBox(false, eventLoop: eventLoop)
        let timeout = self.configuration.upstreamConnectTimeout
        let timer = eventLoop.scheduleTask(in: timeout) {
            guard !done.value else { return }
            done.value = true
            limits.releaseUpstream(route)
            promise.fail(ProxyError.upstreamTimedOut(route, seconds: timeout.nanoseconds / 1_000_000_000))
        }
        self.connector.connect(
            to: route,
            clientAddress: client.remoteAddress,
            serverAddress: client.localAddress,
            on: eventLoop,
            initializer: initializer
        ).hop(to: eventLoop).whenComplete { result in
            timer.cancel()
            guard !done.value else {
                // Too late: the client was already told.
                if case .success(let upstream) = result { upstream.close(promise: nil) }
                return
            }
            done.value = true
            switch result {
            case .success(let upstream):
                upstream.closeFuture.whenComplete { _ in limits.releaseUpstream(route) }
                promise.succeed(upstream)
            case .failure(let error):
                limits.releaseUpstream(route)
                promise.fail(error)
            }
        }
        return promise.futureResult
    }

    /// Connects `client` (which carries a holding `SpliceHandler`) to `route` and splices them. If
    /// the upstream can't be reached the client is closed (raw TCP has no way to say why), or, with
    /// `answeringFailure`, its `ExclusiveHTTPHandler` is told (`ExclusiveHTTPEvent.upstreamFailed`).
    func spliceToUpstream(_ client: any Channel, route: Route, answeringFailure: Bool = false) {
        let logger = self.logger
        self.connectUpstream(
            for: client,
            route: route,
            initializer: { upstream in
                upstream.eventLoop.makeCompletedFuture {
                    try upstream.pipeline.syncOperations.addHandler(SpliceHandler(partner: nil))
                }
            }
        ).whenComplete { result in
            switch result {
            case .success(let upstream):
                Splice.attach(client, upstream)
            case .failure(let error):
                logger.info(
                    "upstream unavailable, closing client",
                    metadata: ["route.run": "\(route.runID)", "error": "\(error)"]
                )
                if answeringFailure {
                    client.pipeline.fireUserInboundEventTriggered(ExclusiveHTTPEvent.upstreamFailed(error))
                } else {
                    client.close(promise: nil)
                }
            }
        }
    }
}
