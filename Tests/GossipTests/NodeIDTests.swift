@testable import Gossip
import Testing

@Suite struct NodeIDTests {
    @Test func printsAndParsesBack() throws {
        let id = try #require(NodeID(bytes: (0..<32).map { UInt8($0 * 7 & 0xff) }))
        #expect(id.description.count == 52)
        #expect(NodeID(id.description) == id)
        #expect(NodeID(id.description.uppercased()) == id)
        #expect(id.short == String(id.description.prefix(8)))
    }

    @Test(arguments: ["", "abc", "not base32!", String(repeating: "a", count: 51), String(repeating: "9", count: 52)])
    func rejectsMalformedText(_ text: String) {
        #expect(NodeID(text) == nil)
    }

    @Test func rejectsWrongLength() {
        #expect(NodeID(bytes: [1, 2, 3]) == nil)
    }

    /// RFC 4648 §10 (lower-case, padding removed).
    @Test(arguments: [("", ""), ("f", "my"), ("fo", "mzxq"), ("foo", "mzxw6"), ("foob", "mzxw6yq"), ("fooba", "mzxw6ytb"), ("foobar", "mzxw6ytboi")])
    func base32KnownAnswers(_ plain: String, _ encoded: String) {
        #expect(Base32.encode(Array(plain.utf8)) == encoded)
        #expect(Base32.decode(encoded) == Array(plain.utf8))
    }
}
