internal import CSodium

/// SHA-256 (FIPS 180-4), for protocols that name it: AWS Signature Version 4, JWT RS256 digests.
public enum SHA256 {
    public static let outputLength = Int(crypto_hash_sha256_BYTES)

    /// The digest of `data`.
    public static func hash(_ data: some ContiguousBytes) -> [UInt8] {
        Sodium.start()
        var out = [UInt8](repeating: 0, count: outputLength)
        data.withNonNullBytes { p, n in _ = crypto_hash_sha256(&out, p, UInt64(n)) }
        return out
    }

    /// The digest of the UTF-8 of `text`.
    public static func hash(_ text: String) -> [UInt8] { hash(Array(text.utf8)) }
}

/// HMAC-SHA-256 (RFC 2104, RFC 4231) with a key of any length.
public enum HMACSHA256 {
    public static let outputLength = Int(crypto_auth_hmacsha256_BYTES)

    /// The authentication code of `message` under `key`. Keys longer than the block are hashed
    /// first, as RFC 2104 says (libsodium's init does it).
    public static func authenticate(_ message: some ContiguousBytes, key: some ContiguousBytes) -> [UInt8] {
        Sodium.start()
        let state = UnsafeMutablePointer<crypto_auth_hmacsha256_state>.allocate(capacity: 1)
        defer {
            sodium_memzero(state, MemoryLayout<crypto_auth_hmacsha256_state>.size)
            state.deallocate()
        }
        var out = [UInt8](repeating: 0, count: outputLength)
        key.withNonNullBytes { k, kn in _ = crypto_auth_hmacsha256_init(state, k, kn) }
        message.withNonNullBytes { m, mn in _ = crypto_auth_hmacsha256_update(state, m, UInt64(mn)) }
        _ = crypto_auth_hmacsha256_final(state, &out)
        return out
    }

    /// The code of the UTF-8 of `message` under `key`.
    public static func authenticate(_ message: String, key: some ContiguousBytes) -> [UInt8] {
        authenticate(Array(message.utf8), key: key)
    }

    /// Constant-time check of `mac` against the code of `message` under `key`.
    public static func verify(_ mac: some ContiguousBytes, message: some ContiguousBytes, key: some ContiguousBytes) -> Bool {
        Sodium.constantTimeEqual(authenticate(message, key: key), mac)
    }
}

extension Array where Element == UInt8 {
    /// Lower-case hexadecimal, as SigV4 and test vectors print digests.
    public var lowercaseHex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
