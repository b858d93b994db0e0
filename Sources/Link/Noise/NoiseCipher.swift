public import Sodium

/// The AEAD of a Noise protocol, with the nonce encoding the Noise specification gives each.
public enum NoiseCipher: String, Sendable, CaseIterable {
    case chaChaPoly = "ChaChaPoly"
    case aesGCM = "AESGCM"

    public static let keyLength = 32
    public static let tagLength = 16

    /// The libsodium AEAD used for handshake messages (and by tests as the reference).
    public var sodiumAEAD: AEAD {
        switch self {
        case .chaChaPoly: return .chacha20Poly1305
        case .aesGCM: return .aes256GCM
        }
    }

    /// The 12-byte nonce for counter `n`: four zero bytes, then the counter little-endian
    /// (ChaChaPoly) or big-endian (AESGCM).
    public func nonce(_ n: UInt64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 12)
        writeNonce(n, into: &out)
        return out
    }

    /// Writes the nonce for counter `n` into the 12 bytes of `out`.
    @inlinable
    public func writeNonce(_ n: UInt64, into out: inout [UInt8]) {
        for i in 0..<4 { out[i] = 0 }
        for i in 0..<8 {
            let byte = UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))
            switch self {
            case .chaChaPoly: out[4 + i] = byte
            case .aesGCM: out[11 - i] = byte
            }
        }
    }

    func encrypt(key: SecretBytes, nonce n: UInt64, ad: [UInt8], plaintext: [UInt8]) throws -> [UInt8] {
        try sodiumAEAD.seal(plaintext, ad: ad, nonce: nonce(n), key: key)
    }

    func decrypt(key: SecretBytes, nonce n: UInt64, ad: [UInt8], ciphertext: [UInt8]) throws -> [UInt8] {
        do {
            return try sodiumAEAD.open(ciphertext, ad: ad, nonce: nonce(n), key: key)
        } catch {
            throw NoiseError.decryptionFailed
        }
    }
}
