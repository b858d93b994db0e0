import Gossip
import Link

/// Tells the runs when this node's links to a gateway come and go, so that `ps` shows a path
/// as unreachable when the last link to its gateway closes, not only when a renewal fails a
/// third of a lease's TTL later, and a run backing off asks again as soon as a link is up.
struct GatewayLinkWatch: Sendable {
    /// The gateway a node announced, by its ID: its public address and name (nil: not a gateway).
    let gateway: @Sendable (NodeID) async -> (address: String, name: String)?
    /// Whether some link to the node is still up (the pool's `existing`).
    let linked: @Sendable (NodeID) -> Bool
    let runs: RunManager

    /// Follows `events` until they end or the task is cancelled.
    func run(_ events: AsyncStream<LinkEvent>) async {
        for await event in events {
            switch event {
            case .up(let link):
                guard let gateway = await gateway(link.peer) else { continue }
                await runs.gatewayLinkUp(address: gateway.address)
            case .down(let link):
                // A newer link (the peer redialled, or a relayed one) still carries its streams.
                guard !linked(link.peer), let gateway = await gateway(link.peer) else { continue }
                let kind = link.relay.map { "relayed by \($0.short)" } ?? "direct"
                await runs.gatewayLinkLost(address: gateway.address, reason: "no link to gateway \(gateway.name): its last link (\(kind)) closed")
            }
        }
    }
}
