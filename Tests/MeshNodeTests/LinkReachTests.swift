import Gossip
@testable import MeshNode
@testable import Provisioning
@testable import Trust
import TrustTestSupport
@testable import Link
import Testing

/// Which members a node dials, and which it keeps links to when it is behind NAT.
struct LinkReachTests {
    /// Site A's network 10.250.1.0/24 and a public interface.
    let siteA = LinkReach(networks: [(0x0AFA_010B, 0xFFFF_FF00), (0xCB00_710A, 0xFFFF_FF00)])

    @Test func anotherSitesPrivateAddressIsNotDialledWhenTheMemberIsBehindNAT() {
        #expect(!siteA.mayDial("10.250.2.11", linksOnly: true))
        #expect(siteA.mayDial("10.250.1.12", linksOnly: true), "the same site's network")
        #expect(siteA.mayDial("203.0.113.20", linksOnly: true), "a public address")
        // A member not behind NAT may sit on a private network routed to this one (a cloud VPC).
        #expect(siteA.mayDial("10.250.2.11", linksOnly: false))
        #expect(siteA.mayDial("example.net", linksOnly: true), "a name is not judged")
    }

    @Test func parsesDottedQuads() {
        #expect(LinkReach.ipv4("10.250.2.11") == 0x0AFA_020B)
        #expect(LinkReach.ipv4("10.250.2") == nil)
        #expect(LinkReach.ipv4("10.250.2.256") == nil)
        #expect(LinkReach.local().isOnLocalNetwork("127.0.0.1"), "loopback is this machine's own network")
    }

    @Test func aNodeBehindNATKeepsEveryGatewayAndAtLeastTwoMembers() {
        func member(_ byte: UInt8, _ address: String, gateway: Bool = false, natted: Bool = false, state: MemberState = .alive) -> Member {
            Member(id: NodeID(bytes: Array(repeating: byte, count: 32))!, address: address,
                   metadata: MemberTraits(isGateway: gateway, linksOnly: natted).metadata, state: state)
        }
        let me = member(1, "10.250.1.11:7420", natted: true)
        let gw1 = member(2, "203.0.113.10:7420", gateway: true), gw2 = member(3, "203.0.113.11:7420", gateway: true)
        let b1 = member(4, "10.250.2.11:7420", natted: true), a2 = member(5, "10.250.1.12:7420", natted: true)
        let public1 = member(6, "203.0.113.30:7420"), deadGateway = member(7, "203.0.113.12:7420", gateway: true, state: .dead)
        let all = [me, gw1, gw2, b1, a2, public1, deadGateway]
        let targets = LinkPool.linkTargets(among: all, local: me.id, minimum: 2, reach: siteA).map(\.id)
        #expect(Set(targets) == [gw1.id, gw2.id], "both live gateways; never another site's runner")
        let oneGateway = LinkPool.linkTargets(among: [me, gw1, b1, a2, public1], local: me.id, minimum: 2, reach: siteA).map(\.id)
        #expect(oneGateway.count == 2 && oneGateway.contains(gw1.id) && !oneGateway.contains(b1.id))
    }
}

/// Who reaches whom, as a node tells gossip (where it probes, gossips, and asks for indirect probes).
struct MeshReachTests {
    static func member(_ byte: UInt8, _ address: String, gateway: Bool = false, natted: Bool = false) -> Member {
        Member(id: NodeID(bytes: Array(repeating: byte, count: 32))!, address: address,
               metadata: MemberTraits(isGateway: gateway, linksOnly: natted).metadata)
    }

    // The two-site lab: gateways on a public network, a1 and a2 behind one NAT, b1 behind another.
    let gw1 = member(1, "198.18.0.10:7420", gateway: true), gw2 = member(2, "198.18.0.11:7420", gateway: true)
    let a1 = member(3, "10.250.1.11:7420", natted: true), a2 = member(4, "10.250.1.12:7420", natted: true)
    let b1 = member(5, "10.250.2.11:7420", natted: true)
    let public1 = member(6, "198.18.0.30:7420")
    /// b1's machine: its site's network only.
    let siteB = LinkReach(networks: [(0x0AFA_020B, 0xFFFF_FF00)])

    @Test func aNodeBehindNATReachesItsLinksAndItsOwnNetworkOnly() {
        let linked: Set<NodeID> = [gw2.id]
        let reach = MeshReach(local: b1.id, networks: siteB, hasLink: { linked.contains($0) })
        #expect(reach.reaches(b1, gw2), "over its link")
        #expect(!reach.reaches(b1, gw1), "no link: gw1's answers to a private address are lost")
        #expect(!reach.reaches(b1, a2), "another site's member")
        let neighbour = Self.member(7, "10.250.2.12:7420", natted: true)
        #expect(reach.reaches(b1, neighbour), "its own network, by datagram")
    }

    @Test func othersGoByTheLinksNodesBehindNATKeep() {
        let reach = MeshReach(local: b1.id, networks: siteB, hasLink: { _ in true })
        #expect(reach.reaches(gw1, a2) && reach.reaches(a2, gw1), "members behind NAT link every gateway")
        #expect(reach.reaches(gw1, gw2), "both public")
        #expect(reach.reaches(a1, a2), "the same site")
        #expect(!reach.reaches(a1, public1), "a public runner holds no certain link to a member behind NAT")
        let otherSite = Self.member(8, "10.250.9.11:7420", natted: true)
        #expect(!reach.reaches(a1, otherSite), "two sites")
    }

    @Test func aPublicNodeReachesPublicMembersAndLinkedOnes() {
        let linked = a1.id
        let reach = MeshReach(local: gw1.id, networks: LinkReach(networks: [(0xC612_000A, 0xFFFF_FF00)]), hasLink: { $0 == linked })
        #expect(reach.reaches(gw1, gw2) && reach.reaches(gw1, public1))
        #expect(reach.reaches(gw1, a1), "linked")
        #expect(!reach.reaches(gw1, a2), "behind NAT, not linked (yet)")
    }
}
