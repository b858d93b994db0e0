internal import Sodium

/// HMAC-BLAKE2b and HKDF as the Noise specification defines them (section 4.3), built from plain
/// BLAKE2b-512: HASHLEN 64, BLOCKLEN 128.
enum NoiseHKDF {
    static let hashLength = 64

    static func hash(_ data: [UInt8]) -> [UInt8] {
        BLAKE2b.hash(data, outputLength: hashLength)
    }

    /// HMAC (RFC 2104) over BLAKE2b with a key of at most BLOCKLEN bytes (Noise keys are 32 or 64).
    static func hmac(key: [UInt8], _ parts: [UInt8]...) -> [UInt8] {
        var block = key.count > BLAKE2b.blockLength ? hash(key) : key
        block += [UInt8](repeating: 0, count: BLAKE2b.blockLength - block.count)
        let inner = BLAKE2b(outputLength: hashLength)
        inner.update(block.map { $0 ^ 0x36 })
        for part in parts { inner.update(part) }
        let innerHash = inner.finalize()
        let outer = BLAKE2b(outputLength: hashLength)
        outer.update(block.map { $0 ^ 0x5c })
        outer.update(innerHash)
        Sodium.zero(&block)
        return outer.finalize()
    }

    /// `HKDF(chaining_key, input_key_material, num_outputs)` with two or three outputs of HASHLEN bytes.
    static func derive(chainingKey: [UInt8], inputKeyMaterial: [UInt8], outputs: Int) -> [[UInt8]] {
        var tempKey = hmac(key: chainingKey, inputKeyMaterial)
        defer { Sodium.zero(&tempKey) }
        let output1 = hmac(key: tempKey, [0x01])
        let output2 = hmac(key: tempKey, output1, [0x02])
        if outputs == 2 { return [output1, output2] }
        let output3 = hmac(key: tempKey, output2, [0x03])
        return [output1, output2, output3]
    }
}
