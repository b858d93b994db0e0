import Gossip
@testable import Link
import NIOCore
import Sodium
import Testing

/// `LinkSetup` driven with given times and links, without sockets: when a maintained link is
/// dialled, watched and dialled again, and which of a peer's links is used or replaced.
@Suite("Link set-up")
struct LinkSetupTests {
    typealias Setup = LinkSetup<Int>

    static let peer = NodeID(bytes: Ed25519.KeyPair.generate().publicKey)!
    static let other = NodeID(bytes: Ed25519.KeyPair.generate().publicKey)!
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    static func link(_ key: Int, to peer: NodeID = peer, _ direction: Link.Direction = .outbound, at seconds: Int64 = 0,
                     active: Bool = true, relayed: Bool = false) -> LinkCandidate<Int> {
        LinkCandidate(key: key, peer: peer, direction: direction, established: t0 + .seconds(seconds), isActive: active, relayed: relayed)
    }

    /// The wait an action asks for, from `now`.
    static func wait(_ action: Setup.Action, from now: NIODeadline) -> TimeAmount? {
        if case .wait(let until) = action { return until - now }
        return nil
    }

    // MARK: A maintained link

    @Test func aPeerWithoutALinkIsDialledThenWatched() {
        var (setup, action) = Setup.start(peer: Self.peer, backoff: LinkBackoff(), links: [Self.link(1, to: Self.other)], now: Self.t0)
        #expect(action == .dial, "another peer's link does not count")
        #expect(setup.dialled(7, now: Self.t0 + .milliseconds(3)) == .watch(7))
        #expect(setup.state == .up(7, since: Self.t0 + .milliseconds(3)))
    }

    @Test func aLinkAlreadyUpIsUsedInsteadOfDialling() {
        let links = [Self.link(1, at: 1), Self.link(2, .inbound, at: 2), Self.link(3, at: 3, active: false)]
        let (_, action) = Setup.start(peer: Self.peer, backoff: LinkBackoff(), links: links, now: Self.t0)
        #expect(action == .watch(2), "the newest live link, whoever dialled it")
    }

    /// A relayed link (one made past a bound, or while a dial failed) is not the direct link kept:
    /// a kept link that watched it would never dial.
    @Test func aRelayedLinkDoesNotStandInForTheKeptDirectLink() {
        var random = SystemRandomNumberGenerator()
        let relayed = Self.link(1, .outbound, at: 1, relayed: true)
        var (setup, action) = Setup.start(peer: Self.peer, backoff: LinkBackoff(), links: [relayed], now: Self.t0)
        #expect(action == .dial)
        guard case .wait(let until) = setup.dialFailed(now: Self.t0, using: &random) else { Issue.record("no wait"); return }
        #expect(setup.wokeUp(links: [relayed, Self.link(2, .inbound, at: 2, relayed: true)], now: until) == .dial)
        #expect(setup.wokeUp(links: [relayed, Self.link(3, .inbound, at: 3)], now: until) == .watch(3))
    }

    @Test func aDroppedLinkIsDialledAgainAfterABackoffThatGrowsAndStartsOverOnceUp() {
        var random = SystemRandomNumberGenerator()
        var (setup, _) = Setup.start(peer: Self.peer, backoff: LinkBackoff(initial: .milliseconds(500), cap: .seconds(10)), links: [], now: Self.t0)
        _ = setup.dialled(1, now: Self.t0)
        var now = Self.t0 + .seconds(60)
        let first = setup.linkDown(now: now, using: &random)
        let firstWait = Self.wait(first, from: now)
        #expect(firstWait.map { $0 >= .milliseconds(250) && $0 <= .milliseconds(500) } == true, "\(String(describing: firstWait))")
        // Each failed dial waits about twice as long, up to the cap.
        var waits: [TimeAmount] = []
        for _ in 0..<8 {
            guard case .waiting(let until) = setup.state else { Issue.record("not waiting: \(setup.state)"); return }
            now = until
            #expect(setup.wokeUp(links: [], now: now) == .dial)
            let failed = setup.dialFailed(now: now, using: &random)
            waits.append(Self.wait(failed, from: now) ?? .zero)
        }
        #expect(waits[0] >= .milliseconds(500) && waits[0] <= .seconds(1))
        #expect(waits[1] >= .seconds(1) && waits[1] <= .seconds(2))
        #expect(waits[7] >= .seconds(5) && waits[7] <= .seconds(10))
        // Up again: the next drop waits the shortest time again.
        guard case .waiting(let until) = setup.state else { Issue.record("not waiting"); return }
        now = until
        _ = setup.wokeUp(links: [], now: now)
        _ = setup.dialled(2, now: now)
        let again = Self.wait(setup.linkDown(now: now, using: &random), from: now)
        #expect(again.map { $0 <= .milliseconds(500) } == true)
    }

    @Test func aWakeUpBeforeTheDeadlineWaitsOn() {
        var random = SystemRandomNumberGenerator()
        var (setup, _) = Setup.start(peer: Self.peer, backoff: LinkBackoff(), links: [], now: Self.t0)
        guard case .wait(let until) = setup.dialFailed(now: Self.t0, using: &random) else { Issue.record("no wait"); return }
        #expect(setup.wokeUp(links: [], now: until - .milliseconds(1)) == .wait(until: until))
        #expect(setup.wokeUp(links: [], now: until) == .dial)
    }

    @Test func aLinkThePeerDialledDuringTheWaitIsUsed() {
        var random = SystemRandomNumberGenerator()
        var (setup, _) = Setup.start(peer: Self.peer, backoff: LinkBackoff(), links: [], now: Self.t0)
        guard case .wait(let until) = setup.dialFailed(now: Self.t0, using: &random) else { Issue.record("no wait"); return }
        #expect(setup.wokeUp(links: [Self.link(9, .inbound)], now: until) == .watch(9))
        #expect(setup.state == .up(9, since: until))
    }

    // MARK: A peer's several links

    @Test func theNewestOfTwoDialledLinksIsUsed() {
        let first = Self.link(1, at: 1), second = Self.link(2, at: 2)
        #expect(Setup.newest([first, second], to: Self.peer) == 2)
        #expect(Setup.newest([second, first], to: Self.peer) == 2)
        var closed = second
        closed.isActive = false
        #expect(Setup.newest([first, closed], to: Self.peer) == 1, "a closed link is not used")
        #expect(Setup.newest([first, second], to: Self.other) == nil)
    }

    @Test func aDirectLinkIsUsedBeforeANewerRelayedOne() {
        let direct = Self.link(1, .inbound, at: 1), relayed = Self.link(2, at: 2, relayed: true)
        #expect(Setup.newest([direct, relayed], to: Self.peer) == 1)
        #expect(Setup.newest([relayed, direct], to: Self.peer) == 1)
        var closed = direct
        closed.isActive = false
        #expect(Setup.newest([closed, relayed], to: Self.peer) == 2, "the relayed link serves while no direct link is up")
    }

    @Test func aPeersNewerInboundLinkReplacesItsOlderInboundOnes() {
        let links = [
            Self.link(1, .inbound, at: 1), Self.link(2, .outbound, at: 2), Self.link(3, to: Self.other, .inbound, at: 3),
        ]
        #expect(Setup.replaced(by: Self.link(4, .inbound, at: 4), among: links) == [1])
        #expect(Setup.replaced(by: Self.link(5, .outbound, at: 5), among: links).isEmpty,
                "links this node dialled replace nothing: two may be up after concurrent dials")
    }

    /// A peer makes a relayed link while its direct one may be up, and dials while it holds only a
    /// relayed one: each kind replaces only its own.
    @Test func aPeersNewerInboundLinkReplacesOnlyItsOwnKind() {
        let links = [Self.link(1, .inbound, at: 1), Self.link(2, .inbound, at: 2, relayed: true)]
        #expect(Setup.replaced(by: Self.link(3, .inbound, at: 3, relayed: true), among: links) == [2])
        #expect(Setup.replaced(by: Self.link(4, .inbound, at: 4), among: links) == [1])
    }
}
