import AsyncAlgorithms
import Gossip
import Link
import Metrics
import Proxy
import ServiceLifecycle

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
    /// Active runs by the state of their public path (serving, unreachable, pending, …).
    private let runPaths: [RunPath.State: Gauge] = Dictionary(
        uniqueKeysWithValues: RunPath.State.allCases.map { ($0, Gauge(label: "warren_runs", dimensions: [("path", $0.rawValue)])) })
    private let linkMeter = LinkMeter()
    /// A gateway's public connections, its connections to apps (link streams), the connections
    /// its caps turned away (503 + Retry-After on HTTP, closed on TCP), by the cap that did, and
    /// the HTTP exchanges its timeouts ended (408: request head; 504: the app's answer).
    private let proxyClients = Gauge(label: "warren_proxy_client_connections")
    private let proxyUpstreams = Gauge(label: "warren_proxy_upstream_connections")
    private let proxyRefused: [(counter: Counter, read: @Sendable (ConnectionLimitsSnapshot) -> Int)] = [
        (Counter(label: "warren_proxy_refused_total", dimensions: [("limit", "client")]), { $0.refusedByClientLimit }),
        (Counter(label: "warren_proxy_refused_total", dimensions: [("limit", "route")]), { $0.refusedByRouteLimit }),
        (Counter(label: "warren_proxy_refused_total", dimensions: [("limit", "runner")]), { $0.refusedByRunnerLimit }),
        (Counter(label: "warren_proxy_timeouts_total", dimensions: [("timeout", "request_head")]), { $0.requestHeadTimeouts }),
        (Counter(label: "warren_proxy_timeouts_total", dimensions: [("timeout", "answer")]), { $0.answerTimeouts }),
    ]
    /// Monotonic totals, exported as Prometheus counters (`rate()` works on them): each sample
    /// adds what the source counted since the previous one.
    private let totals: [(counter: Counter, read: @Sendable (GossipCounters, Int) -> Int)] = [
        (Counter(label: "warren_gossip_messages_sent_total"), { c, _ in c.messagesSent }),
        (Counter(label: "warren_gossip_messages_received_total"), { c, _ in c.messagesReceived }),
        (Counter(label: "warren_gossip_bytes_sent_total"), { c, _ in c.bytesSent }),
        (Counter(label: "warren_gossip_bytes_received_total"), { c, _ in c.bytesReceived }),
        (Counter(label: "warren_gossip_probes_failed_total"), { c, _ in c.probesFailed }),
        // Of those, probes of a member reached only through helpers none of which answered.
        (Counter(label: "warren_gossip_probes_inconclusive_total"), { c, _ in c.probesInconclusive }),
        (Counter(label: "warren_gossip_datagrams_dropped_total"), { c, dropped in dropped + c.droppedUnknownSender }),
        (Counter(label: "warren_gossip_entries_dropped_total"), { c, _ in
            c.droppedBadSignature + c.droppedNonMemberAuthor + c.droppedFutureDated + c.undecodable + c.droppedHeld }),
        // Entries held back until their author's admission (or project) arrived.
        (Counter(label: "warren_gossip_entries_held_total"), { c, _ in c.entriesHeld }),
    ]

    /// Samples now and every two seconds until graceful shutdown or cancellation.
    func run(
        mesh: MeshState, view: MeshView, endpoint: LinkEndpoint, leases: GatewayLeases?, runs: RunManager,
        proxy: GatewayIngress? = nil
    ) async {
        var last = [Int](repeating: 0, count: totals.count)
        var refusedLast: [String: Int] = [:]
        var lastRefused = [Int](repeating: 0, count: proxyRefused.count)
        let ticks = chain([ContinuousClock.now].async, AsyncTimerSequence(interval: .seconds(2), clock: .continuous)).cancelOnGracefulShutdown()
        for await _ in ticks {
            // Entries refused by a writer rule, by rule (SECURITY.md): a member writing what it
            // may not shows here, whatever path the entry took.
            for (reason, count) in await mesh.gate?.refusals ?? [:] where count > refusedLast[reason, default: 0] {
                Counter(label: "warren_entries_refused_total", dimensions: [("reason", reason)])
                    .increment(by: Int64(count - refusedLast[reason, default: 0]))
                refusedLast[reason] = count
            }
            if let counts = proxy?.connectionCounts {
                proxyClients.record(counts.clientConnections)
                proxyUpstreams.record(counts.upstreamConnections)
                for (i, refused) in proxyRefused.enumerated() {
                    let value = refused.read(counts)
                    if value > lastRefused[i] { refused.counter.increment(by: Int64(value - lastRefused[i])) }
                    lastRefused[i] = value
                }
            }
            let up = endpoint.links
            links.record(up.count)
            linkMeter.sample(up)
            let all = await mesh.members()
            for (state, gauge) in members { gauge.record(all.filter { $0.state == state }.count) }
            leasesKnown.record(await view.leaseTable().leases.count)
            if let leases { leasesGranted.record(await leases.leases.count) }
            runsActive.record(await runs.list().filter(\.isActive).count)
            let paths = await runs.pathCounts()
            for (state, gauge) in runPaths { gauge.record(paths[state] ?? 0) }
            let c = await mesh.counters
            let dropped = await mesh.droppedDatagrams
            for (i, total) in totals.enumerated() {
                let value = total.read(c, dropped)
                if value > last[i] { total.counter.increment(by: Int64(value - last[i])) }
                last[i] = value
            }
        }
    }
}
