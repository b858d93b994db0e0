internal import LibCrypto
internal import NIOCore
internal import Sodium

/// One direction of a link's transport encryption: Noise transport messages sealed with libcrypto.
///
/// A record on the wire is `length (UInt16, big-endian) ‖ ciphertext ‖ tag`, at most 65535 bytes
/// after the length, so at most 65519 bytes of plaintext. The nonce is the record count and never
/// repeats; every `rekeyInterval` records both sides apply Noise's `REKEY` to the key, and the link
/// ends (`nonceExhausted`) before the counter could reach 2^64-1.
final class LinkRecordCipher {
    static let maxRecordLength = 65535
    static let tagLength = EVPAEAD.tagLength
    static let maxPlaintextLength = maxRecordLength - tagLength

    private let aead: EVPAEAD
    private let suite: LinkSuite
    private var key: SecretBytes
    private(set) var nonce: UInt64
    private let rekeyInterval: UInt64
    private var nonceBytes = [UInt8](repeating: 0, count: 12)

    init(suite: LinkSuite, direction: EVPAEAD.Direction, key: SecretBytes, rekeyInterval: UInt64, nonce: UInt64 = 0) throws {
        self.suite = suite
        self.key = key
        self.nonce = nonce
        self.rekeyInterval = max(rekeyInterval, 1)
        aead = try key.withUnsafeBytes { try EVPAEAD(algorithm: suite.recordAlgorithm, direction: direction, key: $0) }
    }

    /// Starts the next record.
    func begin() throws {
        guard nonce < UInt64.max - 1 else { throw LinkError.nonceExhausted }
        suite.noiseCipher.writeNonce(nonce, into: &nonceBytes)
        try nonceBytes.withUnsafeBytes { try aead.begin(nonce: $0) }
    }

    func update(input: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer) throws {
        try aead.update(input: input, output: output)
    }

    /// Ends a sealed record, writing its tag, and advances the nonce.
    func finishSeal(tag: UnsafeMutableRawBufferPointer) throws {
        try aead.finishSeal(tag: tag)
        try advance()
    }

    /// Ends an opened record, checking its tag, and advances the nonce.
    func finishOpen(tag: UnsafeRawBufferPointer) throws {
        do {
            try aead.finishOpen(tag: tag)
        } catch {
            throw LinkError.recordAuthenticationFailed
        }
        try advance()
    }

    private func advance() throws {
        nonce += 1
        if nonce % rekeyInterval == 0 { try rekey() }
    }

    /// Noise's `REKEY(k)`: the first 32 bytes of sealing 32 zero bytes under nonce 2^64-1.
    private func rekey() throws {
        let sealer = try key.withUnsafeBytes { try EVPAEAD(algorithm: suite.recordAlgorithm, direction: .seal, key: $0) }
        var fresh = [UInt8](repeating: 0, count: 32)
        var tag = [UInt8](repeating: 0, count: EVPAEAD.tagLength)
        let maxNonce = suite.noiseCipher.nonce(UInt64.max)
        try maxNonce.withUnsafeBytes { n in
            try fresh.withUnsafeMutableBytes { b in
                try tag.withUnsafeMutableBytes { t in try sealer.seal(nonce: n, buffer: b, tag: t) }
            }
        }
        key = SecretBytes(consuming: &fresh)
        try key.withUnsafeBytes { try aead.setKey($0) }
    }
}
