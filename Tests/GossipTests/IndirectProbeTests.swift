@testable import Gossip
import Testing

/// A member this node cannot reach (behind another site's NAT) is probed only through helpers.
/// A probe whose helpers all stayed silent, not even a nack, tells nothing of the member; one a
/// helper nacked (it got the request and could not reach the member) suspects it.
struct IndirectProbeTests {
    /// a cannot reach t; h (which a reaches, and which reaches t) is the helper. Ten seconds of
    /// a's ticks; every indirect ping a sends to h about t is answered with a nack from h, or
    /// not at all. Returns a's view of t and how many such probes a sent.
    func probe(helperNacks: Bool) -> (state: MemberState?, asked: Int, inconclusive: Int) {
        var a = makeNode(1)
        let h = testID(2), t = testID(3)
        a.bootstrap(members: [Member(id: h, address: "10.0.0.2:7946"), Member(id: t, address: "10.0.2.3:7946")], now: .zero)
        a.reaches = { from, to in !(to.id == t && from.id != h) }
        // a's own direct probes of h fail too (nobody answers here): its link to h outweighs them.
        a.vouches = { $0 == h }
        var asked = 0
        for step in 1...200 {
            let now = Duration.milliseconds(50 * step)
            for send in a.tick(now: now).sends where send.to == h {
                guard case let .indirectPing(seq, target, _, _) = send.message, target == t else { continue }
                asked += 1
                if helperNacks { _ = a.receive(bytes: MessageCodec.encode(.nack(seq: seq)), from: h, now: now) }
            }
            if helperNacks, a.member(t)?.state != .alive { break }
        }
        return (a.member(t)?.state, asked, a.counters.probesInconclusive)
    }

    @Test func aProbeWhoseHelpersAllStaySilentSuspectsNobody() {
        let seen = probe(helperNacks: false)
        #expect(seen.asked > 0, "a never asked h about t")
        #expect(seen.state == .alive)
        #expect(seen.inconclusive == seen.asked || seen.inconclusive == seen.asked - 1, "\(seen)")
    }

    @Test func aProbeAHelperNackedSuspectsTheMember() {
        let seen = probe(helperNacks: true)
        #expect(seen.asked > 0, "a never asked h about t")
        #expect(seen.state == .suspect)
        #expect(seen.inconclusive == 0)
    }
}
