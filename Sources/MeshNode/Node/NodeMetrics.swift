import Gossip
import Metrics

/// The node's figures as swift-metrics gauges, sampled from its parts every few seconds: the
/// process bootstraps a backend (Prometheus, with `warren node start --metrics`) or they go
/// nowhere.
struct NodeMetrics {
    private let links = Gauge(label: "warren_links")
    private let members: [MemberState: Gauge] = Dictionary(
        uniqueKeysWithValues: [MemberState.alive, .suspect, .dead, .left].map { ($0, Gauge(label: "warren_members", dimensions: [("state", "\($0)")])) })
    private let leasesKnown = Gauge(label: "warren_leases", dimensions: [("scope", "mesh")])
    private let leasesGranted = Gauge(label: "warren_leases", dimensions: [("scope", "granted_here")])
    private let runsActive = Gauge(label: "warren_runs_active")
    private let gossipMessagesSent = Gauge(label: "warren_gossip_messages_sent_total")
    private let gossipMessagesReceived = Gauge(label: "warren_gossip_messages_received_total")
    private let gossipBytesSent = Gauge(label: "warren_gossip_bytes_sent_total")
    private let gossipBytesReceived = Gauge(label: "warren_gossip_bytes_received_total")
    private let probesFailed = Gauge(label: "warren_gossip_probes_failed_total")
    private let droppedDatagrams = Gauge(label: "warren_gossip_datagrams_dropped_total")
    private let droppedEntries = Gauge(label: "warren_gossip_entries_dropped_total")

    /// Samples until the task is cancelled.
    func run(mesh: MeshState, view: MeshView, pool: LinkPool, endpoint: LinkEndpoint, leases: GatewayLeases?, runs: RunManager) async {
        while !Task.isCancelled {
            links.record(endpoint.links.count)
            let all = await mesh.members()
            for (state, gauge) in members { gauge.record(all.filter { $0.state == state }.count) }
            leasesKnown.record(await view.leaseTable().leases.count)
            if let leases { leasesGranted.record(await leases.leases.count) }
            runsActive.record(await runs.list().filter(\.isActive).count)
            let c = await mesh.counters
            gossipMessagesSent.record(c.messagesSent)
            gossipMessagesReceived.record(c.messagesReceived)
            gossipBytesSent.record(c.bytesSent)
            gossipBytesReceived.record(c.bytesReceived)
            probesFailed.record(c.probesFailed)
            droppedDatagrams.record(await mesh.droppedDatagrams)
            droppedEntries.record(c.droppedBadSignature + c.droppedNonMemberAuthor + c.droppedFutureDated + c.undecodable)
            try? await Task.sleep(for: .seconds(2))
        }
    }
}
