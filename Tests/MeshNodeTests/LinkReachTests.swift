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
