import Sodium
import Testing

func hex(_ s: String) -> [UInt8] {
    let clean = s.filter { !$0.isWhitespace }
    var out: [UInt8] = []
    var i = clean.startIndex
    while i < clean.endIndex {
        let j = clean.index(i, offsetBy: 2)
        out.append(UInt8(clean[i..<j], radix: 16)!)
        i = j
    }
    return out
}

func hexString(_ b: [UInt8]) -> String { b.map { String(format0x($0)) }.joined() }
private func format0x(_ v: UInt8) -> String {
    let d = Array("0123456789abcdef")
    return String([d[Int(v >> 4)], d[Int(v & 15)]])
}

/// RFC 8032 §7.1, tests 1–3.
struct Ed25519KnownAnswer: Sendable {
    let seed: String, publicKey: String, message: String, signature: String
}

let rfc8032: [Ed25519KnownAnswer] = [
    .init(seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
          publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
          message: "",
          signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    .init(seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
          publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
          message: "72",
          signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    .init(seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
          publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
          message: "af82",
          signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]

@Suite struct Ed25519Tests {
    @Test(arguments: rfc8032)
    func rfc8032Vectors(_ v: Ed25519KnownAnswer) throws {
        let pair = try Ed25519.KeyPair.fromSeed(hex(v.seed))
        #expect(pair.publicKey == hex(v.publicKey))
        let sig = pair.sign(hex(v.message))
        #expect(sig == hex(v.signature))
        #expect(Ed25519.verify(signature: sig, message: hex(v.message), publicKey: pair.publicKey))
        #expect(pair.seed.copyBytes() == hex(v.seed))
    }

    @Test func tamperedSignatureMessageOrKeyFails() {
        let pair = Ed25519.KeyPair.generate()
        let msg: [UInt8] = Array("lease 5001".utf8)
        var sig = pair.sign(msg)
        #expect(Ed25519.verify(signature: sig, message: msg, publicKey: pair.publicKey))
        #expect(!Ed25519.verify(signature: sig, message: msg + [0], publicKey: pair.publicKey))
        #expect(!Ed25519.verify(signature: sig, message: msg, publicKey: Ed25519.KeyPair.generate().publicKey))
        #expect(!Ed25519.verify(signature: Array(sig.prefix(63)), message: msg, publicKey: pair.publicKey))
        sig[10] ^= 1
        #expect(!Ed25519.verify(signature: sig, message: msg, publicKey: pair.publicKey))
    }

    @Test func x25519FormAgreesOnBothSides() throws {
        let a = Ed25519.KeyPair.generate(), b = Ed25519.KeyPair.generate()
        let ax = try Ed25519.x25519SecretKey(from: a.secretKey), bx = try Ed25519.x25519SecretKey(from: b.secretKey)
        let axPub = try Ed25519.x25519PublicKey(from: a.publicKey), bxPub = try Ed25519.x25519PublicKey(from: b.publicKey)
        #expect(try X25519.publicKey(from: ax) == axPub)
        let s1 = try X25519.sharedSecret(secretKey: ax, publicKey: bxPub)
        let s2 = try X25519.sharedSecret(secretKey: bx, publicKey: axPub)
        #expect(s1 == s2)
    }
}

@Suite struct X25519Tests {
    /// RFC 7748 §6.1.
    @Test func rfc7748DiffieHellman() throws {
        var a = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        var b = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
        let alice = try X25519.KeyPair(secretKey: SecretBytes(consuming: &a))
        let bob = try X25519.KeyPair(secretKey: SecretBytes(consuming: &b))
        #expect(alice.publicKey == hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
        #expect(bob.publicKey == hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
        let k = try X25519.sharedSecret(secretKey: alice.secretKey, publicKey: bob.publicKey)
        #expect(k.copyBytes() == hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"))
    }

    @Test func smallOrderPointIsRefused() {
        let pair = X25519.KeyPair.generate()
        #expect(throws: SodiumError.self) {
            _ = try X25519.sharedSecret(secretKey: pair.secretKey, publicKey: [UInt8](repeating: 0, count: 32))
        }
    }

    @Test func wrongLengthIsAnError() {
        #expect(throws: SodiumError.invalidLength(what: "X25519 secret key", expected: 32, got: 3)) {
            _ = try X25519.publicKey(from: [UInt8]([1, 2, 3]))
        }
    }
}

@Suite struct BoxTests {
    @Test func sealedBoxRoundTripAndTamper() throws {
        let member = X25519.KeyPair.generate()
        let secret: [UInt8] = Array("project key".utf8)
        var sealed = try SealedBox.seal(secret, to: member.publicKey)
        #expect(sealed.count == secret.count + SealedBox.overhead)
        #expect(try SealedBox.open(sealed, publicKey: member.publicKey, secretKey: member.secretKey).copyBytes() == secret)
        let other = X25519.KeyPair.generate()
        #expect(throws: SodiumError.authenticationFailed) {
            _ = try SealedBox.open(sealed, publicKey: other.publicKey, secretKey: other.secretKey)
        }
        sealed[sealed.count - 1] ^= 0x80
        #expect(throws: SodiumError.authenticationFailed) {
            _ = try SealedBox.open(sealed, publicKey: member.publicKey, secretKey: member.secretKey)
        }
        #expect(throws: SodiumError.authenticationFailed) {
            _ = try SealedBox.open([UInt8](repeating: 1, count: 10), publicKey: member.publicKey, secretKey: member.secretKey)
        }
    }

    @Test func precomputedBoxBothDirections() throws {
        let a = X25519.KeyPair.generate(), b = X25519.KeyPair.generate()
        let ab = try Box(secretKey: a.secretKey, peerPublicKey: b.publicKey)
        let ba = try Box(secretKey: b.secretKey, peerPublicKey: a.publicKey)
        let nonce = Sodium.randomBytes(Box.nonceLength)
        let c = try ab.seal(Array("ping".utf8), nonce: nonce)
        #expect(try ba.open(c, nonce: nonce) == Array("ping".utf8))
        #expect(throws: SodiumError.authenticationFailed) { _ = try ba.open(c, nonce: Sodium.randomBytes(Box.nonceLength)) }
    }
}

@Suite struct AEADTests {
    /// RFC 8439 §2.8.2.
    @Test func rfc8439ChaCha20Poly1305() throws {
        let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let ad = hex("50515253c0c1c2c3c4c5c6c7")
        let key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
        let nonce = hex("070000004041424344454647")
        let expected = hex("""
            d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116
            1ae10b594f09e26a7e902ecbd0600691
            """)
        let sealed = try AEAD.chacha20Poly1305.seal(plaintext, ad: ad, nonce: nonce, key: key)
        #expect(sealed == expected)
        #expect(try AEAD.chacha20Poly1305.open(sealed, ad: ad, nonce: nonce, key: key) == plaintext)
    }

    /// draft-irtf-cfrg-xchacha-03 §A.3.1.
    @Test func xchachaDraftVector() throws {
        let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let ad = hex("50515253c0c1c2c3c4c5c6c7")
        let key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
        let nonce = hex("404142434445464748494a4b4c4d4e4f5051525354555657")
        let sealed = try AEAD.xchacha20Poly1305.seal(plaintext, ad: ad, nonce: nonce, key: key)
        #expect(Array(sealed.suffix(16)) == hex("c0875924c1c7987947deafd8780acf49"))
        #expect(Array(sealed.prefix(16)) == hex("bd6d179d3e83d43b9576579493c0e939"))
    }

    @Test(arguments: [AEAD.xchacha20Poly1305, AEAD.chacha20Poly1305] + (AEAD.aes256GCMAvailable ? [AEAD.aes256GCM] : []))
    func roundTripAndEveryTamperFails(_ aead: AEAD) throws {
        let key = Sodium.randomBytes(aead.keyLength), nonce = Sodium.randomBytes(aead.nonceLength)
        let msg = Sodium.randomBytes(1000), ad: [UInt8] = Array("project=local name=GATEWAY_IP v=1".utf8)
        let c = try aead.seal(msg, ad: ad, nonce: nonce, key: key)
        #expect(try aead.open(c, ad: ad, nonce: nonce, key: key) == msg)
        #expect(try aead.open(aead.seal([UInt8](), nonce: nonce, key: key), nonce: nonce, key: key) == [])
        var flipped = c; flipped[0] ^= 1
        #expect(throws: SodiumError.authenticationFailed) { _ = try aead.open(flipped, ad: ad, nonce: nonce, key: key) }
        #expect(throws: SodiumError.authenticationFailed) { _ = try aead.open(c, ad: [UInt8](), nonce: nonce, key: key) }
        #expect(throws: SodiumError.authenticationFailed) { _ = try aead.open(c, ad: ad, nonce: Sodium.randomBytes(aead.nonceLength), key: key) }
        #expect(throws: SodiumError.authenticationFailed) { _ = try aead.open(Array(c.prefix(5)), ad: ad, nonce: nonce, key: key) }
        #expect(throws: SodiumError.self) { _ = try aead.seal(msg, nonce: nonce, key: Array(key.prefix(31))) }
    }
}

@Suite struct HashAndMemoryTests {
    /// RFC 7693 Appendix A: BLAKE2b-512("abc").
    @Test func blake2bRFC7693() {
        #expect(BLAKE2b.hash(Array("abc".utf8)) == hex("""
            ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923
            """))
    }

    @Test func streamingEqualsOneShotAndKeyMatters() {
        let h = BLAKE2b(outputLength: 32)
        h.update(Array("a".utf8)); h.update(Array("bc".utf8))
        #expect(h.finalize() == BLAKE2b.hash(Array("abc".utf8), outputLength: 32))
        #expect(BLAKE2b.hash(Array("abc".utf8), key: [UInt8](repeating: 7, count: 32)) != BLAKE2b.hash(Array("abc".utf8)))
    }

    @Test func constantTimeCompareAndZeroing() {
        #expect(Sodium.constantTimeEqual([UInt8]([1, 2, 3]), [UInt8]([1, 2, 3])))
        #expect(!Sodium.constantTimeEqual([UInt8]([1, 2, 3]), [UInt8]([1, 2, 4])))
        #expect(!Sodium.constantTimeEqual([UInt8]([1, 2, 3]), [UInt8]([1, 2])))
        var secret: [UInt8] = [9, 9, 9]
        let kept = SecretBytes(consuming: &secret)
        #expect(secret == [0, 0, 0])
        #expect(kept.copyBytes() == [9, 9, 9])
        #expect(Sodium.randomBytes(32) != Sodium.randomBytes(32))
    }
}
