internal import CSodium

/// BLAKE2b (RFC 7693), the Noise hash and the hash of node IDs.
public final class BLAKE2b {
    public static let maxOutputLength = Int(crypto_generichash_BYTES_MAX)
    public static let maxKeyLength = Int(crypto_generichash_KEYBYTES_MAX)
    /// BLAKE2b's block length, which HMAC needs.
    public static let blockLength = 128

    private let state: UnsafeMutableRawPointer
    private let outputLength: Int

    /// A streaming hash with `outputLength` bytes of output (1...64), optionally keyed.
    public init(outputLength: Int = 64, key: some ContiguousBytes = [UInt8]()) {
        Sodium.start()
        precondition((1...BLAKE2b.maxOutputLength).contains(outputLength), "BLAKE2b output length must be 1...64")
        self.outputLength = outputLength
        state = .allocate(byteCount: crypto_generichash_statebytes(), alignment: 64)
        key.withUnsafeBytes { k in
            precondition(k.count <= BLAKE2b.maxKeyLength, "BLAKE2b key must be at most 64 bytes")
            _ = crypto_generichash_init(OpaquePointer(state), k.count == 0 ? nil : k.bindMemory(to: UInt8.self).baseAddress, k.count, outputLength)
        }
    }

    deinit {
        sodium_memzero(state, crypto_generichash_statebytes())
        state.deallocate()
    }

    public func update(_ data: some ContiguousBytes) {
        data.withNonNullBytes { p, n in _ = crypto_generichash_update(OpaquePointer(state), p, UInt64(n)) }
    }

    public func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: outputLength)
        _ = crypto_generichash_final(OpaquePointer(state), &out, outputLength)
        return out
    }

    /// The hash of `data` in one call.
    public static func hash(_ data: some ContiguousBytes, outputLength: Int = 64, key: some ContiguousBytes = [UInt8]()) -> [UInt8] {
        Sodium.start()
        var out = [UInt8](repeating: 0, count: outputLength)
        data.withNonNullBytes { p, n in
            key.withUnsafeBytes { k in
                _ = crypto_generichash(&out, outputLength, p, UInt64(n), k.count == 0 ? nil : k.bindMemory(to: UInt8.self).baseAddress, k.count)
            }
        }
        return out
    }
}
