public import Gossip

/// Why a link or a stream failed. Each closes the one connection or stream concerned.
public enum LinkError: Error, Equatable, CustomStringConvertible {
    /// The handshake did not complete within the configured time.
    case handshakeTimeout
    /// The first byte named no suite this node speaks (garbage, or another protocol on the port).
    case unknownSuite(UInt8)
    /// A handshake frame had an impossible length.
    case badHandshakeFrame(length: Int)
    /// The Noise handshake failed (tampered, truncated or replayed message, wrong key).
    case handshakeFailed(NoiseError)
    /// The peer's handshake payload was malformed or its static key did not match its node ID.
    case badIdentity
    /// The peer proved another node ID than the one dialled.
    case wrongPeer(expected: NodeID, actual: NodeID)
    /// The peer is not allowed on this node (not a member of the mesh).
    case peerRefused(NodeID)
    /// A transport record was shorter than its tag.
    case recordTooShort(length: Int)
    /// A transport record failed authentication: tampered, reordered, replayed or truncated.
    case recordAuthenticationFailed
    /// The record nonce is exhausted; the link must be re-established.
    case nonceExhausted
    /// The peer answered a stream with a non-2xx status.
    case streamRefused(status: Int)
    /// The peer's answer to a stream had no valid `:status`.
    case badStreamResponse
    /// The link or the stream closed before the operation finished.
    case closed
    /// The connection to the peer could not be made.
    case connectFailed(host: String, port: Int, reason: String)
    /// An accepted connection found the configured number of handshakes already in progress.
    case tooManyHandshakes(limit: Int)
    /// An accepted connection found its source address holding the configured number of
    /// handshakes in progress.
    case tooManyHandshakesFrom(address: String, limit: Int)

    public var description: String {
        switch self {
        case .handshakeTimeout: return "the link handshake timed out"
        case .unknownSuite(let b): return "the peer named unknown link suite 0x\(String(b, radix: 16)) (not a warren node, or a newer version)"
        case .badHandshakeFrame(let n): return "the peer sent a handshake frame of \(n) bytes"
        case .handshakeFailed(let e): return "the link handshake failed: \(e)"
        case .badIdentity: return "the peer's identity in the handshake was malformed or did not match its key"
        case .wrongPeer(let expected, let actual): return "dialled node \(expected.short) but reached node \(actual.short)"
        case .peerRefused(let id): return "node \(id.short) is not allowed to link to this node"
        case .recordTooShort(let n): return "a link record of \(n) bytes is shorter than its tag"
        case .recordAuthenticationFailed: return "a link record failed authentication (tampered, reordered or replayed)"
        case .nonceExhausted: return "the link's nonce is exhausted; reconnect"
        case .streamRefused(let status): return "the peer refused the stream with status \(status)"
        case .badStreamResponse: return "the peer's answer to a stream had no valid status"
        case .closed: return "the link closed"
        case .connectFailed(let host, let port, let reason): return "could not connect to \(host):\(port): \(reason)"
        case .tooManyHandshakes(let limit): return "\(limit) link handshakes are already in progress"
        case .tooManyHandshakesFrom(let address, let limit): return "\(limit) link handshakes from \(address) are already in progress"
        }
    }
}
