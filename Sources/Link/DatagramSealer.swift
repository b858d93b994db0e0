public import Gossip
public import Sodium

/// Seals gossip datagrams between two members with keys only those two hold, and refuses
/// anything else: garbage, a sender that is not a member, a tampered datagram, a replay.
///
/// ```
///  0        1                      33                     57
///  +--------+----------------------+----------------------+----------------------------+
///  | ver=1  | sender NodeID (32)   | nonce (24)           | crypto_box(ts ‖ payload)   |
///  +--------+----------------------+----------------------+----------------------------+
///  ts: the sender's wall clock, milliseconds since 1970, 8 bytes big-endian.
/// ```
///
/// The box key is `crypto_box_beforenm` of the two nodes' X25519 keys (the X25519 forms of their
/// Ed25519 identities), computed once per peer. A datagram is accepted once: its nonce is
/// remembered for `replayWindow`, and one dated further than that from now is refused.
public struct DatagramSealer {
    public static let version: UInt8 = 1
    static let headerLength = 1 + NodeID.byteCount + Box.nonceLength
    /// Datagrams older or newer than this (by the sender's clock against ours) are refused.
    public static let replayWindowMilliseconds: Int64 = 60_000
    /// At most this many remembered nonces; past it, the oldest are forgotten (and their
    /// datagrams are then too old to be accepted anyway, or the window shrinks under a flood).
    static let maxRemembered = 65_536
    /// At most this many peers' box keys are kept; past it they are all computed afresh. A node
    /// not known to gossip yet may introduce itself, so senders are not only members.
    static let maxBoxes = 4_096

    public enum Refusal: Error, Equatable, Sendable {
        case malformed
        case unknownSender(NodeID)
        case forged(NodeID)
        case replayed(NodeID)
        case stale(NodeID)
    }

    private let localID: NodeID
    private let secretKey: SecretBytes
    private var boxes: [NodeID: Box] = [:]
    private var seen: Set<[UInt8]> = []
    private var seenOrder: [(ms: Int64, key: [UInt8])] = []
    private var seenHead = 0

    /// - Parameters:
    ///   - localID: this node's ID.
    ///   - x25519SecretKey: the X25519 form of this node's Ed25519 secret key.
    public init(localID: NodeID, x25519SecretKey: SecretBytes) {
        self.localID = localID
        self.secretKey = x25519SecretKey
    }

    /// The datagram carrying `payload` to `peer`.
    public mutating func seal(_ payload: [UInt8], to peer: NodeID, nowMilliseconds: Int64) throws -> [UInt8] {
        let box = try self.box(for: peer)
        let nonce = Sodium.randomBytes(Box.nonceLength)
        var plain = withUnsafeBytes(of: nowMilliseconds.bigEndian, Array.init)
        plain += payload
        return [DatagramSealer.version] + localID.bytes + nonce + (try box.seal(plain, nonce: nonce))
    }

    /// The payload and its sender, if `datagram` is a fresh datagram from one of `isMember`'s nodes.
    public mutating func open(_ datagram: [UInt8], nowMilliseconds: Int64, isMember: (NodeID) -> Bool) throws(Refusal) -> (sender: NodeID, payload: [UInt8]) {
        guard datagram.count >= DatagramSealer.headerLength + Box.overhead + 8, datagram[0] == DatagramSealer.version,
              let sender = NodeID(bytes: Array(datagram[1..<33])), sender != localID else { throw .malformed }
        guard isMember(sender) else { throw .unknownSender(sender) }
        let nonce = Array(datagram[33..<DatagramSealer.headerLength])
        let plain: [UInt8]
        do {
            plain = try box(for: sender).open(datagram[DatagramSealer.headerLength...], nonce: nonce)
        } catch {
            throw .forged(sender)
        }
        let sent = plain[0..<8].reduce(Int64(0)) { $0 << 8 | Int64($1) }
        guard abs(nowMilliseconds - sent) <= DatagramSealer.replayWindowMilliseconds else { throw .stale(sender) }
        let key = sender.bytes + nonce
        guard !seen.contains(key) else { throw .replayed(sender) }
        remember(key, at: nowMilliseconds)
        return (sender, Array(plain[8...]))
    }

    /// Forgets a peer's key (it left the mesh).
    public mutating func forget(_ peer: NodeID) {
        boxes[peer] = nil
    }

    private mutating func box(for peer: NodeID) throws -> Box {
        if let box = boxes[peer] { return box }
        if boxes.count >= DatagramSealer.maxBoxes { boxes.removeAll(keepingCapacity: true) }
        let box = try Box(secretKey: secretKey, peerPublicKey: Ed25519.x25519PublicKey(from: peer.bytes))
        boxes[peer] = box
        return box
    }

    private mutating func remember(_ key: [UInt8], at ms: Int64) {
        // Forget nonces that left the window, and the oldest when over the bound.
        while seenHead < seenOrder.count,
              seenOrder[seenHead].ms < ms - 2 * DatagramSealer.replayWindowMilliseconds || seenOrder.count - seenHead >= DatagramSealer.maxRemembered {
            seen.remove(seenOrder[seenHead].key)
            seenHead += 1
        }
        if seenHead > 4096 && seenHead * 2 > seenOrder.count {
            seenOrder.removeFirst(seenHead)
            seenHead = 0
        }
        seen.insert(key)
        seenOrder.append((ms, key))
    }
}
