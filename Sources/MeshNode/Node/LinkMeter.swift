import Gossip
import Link
import Metrics
import NIOConcurrencyHelpers
import NIOCore

/// Per-link figures as Prometheus series, labelled by the peer's node ID: bytes each way and
/// streams opened (counters), streams open now (gauge). Links to one peer (either direction,
/// successive ones) add up; what a link carried after its last sample is counted when it closes.
final class LinkMeter: Sendable {
    private struct Sampled {
        /// Held, so that its identity (the key) is not reused while the entry exists.
        var traffic: LinkTraffic
        var last: LinkTraffic.Snapshot
        var closed = false
    }

    private struct State {
        var links: [ObjectIdentifier: Sampled] = [:]
        var peers: Set<NodeID> = []
    }

    private let state = NIOLockedValueBox(State())

    /// Samples the links up now; call periodically.
    func sample(_ links: [Link]) {
        let current = Set(links.map { ObjectIdentifier($0.traffic) })
        var active: [NodeID: Int] = [:]
        for link in links {
            let key = ObjectIdentifier(link.traffic)
            let isNew = state.withLockedValue { state in
                state.peers.insert(link.peer)
                guard state.links[key] == nil else { return false }
                state.links[key] = Sampled(traffic: link.traffic, last: LinkTraffic.Snapshot())
                return true
            }
            if isNew {
                link.closeFuture.whenComplete { [self] _ in
                    record(link, key: key)
                    state.withLockedValue { $0.links[key]?.closed = true }
                }
            }
            record(link, key: key)
            active[link.peer, default: 0] += link.traffic.snapshot.streamsActive
        }
        let peers = state.withLockedValue { state in
            // Closed links leave once the endpoint no longer lists them.
            state.links = state.links.filter { !$0.value.closed || current.contains($0.key) }
            return state.peers
        }
        for peer in peers {
            Gauge(label: "warren_link_streams_active", dimensions: [("peer", peer.description)]).record(active[peer] ?? 0)
        }
    }

    /// Adds what `link` carried since its last sample to its peer's counters.
    private func record(_ link: Link, key: ObjectIdentifier) {
        guard let (before, now) = state.withLockedValue({ state -> (LinkTraffic.Snapshot, LinkTraffic.Snapshot)? in
            guard let sampled = state.links[key], !sampled.closed else { return nil }
            let now = sampled.traffic.snapshot
            state.links[key]?.last = now
            return (sampled.last, now)
        }) else { return }
        let peer = link.peer.description
        for (direction, delta) in [("sent", now.bytesSent - before.bytesSent), ("received", now.bytesReceived - before.bytesReceived)] where delta > 0 {
            Counter(label: "warren_link_bytes_total", dimensions: [("peer", peer), ("direction", direction)]).increment(by: Int64(delta))
        }
        if now.streamsOpened > before.streamsOpened {
            Counter(label: "warren_link_streams_opened_total", dimensions: [("peer", peer)]).increment(by: Int64(now.streamsOpened - before.streamsOpened))
        }
    }
}
