/// Timing and size settings of a gossip node. Start from a preset (`.lan`, `.wan`, `.local`) and
/// change single fields if needed.
///
/// The presets keep memberlist's numbers (hashicorp/memberlist `config.go`), side by side:
///
/// | setting                   | `.lan` (memberlist LAN) | `.wan` (memberlist WAN) | `.local` (memberlist Local) |
/// |---------------------------|-------------------------|-------------------------|-----------------------------|
/// | probe interval            | 1 s (1 s)               | 5 s (5 s)               | 1 s (1 s)                   |
/// | probe timeout             | 500 ms (500 ms)         | 3 s (3 s)               | 200 ms (200 ms)             |
/// | indirect checks           | 3 (3)                   | 3 (3)                   | 1 (1)                       |
/// | gossip interval / nodes   | 200 ms to 3 (same)      | 500 ms to 4 (same)      | 100 ms to 3 (same)          |
/// | gossip to the dead        | 30 s (30 s)             | 60 s (60 s)             | 15 s (15 s)                 |
/// | suspicion mult / max mult | 4 / 6 (4 / 6)           | 6 / 6 (6 / 6)           | 3 / 6 (3 / 6)               |
/// | retransmit mult           | 4 (4)                   | 4 (4)                   | 2 (2)                       |
/// | push-pull interval        | 30 s (30 s)             | 60 s (60 s)             | 15 s (15 s)                 |
/// | awareness max multiplier  | 8 (8)                   | 8 (8)                   | 8 (8)                       |
///
/// Not in memberlist: the clock-skew bound for entries, the tombstone grace period and how long a
/// dead member's record is kept (memberlist forgets dead nodes; here their entries must still verify).
public struct GossipConfig: Hashable, Sendable {
    /// Time between two probes (one target per period, randomised round-robin).
    public var probeInterval: Duration
    /// Wait for a direct ack before asking `indirectChecks` members to probe.
    public var probeTimeout: Duration
    public var indirectChecks: Int
    /// Dissemination: every `gossipInterval`, send queued updates to `gossipNodes` random members.
    public var gossipInterval: Duration
    public var gossipNodes: Int
    /// Dead members still receive gossip for this long, so they learn they were declared dead.
    public var gossipToTheDead: Duration
    /// Suspicion timeout = `suspicionMult` · max(1, log10(n)) · probe interval, falling from
    /// `suspicionMaxTimeoutMult` times that as independent confirmations arrive (Lifeguard).
    public var suspicionMult: Int
    public var suspicionMaxTimeoutMult: Int
    /// Each update is sent `retransmitMult` · ⌈log10(n + 1)⌉ times (memberlist's formula).
    public var retransmitMult: Int
    /// Full-state exchange with one random member; scaled up for large meshes as memberlist does.
    public var pushPullInterval: Duration
    /// Lifeguard: the local health multiplier stretches probe interval and timeout up to this.
    public var awarenessMaxMultiplier: Int
    /// Lifeguard on (local health, nacks, dynamic suspicion, buddy system) or off (plain SWIM),
    /// for comparisons.
    public var lifeguard: Bool
    /// Budget of one datagram; updates are packed up to it (at least one per message).
    public var maxPacketBytes: Int
    /// Entries dated further than this ahead of the local clock are dropped.
    public var maxClockSkew: Duration
    /// Tombstones are collected this long after their timestamp.
    public var tombstoneGrace: Duration
    /// A dead or left member's record is forgotten this long after it died.
    public var deadMemberRetention: Duration
    /// How often tombstones and old dead members are collected.
    public var maintenanceInterval: Duration
    /// A join push-pull without a reply is sent again after this, doubling up to the push-pull
    /// interval, at most `joinAttempts` times in all.
    public var joinRetryInterval: Duration = .seconds(1)
    public var joinAttempts = 6
    /// The seed of a join tells the newcomer's arrival directly to up to this many members it
    /// reaches, besides gossip (`GossipNode.announce`).
    public var joinAnnouncements = 32
    /// A node not known here that sends a message without introducing itself is asked for its
    /// state at most this often (`GossipNode.askForIntroduction`).
    public var introductionInterval: Duration = .seconds(5)
    /// Bounds of the entries held back until what they depend on arrives (`EntryVerdict.hold`):
    /// beyond either, the oldest are dropped (push-pull offers them again).
    public var maxHeldEntries = 256
    public var maxHeldBytes = 1 << 20

    /// memberlist's `DefaultLANConfig`.
    public static let lan = GossipConfig(
        probeInterval: .seconds(1), probeTimeout: .milliseconds(500), indirectChecks: 3,
        gossipInterval: .milliseconds(200), gossipNodes: 3, gossipToTheDead: .seconds(30),
        suspicionMult: 4, suspicionMaxTimeoutMult: 6, retransmitMult: 4, pushPullInterval: .seconds(30),
        awarenessMaxMultiplier: 8, lifeguard: true, maxPacketBytes: 1400, maxClockSkew: .seconds(10),
        tombstoneGrace: .seconds(24 * 3600), deadMemberRetention: .seconds(24 * 3600),
        maintenanceInterval: .seconds(10)
    )

    /// memberlist's `DefaultWANConfig`.
    public static let wan: GossipConfig = {
        var c = GossipConfig.lan
        c.probeInterval = .seconds(5)
        c.probeTimeout = .seconds(3)
        c.gossipInterval = .milliseconds(500)
        c.gossipNodes = 4
        c.gossipToTheDead = .seconds(60)
        c.suspicionMult = 6
        c.pushPullInterval = .seconds(60)
        c.maxClockSkew = .seconds(30)
        return c
    }()

    /// memberlist's `DefaultLocalConfig` (one machine or one rack).
    public static let local: GossipConfig = {
        var c = GossipConfig.lan
        c.probeTimeout = .milliseconds(200)
        c.indirectChecks = 1
        c.gossipInterval = .milliseconds(100)
        c.gossipToTheDead = .seconds(15)
        c.suspicionMult = 3
        c.retransmitMult = 2
        c.pushPullInterval = .seconds(15)
        return c
    }()

    /// Retransmit limit for a mesh of `n` members: mult · ⌈log10(n + 1)⌉.
    public func retransmitLimit(members n: Int) -> Int {
        retransmitMult * Int(log10Ceil(n + 1))
    }

    /// The suspicion timeout with no confirmations: suspicionMult · max(1, log10(n)) · probeInterval.
    public func minSuspicionTimeout(members n: Int) -> Duration {
        let scale = Swift.max(1.0, log10(Double(Swift.max(1, n))))
        // Whole milliseconds: log10(1000) in floating point is a hair under 3.
        return .milliseconds(Int64((Double(probeInterval.milliseconds) * Double(suspicionMult) * scale).rounded()))
    }

    /// memberlist's push-pull scaling: the interval grows with log2(n) beyond 32 members so the
    /// full-state traffic stays bounded.
    public func scaledPushPullInterval(members n: Int) -> Duration {
        guard n > 32 else { return pushPullInterval }
        let multiplier = Int((log2(Double(n)) - log2(32.0)).rounded(.up)) + 1
        return pushPullInterval * multiplier
    }
}

/// Integer ceil(log10(x)) for x >= 1, without Foundation.
func log10Ceil(_ x: Int) -> Int {
    var n = 0, p = 1
    while p < x { p *= 10; n += 1 }
    return n
}

/// Natural-log-based helpers without Foundation (only `Double` arithmetic).
func log10(_ x: Double) -> Double { ln(x) / 2.302585092994046 }
func log2(_ x: Double) -> Double { ln(x) / 0.6931471805599453 }

/// ln by range reduction and an atanh series; accurate to ~1e-12, plenty for timeouts.
func ln(_ x: Double) -> Double {
    guard x > 0 else { return -.infinity }
    var m = x, e = 0.0
    while m > 2 { m /= 2; e += 1 }
    while m < 1 { m *= 2; e -= 1 }
    let y = (m - 1) / (m + 1), y2 = y * y
    var term = y, sum = 0.0, k = 1.0
    for _ in 0..<40 {
        sum += term / k
        term *= y2
        k += 2
    }
    return 2 * sum + e * 0.6931471805599453
}
