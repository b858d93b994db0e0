import Sodium
import Testing

@Suite("SHA-256 and HMAC-SHA-256 known answers")
struct SHA256Tests {
    // FIPS 180-4 examples (and the NIST "million a" long message).
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        (String(repeating: "a", count: 1_000_000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    ])
    func sha256(message: String, digest: String) {
        #expect(SHA256.hash(message).lowercaseHex == digest)
        #expect(SHA256.hash(Array(message.utf8)) == hex(digest))
    }

    // RFC 4231 test cases 1-4, 6, 7 (case 5 is truncation, checked on the first 16 bytes).
    @Test(arguments: [
        (hex(String(repeating: "0b", count: 20)), Array("Hi There".utf8), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (hex(String(repeating: "aa", count: 20)), hex(String(repeating: "dd", count: 50)), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        (Array(1...25), hex(String(repeating: "cd", count: 50)), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        (hex(String(repeating: "aa", count: 131)), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        (hex(String(repeating: "aa", count: 131)), Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ] as [([UInt8], [UInt8], String)])
    func hmacRFC4231(key: [UInt8], data: [UInt8], mac: String) {
        #expect(HMACSHA256.authenticate(data, key: key).lowercaseHex == mac)
        #expect(HMACSHA256.verify(hex(mac), message: data, key: key))
    }

    @Test func hmacRFC4231Truncated() {
        let mac = HMACSHA256.authenticate("Test With Truncation", key: hex(String(repeating: "0c", count: 20)))
        #expect(Array(mac.prefix(16)).lowercaseHex == "a3b6167473100ee06e0c796c2955552b")
    }

    @Test func verifyRejectsAlteredMessage() {
        let mac = HMACSHA256.authenticate("message", key: Array("key".utf8))
        #expect(!HMACSHA256.verify(mac, message: Array("messagf".utf8), key: Array("key".utf8)))
        #expect(!HMACSHA256.verify(Array(mac.prefix(31)), message: Array("message".utf8), key: Array("key".utf8)))
    }
}
