public import Sodium

/// The CipherState of the Noise specification (section 5.1): a key and a counter nonce.
///
/// Handshake messages and the conformance vectors go through this type (libsodium). Links take the
/// key out with `key` after `split()` and seal records with the faster libcrypto AEAD instead; the
/// bytes are identical.
public struct NoiseCipherState: Sendable {
    public let cipher: NoiseCipher
    /// The key, nil until one is set (then encryption is the identity function).
    public private(set) var key: SecretBytes?
    /// The next nonce.
    public private(set) var nonce: UInt64 = 0

    public init(cipher: NoiseCipher, key: SecretBytes? = nil) {
        self.cipher = cipher
        self.key = key
    }

    public var hasKey: Bool { key != nil }

    mutating func initializeKey(_ key: SecretBytes?) {
        self.key = key
        nonce = 0
    }

    public mutating func encrypt(ad: [UInt8] = [], plaintext: [UInt8]) throws -> [UInt8] {
        guard let key else { return plaintext }
        guard nonce < UInt64.max else { throw NoiseError.nonceExhausted }
        let out = try cipher.encrypt(key: key, nonce: nonce, ad: ad, plaintext: plaintext)
        nonce += 1
        return out
    }

    public mutating func decrypt(ad: [UInt8] = [], ciphertext: [UInt8]) throws -> [UInt8] {
        guard let key else { return ciphertext }
        guard nonce < UInt64.max else { throw NoiseError.nonceExhausted }
        // The nonce advances only on success, as the specification says.
        let out = try cipher.decrypt(key: key, nonce: nonce, ad: ad, ciphertext: ciphertext)
        nonce += 1
        return out
    }

    /// `REKEY(k)`: the first 32 bytes of encrypting 32 zero bytes under nonce 2^64-1. The nonce is
    /// kept, as the specification says.
    public mutating func rekey() throws {
        guard let key else { return }
        var fresh = Array(try cipher.encrypt(key: key, nonce: UInt64.max, ad: [], plaintext: [UInt8](repeating: 0, count: 32)).prefix(32))
        self.key = SecretBytes(consuming: &fresh)
    }
}
