internal import CSodium

/// The AEADs of libsodium this project uses, behind one shape.
///
/// `XChaCha20-Poly1305` seals secrets (random 24-byte nonces are safe); `ChaCha20-Poly1305-IETF`
/// and `AES-256-GCM` are the Noise ciphers (counter nonces).
public struct AEAD: Sendable {
    public let name: String
    public let keyLength: Int
    public let nonceLength: Int
    public let tagLength: Int

    enum Kind: Sendable { case xchacha, chacha, aesgcm }
    let kind: Kind

    public static let xchacha20Poly1305 = AEAD(name: "XChaCha20-Poly1305", keyLength: 32, nonceLength: 24, tagLength: 16, kind: .xchacha)
    public static let chacha20Poly1305 = AEAD(name: "ChaCha20-Poly1305", keyLength: 32, nonceLength: 12, tagLength: 16, kind: .chacha)
    /// AES-256-GCM; libsodium offers it only on processors with AES-NI (see `aes256GCMAvailable`).
    public static let aes256GCM = AEAD(name: "AES-256-GCM", keyLength: 32, nonceLength: 12, tagLength: 16, kind: .aesgcm)

    private func encrypt(_ c: UnsafeMutablePointer<UInt8>, _ m: UnsafePointer<UInt8>, _ mlen: UInt64, _ a: UnsafePointer<UInt8>, _ alen: UInt64, _ n: UnsafePointer<UInt8>, _ k: UnsafePointer<UInt8>) -> Int32 {
        switch kind {
        case .xchacha: return crypto_aead_xchacha20poly1305_ietf_encrypt(c, nil, m, mlen, a, alen, nil, n, k)
        case .chacha: return crypto_aead_chacha20poly1305_ietf_encrypt(c, nil, m, mlen, a, alen, nil, n, k)
        case .aesgcm: return crypto_aead_aes256gcm_encrypt(c, nil, m, mlen, a, alen, nil, n, k)
        }
    }

    private func decrypt(_ m: UnsafeMutablePointer<UInt8>, _ c: UnsafePointer<UInt8>, _ clen: UInt64, _ a: UnsafePointer<UInt8>, _ alen: UInt64, _ n: UnsafePointer<UInt8>, _ k: UnsafePointer<UInt8>) -> Int32 {
        switch kind {
        case .xchacha: return crypto_aead_xchacha20poly1305_ietf_decrypt(m, nil, nil, c, clen, a, alen, n, k)
        case .chacha: return crypto_aead_chacha20poly1305_ietf_decrypt(m, nil, nil, c, clen, a, alen, n, k)
        case .aesgcm: return crypto_aead_aes256gcm_decrypt(m, nil, nil, c, clen, a, alen, n, k)
        }
    }

    /// Whether this processor has the instructions libsodium's AES-256-GCM needs.
    public static var aes256GCMAvailable: Bool {
        Sodium.start()
        return crypto_aead_aes256gcm_is_available() == 1
    }

    /// `plaintext` sealed under `key` and `nonce`, bound to `ad`: ciphertext ‖ tag.
    public func seal(_ plaintext: some ContiguousBytes, ad: some ContiguousBytes = [UInt8](), nonce: some ContiguousBytes, key: some ContiguousBytes) throws -> [UInt8] {
        Sodium.start()
        let mlen = plaintext.withUnsafeBytes { $0.count }
        var out = [UInt8](repeating: 0, count: mlen + tagLength)
        try key.withUnsafeBytes { k in
            try Sodium.check(k, keyLength, "\(name) key")
            try nonce.withUnsafeBytes { n in
                try Sodium.check(n, nonceLength, "\(name) nonce")
                plaintext.withNonNullBytes { m, mlen in
                    ad.withNonNullBytes { a, alen in
                        _ = encrypt(&out, m, UInt64(mlen), a, UInt64(alen),
                                    n.bindMemory(to: UInt8.self).baseAddress!, k.bindMemory(to: UInt8.self).baseAddress!)
                    }
                }
            }
        }
        return out
    }

    /// The plaintext of `ciphertext` (ciphertext ‖ tag); throws `authenticationFailed` when it,
    /// the nonce, the key or `ad` differ from what was sealed.
    public func open(_ ciphertext: some ContiguousBytes, ad: some ContiguousBytes = [UInt8](), nonce: some ContiguousBytes, key: some ContiguousBytes) throws -> [UInt8] {
        Sodium.start()
        let clen = ciphertext.withUnsafeBytes { $0.count }
        guard clen >= tagLength else { throw SodiumError.authenticationFailed }
        var out = [UInt8](repeating: 0, count: Swift.max(clen - tagLength, 1))
        let rc: Int32 = try key.withUnsafeBytes { k in
            try Sodium.check(k, keyLength, "\(name) key")
            return try nonce.withUnsafeBytes { n in
                try Sodium.check(n, nonceLength, "\(name) nonce")
                return ciphertext.withNonNullBytes { c, clen in
                    ad.withNonNullBytes { a, alen in
                        out.withUnsafeMutableBufferPointer { o in
                            decrypt(o.baseAddress!, c, UInt64(clen), a, UInt64(alen),
                                           n.bindMemory(to: UInt8.self).baseAddress!, k.bindMemory(to: UInt8.self).baseAddress!)
                        }
                    }
                }
            }
        }
        guard rc == 0 else { throw SodiumError.authenticationFailed }
        return clen == tagLength ? [] : out
    }
}
