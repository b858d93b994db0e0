/// Why a Noise handshake or transport message failed. Every one of these closes the connection.
public enum NoiseError: Error, Equatable, CustomStringConvertible {
    /// The protocol name is not one this implementation knows (`Noise_<pattern>_25519_<cipher>_BLAKE2b`).
    case unsupportedProtocol(String)
    /// A key the pattern needs (static, remote static, PSK) was not given, or has the wrong length.
    case missingKey(String)
    /// A message was shorter than its tokens need.
    case messageTooShort
    /// A message or payload exceeds the 65535-byte limit of the Noise specification.
    case messageTooLong(Int)
    /// Decryption failed: wrong key, or the message was altered, replayed or reordered.
    case decryptionFailed
    /// The nonce reached 2^64-1, which Noise reserves; the session must end.
    case nonceExhausted
    /// The handshake was driven out of turn (writing when it should read, or after completion).
    case outOfOrder
    /// The peer sent a public key that X25519 refuses (small order).
    case invalidPublicKey

    public var description: String {
        switch self {
        case .unsupportedProtocol(let name): return "unsupported Noise protocol \"\(name)\""
        case .missingKey(let what): return "the Noise handshake needs \(what)"
        case .messageTooShort: return "a Noise message was shorter than its pattern requires"
        case .messageTooLong(let n): return "a Noise message of \(n) bytes exceeds the 65535-byte limit"
        case .decryptionFailed: return "a Noise message failed authentication (wrong key, or altered, replayed or reordered)"
        case .nonceExhausted: return "the Noise nonce is exhausted; the session must be re-established"
        case .outOfOrder: return "a Noise handshake message was sent or received out of turn"
        case .invalidPublicKey: return "the peer sent an invalid X25519 public key"
        }
    }
}
