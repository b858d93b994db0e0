internal import CSodium

/// Ed25519 signatures (RFC 8032), the identity of every node.
public enum Ed25519 {
    public static let publicKeyLength = 32
    public static let seedLength = 32
    public static let secretKeyLength = 64
    public static let signatureLength = 64

    /// A signing key pair. The secret key is libsodium's 64-byte form (seed ‖ public key).
    public struct KeyPair: Sendable {
        public let publicKey: [UInt8]
        public let secretKey: SecretBytes

        /// A fresh random key pair.
        public static func generate() -> KeyPair {
            try! fromSeed(SecretBytes(randomCount: seedLength))
        }

        /// The key pair derived from a 32-byte seed (RFC 8032's "secret key").
        public static func fromSeed(_ seed: some ContiguousBytes) throws -> KeyPair {
            Sodium.start()
            var pk = [UInt8](repeating: 0, count: publicKeyLength)
            var sk = [UInt8](repeating: 0, count: secretKeyLength)
            try seed.withUnsafeBytes { s in
                try Sodium.check(s, seedLength, "Ed25519 seed")
                _ = crypto_sign_seed_keypair(&pk, &sk, s.bindMemory(to: UInt8.self).baseAddress!)
            }
            return KeyPair(publicKey: pk, secretKey: SecretBytes(consuming: &sk))
        }

        /// The 32-byte seed this key pair was derived from (what a key file stores).
        public var seed: SecretBytes {
            var s = secretKey.withUnsafeBytes { Array($0.prefix(seedLength)) }
            return SecretBytes(consuming: &s)
        }

        public func sign(_ message: some ContiguousBytes) -> [UInt8] {
            Ed25519.sign(message, secretKey: secretKey)
        }
    }

    /// A detached signature of `message`.
    public static func sign(_ message: some ContiguousBytes, secretKey: SecretBytes) -> [UInt8] {
        Sodium.start()
        precondition(secretKey.count == secretKeyLength, "Ed25519 secret key must be 64 bytes")
        var sig = [UInt8](repeating: 0, count: signatureLength)
        message.withNonNullBytes { m, mlen in
            secretKey.withUnsafeBytes { sk in
                _ = crypto_sign_detached(&sig, nil, m, UInt64(mlen), sk.bindMemory(to: UInt8.self).baseAddress!)
            }
        }
        return sig
    }

    /// True when `signature` is a valid signature of `message` by `publicKey`. Wrong lengths are invalid.
    public static func verify(signature: some ContiguousBytes, message: some ContiguousBytes, publicKey: some ContiguousBytes) -> Bool {
        Sodium.start()
        return signature.withUnsafeBytes { s in
            publicKey.withUnsafeBytes { pk in
                guard s.count == signatureLength, pk.count == publicKeyLength else { return false }
                return message.withNonNullBytes { m, mlen in
                    crypto_sign_verify_detached(
                        s.bindMemory(to: UInt8.self).baseAddress!, m, UInt64(mlen),
                        pk.bindMemory(to: UInt8.self).baseAddress!) == 0
                }
            }
        }
    }

    /// The X25519 (Montgomery) form of an Ed25519 public key.
    public static func x25519PublicKey(from publicKey: some ContiguousBytes) throws -> [UInt8] {
        Sodium.start()
        var out = [UInt8](repeating: 0, count: X25519.keyLength)
        let rc: Int32 = try publicKey.withUnsafeBytes { pk in
            try Sodium.check(pk, publicKeyLength, "Ed25519 public key")
            return crypto_sign_ed25519_pk_to_curve25519(&out, pk.bindMemory(to: UInt8.self).baseAddress!)
        }
        guard rc == 0 else { throw SodiumError.invalidKey("this Ed25519 public key has no X25519 form") }
        return out
    }

    /// The X25519 form of an Ed25519 secret key (64-byte libsodium form).
    public static func x25519SecretKey(from secretKey: SecretBytes) throws -> SecretBytes {
        Sodium.start()
        try Sodium.check(secretKey, secretKeyLength, "Ed25519 secret key")
        var out = [UInt8](repeating: 0, count: X25519.keyLength)
        secretKey.withUnsafeBytes { sk in
            _ = crypto_sign_ed25519_sk_to_curve25519(&out, sk.bindMemory(to: UInt8.self).baseAddress!)
        }
        return SecretBytes(consuming: &out)
    }
}

extension SecretBytes: Collection {
    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public func index(after i: Int) -> Int { i + 1 }
    public subscript(position: Int) -> UInt8 { withUnsafeBytes { $0[position] } }
}
