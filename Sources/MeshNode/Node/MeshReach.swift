import Gossip

/// Who can reach whom, as this node can tell: gossip's `reaches` (where it probes, gossips and
/// asks for indirect probes). A message counts as reaching a member when its answer can come back.
///
/// - This node reaches a member it holds a live link to, and one on its own network by datagram.
///   Without a link, a member not behind NAT reaches a public member by datagram; a member behind
///   NAT (`linksOnly`) reaches nobody off its network, as answers to its private address are lost.
/// - Of other members it cannot see the links, so it goes by the rule nodes behind NAT keep
///   (`LinkPool.keepLinks`): they hold links to every gateway they can dial. Two members not behind
///   NAT reach each other; a member behind NAT and a gateway reach each other; two members behind
///   NAT only on the same network (the same /24, for IPv4); a member behind NAT and a public
///   member that is not a gateway are taken not to (their link is not certain).
struct MeshReach: Sendable {
    let local: NodeID
    /// This machine's networks.
    let networks: LinkReach
    /// Whether this node holds a live link to the member.
    let hasLink: @Sendable (NodeID) -> Bool

    func reaches(_ from: Member, _ to: Member) -> Bool {
        let source = MemberTraits(metadata: from.metadata), target = MemberTraits(metadata: to.metadata)
        if from.id == local {
            if hasLink(to.id) { return true }
            if let host = Self.host(to), networks.isOnLocalNetwork(host) { return true }
            return !source.linksOnly && !target.linksOnly
        }
        if to.id == local { return reaches(to, from) }
        switch (source.linksOnly, target.linksOnly) {
        case (false, false): return true
        case (true, false): return target.isGateway
        case (false, true): return source.isGateway
        case (true, true): return Self.sameNetwork(from, to)
        }
    }

    static func host(_ member: Member) -> String? {
        HostPort.parse(member.address)?.host
    }

    /// Two private IPv4 addresses in the same /24 (a guess about a network this node is not on).
    static func sameNetwork(_ a: Member, _ b: Member) -> Bool {
        guard let x = host(a).flatMap(LinkReach.ipv4), let y = host(b).flatMap(LinkReach.ipv4) else { return false }
        return x & 0xFFFF_FF00 == y & 0xFFFF_FF00
    }
}
