import Gossip
import Link
import Logging
import Metrics
import NIOCore
import Proxy

/// One relay hop between a gateway and a runner that hold no link to each other.
///
/// The node that needs the link (a gateway for a public connection, a runner for a lease call)
/// opens `/relay` on its link to a member M, naming the far node. M checks the request and opens
/// `/relay/accept` on its own link to that node, naming the caller, then splices the two streams.
/// Over the spliced streams the two ends run the link handshake themselves (`dialRelayed` /
/// `acceptRelayed`): the relayed link is authenticated end to end and M carries only ciphertext.
///
/// M relays only for members (the router refuses others), only between a gateway and another
/// member (one of the two ends announced a gateway), only over its direct links, and never a
/// stream of a relayed link: one hop.
struct LinkRelay: Sendable {
    static let openPath = LinkPath.relay.rawValue
    static let acceptPath = LinkPath.relayAccept.rawValue
    static let toHeader = LinkHeader.relayTo.rawValue
    static let fromHeader = LinkHeader.relayFrom.rawValue

    let localID: NodeID
    let pool: LinkPool
    let endpoint: LinkEndpoint
    /// The members that announced a gateway.
    let gateways: @Sendable () async -> Set<NodeID>
    let logger: Logger

    /// M's side: `/relay` from `stream.peer` (a member: the router checked) to the node named in
    /// the headers. Returns the stream's answer.
    func serve(_ headers: [(String, String)], _ stream: LinkStream) async -> Int {
        let caller = stream.peer
        guard let target = headers.first(where: { $0.0 == Self.toHeader }).flatMap({ NodeID($0.1) }),
              target != caller, target != localID else {
            return refuse(400, "no other node named", caller: caller, target: nil)
        }
        // One hop: a stream that reached this node through a relay is not relayed again.
        guard stream.relay == nil else { return refuse(403, "relayed", caller: caller, target: target) }
        let gateways = await gateways()
        guard gateways.contains(caller) || gateways.contains(target) else {
            return refuse(403, "no gateway", caller: caller, target: target)
        }
        guard let link = pool.existingDirect(target) else { return refuse(404, "not linked", caller: caller, target: target) }
        do {
            try await stream.channel.eventLoop.submit {
                try stream.channel.pipeline.syncOperations.addHandler(Splice.holdingHandler())
            }.get()
            let onward = try await link.openStream(headers: [(":path", Self.acceptPath), (Self.fromHeader, caller.description)]) { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Splice.holdingHandler()) }
            }
            Splice.attach(stream.channel, onward.channel)
        } catch {
            logger.debug("a relay to a linked node failed", metadata: ["peer.id": "\(caller.short)", "relay.to": "\(target.short)", "error": "\(error)"])
            return refuse(502, "target refused", caller: caller, target: target)
        }
        Counter(label: "warren_relay_links_total", dimensions: [("role", "relay")]).increment()
        logger.debug("relaying a link", metadata: ["peer.id": "\(caller.short)", "relay.to": "\(target.short)"])
        return 200
    }

    /// The far node's side: `/relay/accept` from the relay, for a link from the node it names.
    /// The handshake that follows proves that node (and its admission) or the link is refused.
    func accept(_ headers: [(String, String)], _ stream: LinkStream) async -> Int {
        guard let from = headers.first(where: { $0.0 == Self.fromHeader }).flatMap({ NodeID($0.1) }), from != localID else { return 400 }
        guard stream.relay == nil else { return 403 }
        do {
            try await endpoint.acceptRelayed(on: stream, from: from)
        } catch {
            return 500
        }
        Counter(label: "warren_relay_links_total", dimensions: [("role", "accepted")]).increment()
        return 200
    }

    private func refuse(_ status: Int, _ reason: String, caller: NodeID, target: NodeID?) -> Int {
        Counter(label: "warren_relay_refused_total", dimensions: [("reason", reason)]).increment()
        logger.info("refused to relay a link", metadata: [
            "peer.id": "\(caller.short)", "relay.to": "\(target.map { $0.short } ?? "-")", "reason": "\(reason)",
        ])
        return status
    }
}

/// No member linked to this node could relay a link to `peer`.
struct RelayUnavailable: Error, CustomStringConvertible {
    let peer: NodeID
    /// Each member asked, with its answer.
    let asked: [(NodeID, String)]

    var description: String {
        if asked.isEmpty { return "no link to node \(peer.short), and no linked member to relay through" }
        let answers = asked.map { "\($0.0.short): \($0.1)" }.joined(separator: "; ")
        return "no link to node \(peer.short), and no member relayed one (\(answers))"
    }
}
