internal import CSodium

/// X25519 Diffie-Hellman (RFC 7748), as the Noise handshake and sealed boxes use it.
public enum X25519 {
    public static let keyLength = 32

    public struct KeyPair: Sendable {
        public let publicKey: [UInt8]
        public let secretKey: SecretBytes

        public init(secretKey: SecretBytes) throws {
            self.secretKey = secretKey
            self.publicKey = try X25519.publicKey(from: secretKey)
        }

        public static func generate() -> KeyPair {
            try! KeyPair(secretKey: SecretBytes(randomCount: keyLength))
        }
    }

    /// The public key of a 32-byte secret scalar.
    public static func publicKey(from secretKey: some ContiguousBytes) throws -> [UInt8] {
        Sodium.start()
        var out = [UInt8](repeating: 0, count: keyLength)
        try secretKey.withUnsafeBytes { sk in
            try Sodium.check(sk, keyLength, "X25519 secret key")
            _ = crypto_scalarmult_base(&out, sk.bindMemory(to: UInt8.self).baseAddress!)
        }
        return out
    }

    /// The shared secret of `secretKey` and `publicKey`. Throws for a small-order public key
    /// (an all-zero result), which a peer could send to force a known secret.
    public static func sharedSecret(secretKey: SecretBytes, publicKey: some ContiguousBytes) throws -> SecretBytes {
        Sodium.start()
        try Sodium.check(secretKey, keyLength, "X25519 secret key")
        var out = [UInt8](repeating: 0, count: keyLength)
        let rc: Int32 = try publicKey.withUnsafeBytes { pk in
            try Sodium.check(pk, keyLength, "X25519 public key")
            return secretKey.withUnsafeBytes { sk in
                crypto_scalarmult(&out, sk.bindMemory(to: UInt8.self).baseAddress!, pk.bindMemory(to: UInt8.self).baseAddress!)
            }
        }
        guard rc == 0 else { throw SodiumError.invalidKey("X25519 public key of small order") }
        return SecretBytes(consuming: &out)
    }
}

/// Anonymous public-key encryption to an X25519 key (`crypto_box_seal`): how a project key is
/// given to each member.
public enum SealedBox {
    public static let overhead = crypto_box_sealbytes()

    public static func seal(_ message: some ContiguousBytes, to publicKey: some ContiguousBytes) throws -> [UInt8] {
        Sodium.start()
        let mlen = message.withUnsafeBytes { $0.count }
        var out = [UInt8](repeating: 0, count: mlen + overhead)
        try publicKey.withUnsafeBytes { pk in
            try Sodium.check(pk, X25519.keyLength, "X25519 public key")
            message.withNonNullBytes { m, mlen in
                _ = crypto_box_seal(&out, m, UInt64(mlen), pk.bindMemory(to: UInt8.self).baseAddress!)
            }
        }
        return out
    }

    public static func open(_ ciphertext: some ContiguousBytes, publicKey: some ContiguousBytes, secretKey: SecretBytes) throws -> SecretBytes {
        Sodium.start()
        try Sodium.check(secretKey, X25519.keyLength, "X25519 secret key")
        let clen = ciphertext.withUnsafeBytes { $0.count }
        guard clen >= overhead else { throw SodiumError.authenticationFailed }
        var out = [UInt8](repeating: 0, count: Swift.max(clen - overhead, 1))
        let rc: Int32 = try publicKey.withUnsafeBytes { pk in
            try Sodium.check(pk, X25519.keyLength, "X25519 public key")
            return ciphertext.withNonNullBytes { c, clen in
                secretKey.withUnsafeBytes { sk in
                    out.withUnsafeMutableBufferPointer { o in
                        crypto_box_seal_open(o.baseAddress!, c, UInt64(clen),
                            pk.bindMemory(to: UInt8.self).baseAddress!, sk.bindMemory(to: UInt8.self).baseAddress!)
                    }
                }
            }
        }
        guard rc == 0 else { Sodium.zero(&out); throw SodiumError.authenticationFailed }
        if clen == overhead { out = [] }
        return SecretBytes(consuming: &out)
    }
}

/// Authenticated public-key encryption between two known nodes, with the shared key computed once
/// (`crypto_box_beforenm`): how gossip datagrams are sealed.
public struct Box: Sendable {
    public static let nonceLength = Int(crypto_box_NONCEBYTES)
    public static let overhead = Int(crypto_box_MACBYTES)
    private let shared: SecretBytes

    public init(secretKey: SecretBytes, peerPublicKey: some ContiguousBytes) throws {
        Sodium.start()
        try Sodium.check(secretKey, X25519.keyLength, "X25519 secret key")
        var k = [UInt8](repeating: 0, count: Int(crypto_box_BEFORENMBYTES))
        let rc: Int32 = try peerPublicKey.withUnsafeBytes { pk in
            try Sodium.check(pk, X25519.keyLength, "X25519 public key")
            return secretKey.withUnsafeBytes { sk in
                crypto_box_beforenm(&k, pk.bindMemory(to: UInt8.self).baseAddress!, sk.bindMemory(to: UInt8.self).baseAddress!)
            }
        }
        guard rc == 0 else { throw SodiumError.invalidKey("X25519 public key of small order") }
        shared = SecretBytes(consuming: &k)
    }

    public func seal(_ message: some ContiguousBytes, nonce: some ContiguousBytes) throws -> [UInt8] {
        let mlen = message.withUnsafeBytes { $0.count }
        var out = [UInt8](repeating: 0, count: mlen + Box.overhead)
        try nonce.withUnsafeBytes { n in
            try Sodium.check(n, Box.nonceLength, "box nonce")
            message.withNonNullBytes { m, mlen in
                shared.withUnsafeBytes { k in
                    _ = crypto_box_easy_afternm(&out, m, UInt64(mlen), n.bindMemory(to: UInt8.self).baseAddress!, k.bindMemory(to: UInt8.self).baseAddress!)
                }
            }
        }
        return out
    }

    public func open(_ ciphertext: some ContiguousBytes, nonce: some ContiguousBytes) throws -> [UInt8] {
        let clen = ciphertext.withUnsafeBytes { $0.count }
        guard clen >= Box.overhead else { throw SodiumError.authenticationFailed }
        var out = [UInt8](repeating: 0, count: Swift.max(clen - Box.overhead, 1))
        let rc: Int32 = try nonce.withUnsafeBytes { n in
            try Sodium.check(n, Box.nonceLength, "box nonce")
            return ciphertext.withNonNullBytes { c, clen in
                shared.withUnsafeBytes { k in
                    out.withUnsafeMutableBufferPointer { o in
                        crypto_box_open_easy_afternm(o.baseAddress!, c, UInt64(clen),
                            n.bindMemory(to: UInt8.self).baseAddress!, k.bindMemory(to: UInt8.self).baseAddress!)
                    }
                }
            }
        }
        guard rc == 0 else { throw SodiumError.authenticationFailed }
        return clen == Box.overhead ? [] : out
    }
}
