public import Foundation
public import Gossip
public import Sodium

/// A member of the mesh, as gossiped under `member/<node ID>` (kind `member`).
///
/// Either the founding record of the mesh (self-signed by its founder, with the salt that the
/// mesh ID commits to), or an admission: the invite token an admin signed, embedded whole, and the
/// signature of the member that checked it and admitted the node (the "voucher", who is the
/// inviter when the new node dialled the inviter).
///
/// ```
///  tag=1 ‖ ver=1 ‖ mesh ID (16) ‖ member (32) ‖ role (1) ‖ admitted at (i64 ms)
///  ‖ address count (1, ≤ 16) ‖ { u16 length ‖ address (≤ 255) }*
///  ‖ origin (1): 1 founding → salt (16) | 2 invited → u16 length ‖ invite token bytes
///  ‖ signer (32) ‖ Ed25519 signature (64) over "warren member v1\0" ‖ everything before it
/// ```
public struct MembershipRecord: Sendable, Equatable {
    public enum Origin: Sendable, Equatable {
        /// The first member; `salt` with its node ID derives the mesh ID.
        case founding(salt: [UInt8])
        /// Admitted on this token.
        case invited(InviteToken)
    }

    public let meshID: MeshID
    public let member: NodeID
    public let role: MeshRole
    public let addresses: [String]
    public let admittedAt: Date
    public let origin: Origin
    /// The member that signed this record: the founder itself, or the member that admitted the node.
    public let signer: NodeID
    public let signature: [UInt8]

    /// The admin whose authority admitted the member: the token's inviter, or the founder itself.
    public var admittedBy: NodeID {
        switch origin {
        case .founding: return member
        case .invited(let token): return token.inviter
        }
    }

    public var entryKey: String { MemberEntryKey.member(member).string }

    /// The put that gossips this record.
    public var intent: EntryIntent { .put(.member, entryKey, encoded()) }

    /// The founding record of a new mesh, whose ID it returns too (`warren mesh init`).
    public static func founding(addresses: [String], at now: Date, keys: Ed25519.KeyPair) throws(AdmissionError) -> MembershipRecord {
        try checkAddresses(addresses)
        let founder = NodeID(bytes: keys.publicKey)!
        let salt = Sodium.randomBytes(MeshID.saltLength)
        return signed(meshID: .derive(founder: founder, salt: salt), member: founder, role: .admin, addresses: addresses,
                      admittedAt: now, origin: .founding(salt: salt), keys: keys)
    }

    /// The record admitting `member` on `token`, signed by the member that checked the token.
    public static func admitting(
        _ member: NodeID, addresses: [String], token: InviteToken, at now: Date, voucherKeys: Ed25519.KeyPair
    ) throws(AdmissionError) -> MembershipRecord {
        try checkAddresses(addresses)
        return signed(meshID: token.meshID, member: member, role: token.role, addresses: addresses,
                      admittedAt: now, origin: .invited(token), keys: voucherKeys)
    }

    private static func checkAddresses(_ addresses: [String]) throws(AdmissionError) {
        guard addresses.count <= InviteToken.maxAddresses else { throw .invalidAddresses("at most \(InviteToken.maxAddresses) addresses, got \(addresses.count)") }
        if let bad = addresses.first(where: { $0.isEmpty || $0.utf8.count > InviteToken.maxAddressLength }) {
            throw .invalidAddresses("address \"\(bad.prefix(40))\" must be 1 to \(InviteToken.maxAddressLength) bytes")
        }
    }

    private static func signed(meshID: MeshID, member: NodeID, role: MeshRole, addresses: [String], admittedAt: Date, origin: Origin, keys: Ed25519.KeyPair) -> MembershipRecord {
        let signer = NodeID(bytes: keys.publicKey)!
        // The time as encoded (whole milliseconds), so a record equals its decoded form.
        let at = admittedAt.truncatedToEntryPrecision
        let unsigned = MembershipRecord(meshID: meshID, member: member, role: role, addresses: addresses, admittedAt: at,
                                        origin: origin, signer: signer, signature: [])
        return MembershipRecord(meshID: meshID, member: member, role: role, addresses: addresses, admittedAt: at,
                                origin: origin, signer: signer, signature: keys.sign(signingContext + unsigned.body))
    }

    init(meshID: MeshID, member: NodeID, role: MeshRole, addresses: [String], admittedAt: Date, origin: Origin, signer: NodeID, signature: [UInt8]) {
        self.meshID = meshID
        self.member = member
        self.role = role
        self.addresses = addresses
        self.admittedAt = admittedAt
        self.origin = origin
        self.signer = signer
        self.signature = signature
    }

    static let signingContext = Array("warren member v1".utf8) + [0]

    var body: [UInt8] {
        var w = EntryWriter(tag: .membership)
        w.fixed(meshID.bytes)
        w.fixed(member.bytes)
        w.u8(role.rawValue)
        w.date(admittedAt)
        w.u8(UInt8(addresses.count))
        for a in addresses { w.string(a) }
        switch origin {
        case .founding(let salt):
            w.u8(1)
            w.fixed(salt)
        case .invited(let token):
            w.u8(2)
            w.variable(token.bytes)
        }
        w.fixed(signer.bytes)
        return w.bytes
    }

    /// Whether `signer` signed this record.
    public var isSignatureValid: Bool {
        Ed25519.verify(signature: signature, message: MembershipRecord.signingContext + body, publicKey: signer.bytes)
    }

    public func encoded() -> [UInt8] { body + signature }

    public init(decoding raw: [UInt8]) throws(EntryDecodingError) {
        let what = "membership record"
        var r = try EntryReader(raw, tag: .membership, what: what)
        let mesh = MeshID(bytes: try r.fixed(MeshID.byteCount, "mesh ID"))!
        let member = try r.nodeID("member")
        guard let role = MeshRole(rawValue: try r.u8("role")) else { throw EntryDecodingError(what, "unknown role") }
        let at = try r.date("admission time")
        let count = Int(try r.u8("address count"))
        guard count <= InviteToken.maxAddresses else { throw EntryDecodingError(what, "\(count) addresses, at most \(InviteToken.maxAddresses)") }
        var addresses: [String] = []
        for _ in 0..<count { addresses.append(try r.string("address", max: InviteToken.maxAddressLength)) }
        let origin: Origin
        switch try r.u8("origin") {
        case 1: origin = .founding(salt: try r.fixed(MeshID.saltLength, "salt"))
        case 2: origin = .invited(try InviteToken(bytes: try r.variable("invite token", max: InviteToken.maxEncodedLength)))
        case let other: throw EntryDecodingError(what, "unknown origin \(other)")
        }
        let signer = try r.nodeID("signer")
        let signature = try r.fixed(Ed25519.signatureLength, "signature")
        try r.finish()
        self.init(meshID: mesh, member: member, role: role, addresses: addresses, admittedAt: at, origin: origin, signer: signer, signature: signature)
    }
}
