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
    let logger: Logger

    func lookup(host: String?) -> RouteLookup {
        self.table.withLockedValue { $0.lookup(self.address, host: host) }
    }

    var binding: Binding? {
        self.table.withLockedValue { $0.bindings[self.address] }
    }

    /// Connects `client` (which carries a holding `SpliceHandler`) to `route` and splices them;
    /// closes the client if the upstream can't be reached (raw TCP has no way to say why).
    func spliceToUpstream(_ client: any Channel, route: Route) {
        let logger = self.logger
        self.connector.connect(
            to: route,
            clientAddress: client.remoteAddress,
            on: client.eventLoop,
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
                client.close(promise: nil)
            }
        }
    }
}
