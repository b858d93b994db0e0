// JSON Web Signatures for ACME (RFC 8555 section 6.2): ES256 over P-256, with a JWK or a key ID.

import Foundation

enum Base64URL {
    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// The account key's public half as ACME wants it, and the signing of requests.
struct AcmeJWS {
    let key: AcmeKey

    /// The public key's coordinates, base64url: the point is 0x04 || X || Y.
    private var coordinates: (x: String, y: String) {
        let raw = self.key.publicPoint
        return (Base64URL.encode(raw[1..<33]), Base64URL.encode(raw[33..<65]))
    }

    /// The JWK with its members in the lexicographic order RFC 7638 hashes.
    var jwk: String {
        let (x, y) = self.coordinates
        return #"{"crv":"P-256","kty":"EC","x":"\#(x)","y":"\#(y)"}"#
    }

    /// RFC 7638 thumbprint: the key authorization's second half.
    var thumbprint: String {
        Base64URL.encode(SHA256Digest.hash(Array(self.jwk.utf8)))
    }

    /// A flattened JWS body. `kid` nil means the request carries the JWK (new account);
    /// `payload` nil is a POST-as-GET (empty payload).
    func sign(url: String, nonce: String, kid: String?, payload: [UInt8]?) throws -> [UInt8] {
        let keyMember = kid.map { #""kid":\#(Self.quoted($0))"# } ?? #""jwk":\#(self.jwk)"#
        let header = #"{"alg":"ES256",\#(keyMember),"nonce":\#(Self.quoted(nonce)),"url":\#(Self.quoted(url))}"#
        let protected = Base64URL.encode(Array(header.utf8))
        let body = payload.map { Base64URL.encode($0) } ?? ""
        let signature = try self.key.signES256(Array("\(protected).\(body)".utf8))
        let jws = #"{"protected":"\#(protected)","payload":"\#(body)","signature":"\#(Base64URL.encode(signature))"}"#
        return Array(jws.utf8)
    }

    /// A JSON string literal (the values here are URLs and nonces, but quote properly anyway).
    static func quoted(_ text: String) -> String {
        let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\\/", with: "/")
    }
}
