public import Foundation
public import Gossip
public import Sodium

/// An admin's signed removal of a member (`warren mesh remove NODE`), gossiped under
/// `removed/<node ID>` (kind `member`).
///
/// It lives under its own key rather than overwriting `member/<node ID>`, so a replayed old
/// admission record can never bring the node back: a removal is final for that node ID (a removed
/// machine rejoins with a new identity and a new token).
///
/// ```
///  tag=2 ‖ ver=1 ‖ mesh ID (16) ‖ member (32) ‖ removed by (32) ‖ at (i64 ms)
///  ‖ Ed25519 signature (64) by "removed by" over "warren removal v1\0" ‖ everything before it
/// ```
public struct MemberRemoval: Sendable, Equatable {
    public let meshID: MeshID
    public let member: NodeID
    public let removedBy: NodeID
    public let at: Date
    public let signature: [UInt8]

    public var entryKey: String { MemberEntryKey.removed(member).string }

    /// The put that gossips this removal.
    public var intent: EntryIntent { .put(.member, entryKey, encoded()) }

    /// A removal of `member` signed by `adminKeys`. `MeshRoster.remove` checks the roles first.
    public static func signed(meshID: MeshID, member: NodeID, at now: Date, adminKeys: Ed25519.KeyPair) -> MemberRemoval {
        let unsigned = MemberRemoval(meshID: meshID, member: member, removedBy: NodeID(bytes: adminKeys.publicKey)!,
                                     at: now.truncatedToEntryPrecision, signature: [])
        return MemberRemoval(meshID: meshID, member: member, removedBy: unsigned.removedBy, at: unsigned.at,
                             signature: adminKeys.sign(signingContext + unsigned.body))
    }

    init(meshID: MeshID, member: NodeID, removedBy: NodeID, at: Date, signature: [UInt8]) {
        self.meshID = meshID
        self.member = member
        self.removedBy = removedBy
        self.at = at
        self.signature = signature
    }

    static let signingContext = Array("warren removal v1".utf8) + [0]

    var body: [UInt8] {
        var w = EntryWriter(tag: .removal)
        w.fixed(meshID.bytes)
        w.fixed(member.bytes)
        w.fixed(removedBy.bytes)
        w.date(at)
        return w.bytes
    }

    public var isSignatureValid: Bool {
        Ed25519.verify(signature: signature, message: MemberRemoval.signingContext + body, publicKey: removedBy.bytes)
    }

    public func encoded() -> [UInt8] { body + signature }

    public init(decoding raw: [UInt8]) throws(EntryDecodingError) {
        var r = try EntryReader(raw, tag: .removal, what: "member removal")
        let mesh = MeshID(bytes: try r.fixed(MeshID.byteCount, "mesh ID"))!
        let member = try r.nodeID("member")
        let by = try r.nodeID("removed by")
        let at = try r.date("time")
        let signature = try r.fixed(Ed25519.signatureLength, "signature")
        try r.finish()
        self.init(meshID: mesh, member: member, removedBy: by, at: at, signature: signature)
    }
}
