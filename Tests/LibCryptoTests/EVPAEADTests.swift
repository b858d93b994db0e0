import LibCrypto
import Sodium
import Testing

/// Records sealed by libcrypto must open with libsodium and back: the link seals with the former
/// and the Noise vectors are checked with the latter.
struct EVPAEADTests {
    static let pairs: [(EVPAEAD.Algorithm, AEAD)] = [(.aes256GCM, .aes256GCM), (.chacha20Poly1305, .chacha20Poly1305)]
    static let lengths = [0, 1, 15, 16, 17, 1000, 65519]

    static func seal(_ algorithm: EVPAEAD.Algorithm, key: [UInt8], nonce: [UInt8], ad: [UInt8], plaintext: [UInt8]) throws -> [UInt8] {
        let aead = try key.withUnsafeBytes { try EVPAEAD(algorithm: algorithm, direction: .seal, key: $0) }
        var buffer = plaintext
        var tag = [UInt8](repeating: 0, count: 16)
        try nonce.withUnsafeBytes { n in
            try ad.withUnsafeBytes { a in
                try buffer.withUnsafeMutableBytes { b in
                    try tag.withUnsafeMutableBytes { t in try aead.seal(nonce: n, ad: a, buffer: b, tag: t) }
                }
            }
        }
        return buffer + tag
    }

    static func open(_ algorithm: EVPAEAD.Algorithm, key: [UInt8], nonce: [UInt8], ad: [UInt8], sealed: [UInt8]) throws -> [UInt8] {
        let aead = try key.withUnsafeBytes { try EVPAEAD(algorithm: algorithm, direction: .open, key: $0) }
        var buffer = Array(sealed.dropLast(16))
        let tag = Array(sealed.suffix(16))
        try nonce.withUnsafeBytes { n in
            try ad.withUnsafeBytes { a in
                try buffer.withUnsafeMutableBytes { b in
                    try tag.withUnsafeBytes { t in try aead.open(nonce: n, ad: a, buffer: b, tag: t) }
                }
            }
        }
        return buffer
    }

    @Test func libcryptoAndLibsodiumAgree() throws {
        for (evp, sodium) in Self.pairs {
            if evp == .aes256GCM && !AEAD.aes256GCMAvailable { continue }
            for length in Self.lengths {
                let key = Sodium.randomBytes(32), nonce = Sodium.randomBytes(12), ad = Sodium.randomBytes(length % 7)
                let plaintext = Sodium.randomBytes(length)
                let byEVP = try Self.seal(evp, key: key, nonce: nonce, ad: ad, plaintext: plaintext)
                let bySodium = try sodium.seal(plaintext, ad: ad, nonce: nonce, key: key)
                #expect(byEVP == bySodium, "\(evp) length \(length)")
                #expect(try sodium.open(byEVP, ad: ad, nonce: nonce, key: key) == plaintext)
                #expect(try Self.open(evp, key: key, nonce: nonce, ad: ad, sealed: bySodium) == plaintext)
            }
        }
    }

    @Test(arguments: EVPAEAD.Algorithm.allCases)
    func tamperingIsDetected(algorithm: EVPAEAD.Algorithm) throws {
        let key = Sodium.randomBytes(32), nonce = Sodium.randomBytes(12)
        var sealed = try Self.seal(algorithm, key: key, nonce: nonce, ad: [], plaintext: Array("record".utf8))
        #expect(try Self.open(algorithm, key: key, nonce: nonce, ad: [], sealed: sealed) == Array("record".utf8))
        sealed[2] ^= 0x40
        #expect(throws: LibCryptoError.authenticationFailed) {
            try Self.open(algorithm, key: key, nonce: nonce, ad: [], sealed: sealed)
        }
        sealed[2] ^= 0x40
        var otherNonce = nonce
        otherNonce[11] ^= 1
        #expect(throws: LibCryptoError.authenticationFailed) {
            try Self.open(algorithm, key: key, nonce: otherNonce, ad: [], sealed: sealed)
        }
    }

    @Test func wrongLengthsAreErrors() {
        #expect(throws: LibCryptoError.self) {
            try [UInt8](repeating: 0, count: 16).withUnsafeBytes { try EVPAEAD(algorithm: .aes256GCM, direction: .seal, key: $0) }
        }
    }
}
