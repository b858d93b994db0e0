public import Gossip

/// The mesh's kinds of replicated entries. Gossip carries a kind as a number; the numbers are on
/// the wire and in signatures: only append.
extension EntryKind {
    public static let member = EntryKind(rawValue: 1)
    public static let gateway = EntryKind(rawValue: 2)
    public static let lease = EntryKind(rawValue: 3)
    public static let domainClaim = EntryKind(rawValue: 4)
    public static let project = EntryKind(rawValue: 5)
    public static let secret = EntryKind(rawValue: 6)
    /// A gateway's claim to order the certificate of a name (key `name|gateway node ID`).
    public static let certificateOrder = EntryKind(rawValue: 7)
    /// A certificate and its key, sealed to the gateways serving its name (key `name|orderer node ID`).
    public static let certificate = EntryKind(rawValue: 8)
    /// A setting of the whole mesh, written by an admin (key: the setting's name, `acme`).
    public static let meshSetting = EntryKind(rawValue: 9)

    /// Every kind the mesh writes, in number order.
    public static let meshKinds: [EntryKind] = [
        .member, .gateway, .lease, .domainClaim, .project, .secret, .certificateOrder, .certificate, .meshSetting,
    ]

    /// The kind's name in messages and logs; `kind7` for a number this version does not know.
    public var name: String {
        switch self {
        case .member: "member"
        case .gateway: "gateway"
        case .lease: "lease"
        case .domainClaim: "domainClaim"
        case .project: "project"
        case .secret: "secret"
        case .certificateOrder: "certificateOrder"
        case .certificate: "certificate"
        case .meshSetting: "meshSetting"
        default: description
        }
    }
}

/// A write this logic asks the node to make: put `value` under (kind, key), or delete it
/// (a tombstone) when `value` is nil. The node signs it, stamps the HLC and gossips it.
public struct EntryIntent: Sendable, Equatable, CustomStringConvertible {
    public var kind: EntryKind
    public var key: String
    public var value: [UInt8]?

    public init(kind: EntryKind, key: String, value: [UInt8]?) {
        self.kind = kind
        self.key = key
        self.value = value
    }

    public static func put(_ kind: EntryKind, _ key: String, _ value: [UInt8]) -> EntryIntent {
        EntryIntent(kind: kind, key: key, value: value)
    }

    public static func delete(_ kind: EntryKind, _ key: String) -> EntryIntent {
        EntryIntent(kind: kind, key: key, value: nil)
    }

    public var isDelete: Bool { value == nil }

    public var description: String { "\(isDelete ? "delete" : "put") \(kind.name)/\(key)" }
}

/// A live (not deleted) replicated entry as the gossip layer hands it over: its signature already
/// checked against `author`.
public struct EntrySnapshot: Sendable, Equatable {
    public var kind: EntryKind
    public var key: String
    public var value: [UInt8]
    public var author: NodeID

    public init(kind: EntryKind, key: String, value: [UInt8], author: NodeID) {
        self.kind = kind
        self.key = key
        self.value = value
        self.author = author
    }
}

/// The keys of entries of kind `member`.
///
/// ```
///  member/<node ID>    MembershipRecord   who was admitted, with which role, on whose invitation
///  removed/<node ID>   MemberRemoval      an admin's signed removal; never overwritten by an admission
///  spent/<token ID>    SpentToken         an invite token already used
/// ```
public enum MemberEntryKey: Equatable, Sendable {
    case member(NodeID)
    case removed(NodeID)
    case spent(tokenID: String)

    public var string: String {
        switch self {
        case .member(let id): return "member/\(id)"
        case .removed(let id): return "removed/\(id)"
        case .spent(let token): return "spent/\(token)"
        }
    }

    /// Nil for a key this module does not know.
    public init?(_ key: String) {
        guard let slash = key.firstIndex(of: "/") else { return nil }
        let prefix = key[..<slash], rest = String(key[key.index(after: slash)...])
        switch prefix {
        case "member": guard let id = NodeID(rest) else { return nil }; self = .member(id)
        case "removed": guard let id = NodeID(rest) else { return nil }; self = .removed(id)
        case "spent":
            guard rest.count == InviteToken.idLength, rest.allSatisfy(\.isHexDigit) else { return nil }
            self = .spent(tokenID: rest)
        default: return nil
        }
    }
}

/// A write the replicated map must not let in: which entry and why.
public struct EntryRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    public var key: String
    public var reason: String
    /// Refused only because something it depends on has not arrived yet (its author's or
    /// inviter's admission, its project): the replica holds it back and asks again as entries
    /// arrive, instead of losing it until the next push-pull.
    public var awaitsDependency: Bool
    /// A short label of the rule that refused it, for the refusal counter's `reason` dimension;
    /// nil: the entry's kind says it (`member_invalid`, `project_invalid`, …).
    public var rule: String?
    /// Held back (`awaitsDependency`) and counted under `rule` all the same: what it waits for
    /// comes only in a race (a member's addition behind its first write), and far more often
    /// never, as it is a member writing where it may not.
    public var countedWhenHeld: Bool

    public init(key: String, reason: String, awaitsDependency: Bool = false, rule: String? = nil, countedWhenHeld: Bool = false) {
        self.key = key
        self.reason = reason
        self.awaitsDependency = awaitsDependency
        self.rule = rule
        self.countedWhenHeld = countedWhenHeld
    }

    public var description: String { "entry \(key.prefix(160)) refused: \(reason)" }
}
