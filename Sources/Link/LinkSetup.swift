public import Gossip
public import NIOCore

/// What link set-up knows of one link: enough to choose among a peer's links.
public struct LinkCandidate<Key: Hashable & Sendable>: Sendable, Equatable {
    public var key: Key
    public var peer: NodeID
    public var direction: Link.Direction
    /// When its handshake completed: of two links to one peer, the newer is used.
    public var established: NIODeadline
    public var isActive: Bool
    /// It runs through a relay (`Link.relay`): a stand-in while no direct link is up, which never
    /// counts as, nor replaces, a direct link.
    public var relayed: Bool

    public init(key: Key, peer: NodeID, direction: Link.Direction, established: NIODeadline, isActive: Bool = true,
                relayed: Bool = false) {
        self.key = key
        self.peer = peer
        self.direction = direction
        self.established = established
        self.isActive = isActive
        self.relayed = relayed
    }
}

/// Keeping a link to one peer up, as a value with the time given to each event: dial unless a
/// link to the peer is up already, watch the link until it drops, dial again after an exponential
/// backoff with jitter (reset once a link is up). `LinkEndpoint.maintainLink` carries out its
/// actions: it dials, waits on the link's close and sleeps until the deadlines it is given.
///
/// The rules every node applies to a peer's several links live here too: the newest live direct
/// link is used (a relayed one only while none is up), and a peer's newer inbound link replaces its
/// older inbound ones of the same kind.
public struct LinkSetup<Key: Hashable & Sendable>: Sendable {
    public enum Action: Sendable, Equatable {
        /// Dial the peer; report `dialled` or `dialFailed`.
        case dial
        /// Use this link until it drops; report `linkDown`.
        case watch(Key)
        /// Nothing until this deadline; then report `wokeUp`.
        case wait(until: NIODeadline)
    }

    public enum State: Sendable, Equatable {
        case dialling(since: NIODeadline)
        case up(Key, since: NIODeadline)
        case waiting(until: NIODeadline)
    }

    public let peer: NodeID
    public private(set) var state: State
    private var backoff: LinkBackoff

    /// Starts keeping the link to `peer` up: returns the set-up and its first action.
    public static func start(
        peer: NodeID, backoff: LinkBackoff, links: [LinkCandidate<Key>], now: NIODeadline
    ) -> (LinkSetup, Action) {
        var setup = LinkSetup(peer: peer, state: .dialling(since: now), backoff: backoff)
        return (setup, setup.useOrDial(links, now: now))
    }

    private init(peer: NodeID, state: State, backoff: LinkBackoff) {
        self.peer = peer
        self.state = state
        self.backoff = backoff
    }

    /// The dial completed: its link serves until it drops.
    public mutating func dialled(_ key: Key, now: NIODeadline) -> Action {
        backoff.reset()
        state = .up(key, since: now)
        return .watch(key)
    }

    /// The dial failed (refused, timed out, handshake failed): dial again after a backoff.
    public mutating func dialFailed(now: NIODeadline, using random: inout some RandomNumberGenerator) -> Action {
        waitBeforeDialling(now: now, using: &random)
    }

    /// The watched link dropped: dial again after a backoff, as the peer may be restarting.
    public mutating func linkDown(now: NIODeadline, using random: inout some RandomNumberGenerator) -> Action {
        waitBeforeDialling(now: now, using: &random)
    }

    /// A wait ended: a link that came up meanwhile (the peer dialled) serves; otherwise dial.
    /// Woken before its deadline (a spurious wake-up), it waits on.
    public mutating func wokeUp(links: [LinkCandidate<Key>], now: NIODeadline) -> Action {
        if case .waiting(let until) = state, now < until { return .wait(until: until) }
        return useOrDial(links, now: now)
    }

    /// A direct link already up (a join's, or one the peer dialled) serves until it drops: a second
    /// one would replace it at the peer, failing the calls on it. A relayed link does not count: it
    /// serves only until the direct link this keeps is up, and watching it would never dial.
    private mutating func useOrDial(_ links: [LinkCandidate<Key>], now: NIODeadline) -> Action {
        if let up = Self.newest(links.filter { !$0.relayed }, to: peer) {
            backoff.reset()
            state = .up(up, since: now)
            return .watch(up)
        }
        state = .dialling(since: now)
        return .dial
    }

    private mutating func waitBeforeDialling(now: NIODeadline, using random: inout some RandomNumberGenerator) -> Action {
        let wait = backoff.next(using: &random)
        let until = now + .nanoseconds(Int64(wait / .nanoseconds(1)))
        state = .waiting(until: until)
        return .wait(until: until)
    }

    // MARK: Choosing among a peer's links

    /// The link to use for `peer`: its newest live direct link, in either direction, or while none
    /// is up its newest relayed one (a relay hop longer). A peer that dialled again holds only its
    /// newest link; an older one may be silent until it is found dead.
    public static func newest(_ links: [LinkCandidate<Key>], to peer: NodeID) -> Key? {
        let live = links.filter { $0.peer == peer && $0.isActive }
        let direct = live.filter { !$0.relayed }
        return (direct.isEmpty ? live : direct).max { $0.established < $1.established }?.key
    }

    /// The links a new link replaces, to be closed. A node dials again only when it holds no link
    /// to this one (its old link died, e.g. behind a NAT that changed its outside address): the
    /// older links it dialled here are dead ends that may stay silent until keepalive gives up.
    /// Links this node dialled are left alone: two of them can be up at once after concurrent
    /// dials, both alive. A relayed link replaces only relayed ones, and a direct link only direct
    /// ones: a node makes a relayed link while its direct link here may be up or being dialled (a
    /// dial that failed or lost a race), and dials again while it holds only a relayed link.
    public static func replaced(by new: LinkCandidate<Key>, among links: [LinkCandidate<Key>]) -> [Key] {
        guard new.direction == .inbound else { return [] }
        return links.filter {
            $0.key != new.key && $0.peer == new.peer && $0.direction == .inbound && $0.relayed == new.relayed
        }.map(\.key)
    }
}

extension Link {
    /// This link as link set-up sees it.
    package var candidate: LinkCandidate<ObjectIdentifier> {
        LinkCandidate(key: ObjectIdentifier(self), peer: peer, direction: direction, established: established, isActive: isActive,
                      relayed: relay != nil)
    }
}
