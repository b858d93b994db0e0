@testable import Gossip
import Testing

/// A member's own live link to a node outweighs a third party's rumour about that node.
struct RumourWeightTests {
    /// a holds a link to b; c (which cannot reach b, e.g. behind another NAT) says b is suspect,
    /// then dead.
    func nodes(vouching: Bool) -> (GossipNode, GossipNode) {
        var a = makeNode(1), b = makeNode(2)
        a.bootstrap(members: [b.localMember, makeNode(3).localMember], now: .zero)
        b.bootstrap(members: [a.localMember], now: .zero)
        let bID = b.id
        if vouching { a.vouches = { $0 == bID } }
        return (a, b)
    }

    @Test func aSuspicionFromAnotherIsNotAdoptedAndTheSuspectRefutes() {
        var (a, b) = nodes(vouching: true)
        let claim = Update.suspect(node: b.id, incarnation: 0, from: testID(3))
        let actions = a.receive(bytes: MessageCodec.encode(.gossip(updates: [claim])), from: testID(3), now: .seconds(1))
        #expect(a.member(b.id)?.state == .alive)
        #expect(a.counters.rumoursOutweighed == 1)
        #expect(a.counters.suspicionsRaised == 0)
        // b hears of the rumour from a and refutes with a higher incarnation.
        let notices = actions.sends.filter { $0.to == b.id }
        #expect(!notices.isEmpty)
        for notice in notices { _ = b.receive(bytes: MessageCodec.encode(notice.message), from: a.id, now: .seconds(1)) }
        #expect(b.localMember.incarnation == 1)
    }

    @Test func aDeathFromAnotherIsNotAdopted() {
        var (a, b) = nodes(vouching: true)
        let verdict = Update.dead(node: b.id, incarnation: 0, from: testID(3))
        _ = a.receive(bytes: MessageCodec.encode(.gossip(updates: [verdict])), from: testID(3), now: .seconds(1))
        #expect(a.member(b.id)?.state == .alive)
        #expect(a.counters.rumoursOutweighed == 1)
    }

    @Test func withoutALinkTheRumourIsAdoptedAsBefore() {
        var (a, b) = nodes(vouching: false)
        let claim = Update.suspect(node: b.id, incarnation: 0, from: testID(3))
        _ = a.receive(bytes: MessageCodec.encode(.gossip(updates: [claim])), from: testID(3), now: .seconds(1))
        #expect(a.member(b.id)?.state == .suspect)
        #expect(a.counters.rumoursOutweighed == 0)
    }

    @Test func aMemberThatLeftIsSeenAsLeftEvenWhenLinked() {
        var (a, b) = nodes(vouching: true)
        let departure = Update.dead(node: b.id, incarnation: 0, from: b.id)
        _ = a.receive(bytes: MessageCodec.encode(.gossip(updates: [departure])), from: b.id, now: .seconds(1))
        #expect(a.member(b.id)?.state == .left)
    }
}
