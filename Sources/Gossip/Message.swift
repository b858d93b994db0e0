/// A gossip message, as carried by one datagram (or one stream message for push-pull).
/// `MessageCodec` turns it into bytes and back.
public enum Message: Hashable, Sendable {
    /// SWIM probe. `target` guards against a probe reaching a different node at the same address.
    case ping(seq: UInt32, target: NodeID, updates: [Update])
    /// Asks the receiver to probe `target` on the sender's behalf and to answer with an ack or nack.
    case indirectPing(seq: UInt32, target: NodeID, targetAddress: String, updates: [Update])
    case ack(seq: UInt32, updates: [Update])
    /// Lifeguard: an intermediary did not hear from the target; tells the requester that the
    /// intermediary itself is working.
    case nack(seq: UInt32)
    /// Dissemination only.
    case gossip(updates: [Update])
    /// Anti-entropy: full state. A request is answered with a reply holding the responder's state.
    case pushPull(PushPull)
}

/// One piggybacked update.
public enum Update: Hashable, Sendable {
    case alive(Member)
    case suspect(node: NodeID, incarnation: UInt32, from: NodeID)
    /// A death certificate; `from == node` means the node left on purpose.
    case dead(node: NodeID, incarnation: UInt32, from: NodeID)
    case entry(Entry)
}

/// Full state for anti-entropy.
public struct PushPull: Hashable, Sendable {
    public var isReply: Bool
    public var isJoin: Bool
    public var members: [Member]
    public var entries: [Entry]

    public init(isReply: Bool, isJoin: Bool, members: [Member], entries: [Entry]) {
        self.isReply = isReply
        self.isJoin = isJoin
        self.members = members
        self.entries = entries
    }
}

/// Why bytes were refused by `MessageCodec.decode`.
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    case truncated
    case messageTooLarge(length: Int, limit: Int)
    case unsupportedVersion(UInt8)
    case unknownMessageType(UInt8)
    case unknownUpdateType(UInt8)
    case unknownMemberState(UInt8)
    case tooLong(field: String, length: Int, limit: Int)
    case tooMany(field: String, count: Int, limit: Int)
    case invalidUTF8(field: String)
    case invalidFlags(UInt8)
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case .truncated: "gossip message ends early"
        case let .messageTooLarge(length, limit): "gossip message of \(length) bytes exceeds the limit of \(limit)"
        case let .unsupportedVersion(v): "gossip wire version \(v) is not supported (this node speaks \(MessageCodec.minVersion)...\(MessageCodec.maxVersion)); upgrade the older node"
        case let .unknownMessageType(t): "unknown gossip message type \(t)"
        case let .unknownUpdateType(t): "unknown gossip update type \(t)"
        case let .unknownMemberState(s): "unknown member state \(s)"
        case let .tooLong(field, length, limit): "\(field) of \(length) bytes exceeds the limit of \(limit)"
        case let .tooMany(field, count, limit): "\(count) \(field) exceed the limit of \(limit)"
        case let .invalidUTF8(field): "\(field) is not valid UTF-8"
        case let .invalidFlags(f): "invalid flags 0x\(String(f, radix: 16))"
        case let .trailingBytes(n): "\(n) unexpected bytes after the gossip message"
        }
    }
}
