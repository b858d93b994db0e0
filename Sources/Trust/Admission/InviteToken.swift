public import Foundation
public import Gossip
public import Sodium

/// A single-use invitation to join a mesh, signed by an admin.
///
/// Printed as `warren1.<base64url>`; the bytes are:
/// ```
///  tag=4 ‖ ver=1 ‖ mesh ID (16) ‖ inviter node ID (32) ‖ role (1) ‖ expires (i64, s since 1970)
///  ‖ one-time secret (16) ‖ address count (1, ≤ 16) ‖ { u16 length ‖ address (≤ 255) }*
///  ‖ Ed25519 signature (64) by the inviter over "warren invite v1\0" ‖ everything before it
/// ```
/// The one-time secret makes every token distinct; its hash is the token ID under which a spent
/// token is gossiped. Once used, the whole token travels inside the new member's record (the
/// roster checks the inviter's signature there); it is spent by then, so its secret is worth nothing.
public struct InviteToken: Sendable, Equatable {
    public static let prefix = "warren1."
    /// The longest a token may stay valid: an unused token admits whoever holds it.
    public static let maxTTL: TimeInterval = 7 * 86400
    public static let secretLength = 16
    /// Characters of a token ID (hex of a 16-byte hash).
    public static let idLength = 32
    public static let maxAddresses = 16
    public static let maxAddressLength = 255
    /// Longer text is refused before decoding.
    public static let maxEncodedLength = 8192

    public let meshID: MeshID
    public let inviter: NodeID
    public let role: MeshRole
    /// Seconds since 1970, kept as encoded so any decoded token re-encodes to its own bytes.
    let expirySeconds: Int64
    /// The token is refused from this instant on (whole seconds).
    public var expires: Date { Date(timeIntervalSince1970: TimeInterval(expirySeconds)) }
    public let secret: [UInt8]
    /// Members the new node can dial (`host:port`), the inviter's first.
    public let addresses: [String]
    public let signature: [UInt8]

    /// The ID under which this token is recorded as spent.
    public var id: String { Hex.encode(BLAKE2b.hash(Array("warren token id v1".utf8) + secret, outputLength: 16)) }

    /// A new token signed by `inviterKeys`. The caller checks that the inviter is an admin
    /// (`MeshRoster.issueInvite` does).
    public static func issue(
        meshID: MeshID, role: MeshRole, expires: Date, addresses: [String], inviterKeys: Ed25519.KeyPair
    ) throws(AdmissionError) -> InviteToken {
        guard addresses.count <= maxAddresses else { throw .invalidAddresses("at most \(maxAddresses) addresses fit in a token, got \(addresses.count)") }
        if let long = addresses.first(where: { $0.utf8.count > maxAddressLength || $0.isEmpty }) {
            throw .invalidAddresses("address \"\(long.prefix(40))\" must be 1 to \(maxAddressLength) bytes")
        }
        let inviter = NodeID(bytes: inviterKeys.publicKey)!
        let seconds = Int64(exactly: expires.timeIntervalSince1970.rounded(.down)) ?? .max
        let unsigned = InviteToken(meshID: meshID, inviter: inviter, role: role, expires: seconds,
                                   secret: Sodium.randomBytes(secretLength), addresses: addresses, signature: [])
        let signature = inviterKeys.sign(InviteToken.signingContext + unsigned.body)
        return InviteToken(meshID: meshID, inviter: inviter, role: role, expires: seconds,
                           secret: unsigned.secret, addresses: addresses, signature: signature)
    }

    init(meshID: MeshID, inviter: NodeID, role: MeshRole, expires: Int64, secret: [UInt8], addresses: [String], signature: [UInt8]) {
        self.meshID = meshID
        self.inviter = inviter
        self.role = role
        self.expirySeconds = expires
        self.secret = secret
        self.addresses = addresses
        self.signature = signature
    }

    static let signingContext = Array("warren invite v1".utf8) + [0]

    /// The signed part.
    var body: [UInt8] {
        var w = EntryWriter(tag: .inviteToken)
        w.fixed(meshID.bytes)
        w.fixed(inviter.bytes)
        w.u8(role.rawValue)
        w.i64(expirySeconds)
        w.fixed(secret)
        w.u8(UInt8(addresses.count))
        for a in addresses { w.string(a) }
        return w.bytes
    }

    /// The bytes of the token (body ‖ signature), as embedded in a membership record.
    public var bytes: [UInt8] { body + signature }

    /// The printable form, `warren1.<base64url>`.
    public var encoded: String { InviteToken.prefix + Base64URL.encode(bytes) }

    /// Whether the signature is the inviter's over the rest of the token.
    public var isSignatureValid: Bool {
        Ed25519.verify(signature: signature, message: InviteToken.signingContext + body, publicKey: inviter.bytes)
    }

    /// Parses the printed form; refuses anything else with `.malformed`, saying why.
    /// The signature is not checked here (see `isSignatureValid`).
    public init(encoded text: String) throws(AdmissionRefusal) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.utf8.count <= InviteToken.maxEncodedLength else { throw .malformed("it is longer than \(InviteToken.maxEncodedLength) characters") }
        guard trimmed.hasPrefix(InviteToken.prefix) else { throw .malformed("it does not start with \"\(InviteToken.prefix)\"") }
        guard let raw = Base64URL.decode(String(trimmed.dropFirst(InviteToken.prefix.count))) else {
            throw .malformed("the part after \"\(InviteToken.prefix)\" is not base64url")
        }
        do throws(EntryDecodingError) {
            self = try InviteToken(bytes: raw)
        } catch {
            throw .malformed(error.reason)
        }
    }

    /// Parses the binary form (as embedded in a membership record).
    public init(bytes raw: [UInt8]) throws(EntryDecodingError) {
        var r = try EntryReader(raw, tag: .inviteToken, what: "invite token")
        let mesh = MeshID(bytes: try r.fixed(MeshID.byteCount, "mesh ID"))!
        let inviter = try r.nodeID("inviter")
        guard let role = MeshRole(rawValue: try r.u8("role")) else { throw EntryDecodingError("invite token", "unknown role") }
        let expires = try r.i64("expiry")
        let secret = try r.fixed(InviteToken.secretLength, "secret")
        let count = Int(try r.u8("address count"))
        guard count <= InviteToken.maxAddresses else { throw EntryDecodingError("invite token", "\(count) addresses, at most \(InviteToken.maxAddresses)") }
        var addresses: [String] = []
        for _ in 0..<count { addresses.append(try r.string("address", max: InviteToken.maxAddressLength)) }
        let signature = try r.fixed(Ed25519.signatureLength, "signature")
        try r.finish()
        self.init(meshID: mesh, inviter: inviter, role: role, expires: expires,
                  secret: secret, addresses: addresses, signature: signature)
    }
}

/// RFC 4648 base64url without padding.
enum Base64URL {
    static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) -> [UInt8]? {
        guard text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x2d || $0 == 0x5f }),
              text.utf8.count % 4 != 1 else { return nil }
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        s += String(repeating: "=", count: (4 - s.utf8.count % 4) % 4)
        return Data(base64Encoded: s).map(Array.init)
    }
}
