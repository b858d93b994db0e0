/// A hybrid logical clock timestamp (Kulkarni et al., "Logical Physical Clocks", 2014).
///
/// `wallMillis` follows physical time (milliseconds since the Unix epoch); `logical` orders events
/// that share a millisecond or that were caused by a message from a node whose clock runs ahead.
/// Ordered by `(wallMillis, logical)`.
public struct HLCTimestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var wallMillis: UInt64
    public var logical: UInt32

    public init(wallMillis: UInt64, logical: UInt32 = 0) {
        self.wallMillis = wallMillis
        self.logical = logical
    }

    public static let zero = HLCTimestamp(wallMillis: 0)

    public static func < (lhs: HLCTimestamp, rhs: HLCTimestamp) -> Bool {
        (lhs.wallMillis, lhs.logical) < (rhs.wallMillis, rhs.logical)
    }

    public var description: String { "\(wallMillis).\(logical)" }
}

/// One node's hybrid logical clock. A value type: the node owns it and passes physical time in,
/// so virtual time works the same as the wall clock.
public struct HybridLogicalClock: Sendable {
    /// The latest timestamp this clock issued or observed.
    public private(set) var latest: HLCTimestamp

    public init(latest: HLCTimestamp = .zero) {
        self.latest = latest
    }

    /// A new timestamp for a local event (a put or a delete), strictly greater than every
    /// timestamp issued or observed before.
    public mutating func tick(physicalMillis: UInt64) -> HLCTimestamp {
        if physicalMillis > latest.wallMillis {
            latest = HLCTimestamp(wallMillis: physicalMillis, logical: 0)
        } else {
            latest = Self.successor(of: latest)
        }
        return latest
    }

    /// Folds in a timestamp received from another node. Callers bound the remote timestamp's skew
    /// first (future-dated entries are dropped), so one bad clock cannot drag every node ahead.
    public mutating func observe(_ remote: HLCTimestamp, physicalMillis: UInt64) {
        let wall = max(latest.wallMillis, remote.wallMillis, physicalMillis)
        if wall == latest.wallMillis, wall == remote.wallMillis {
            latest = Self.successor(of: max(latest, remote))
        } else if wall == latest.wallMillis {
            latest = Self.successor(of: latest)
        } else if wall == remote.wallMillis {
            latest = Self.successor(of: remote)
        } else {
            latest = HLCTimestamp(wallMillis: wall, logical: 0)
        }
    }

    /// The next timestamp; a full logical counter spills into the next millisecond.
    private static func successor(of t: HLCTimestamp) -> HLCTimestamp {
        t.logical == .max ? HLCTimestamp(wallMillis: t.wallMillis &+ 1, logical: 0)
            : HLCTimestamp(wallMillis: t.wallMillis, logical: t.logical + 1)
    }
}
