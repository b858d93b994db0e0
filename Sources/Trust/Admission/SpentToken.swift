public import Foundation
public import Gossip

/// An invite token that has admitted a node, gossiped under `spent/<token ID>` (kind `member`) by
/// the member that accepted it, so every member refuses it afterwards. The token's secret is not
/// in it, only the token's ID (a hash of the secret).
///
/// ```
///  tag=3 ‖ ver=1 ‖ mesh ID (16) ‖ token ID (16) ‖ admitted member (32) ‖ at (i64 ms)
/// ```
/// The gossip entry's own signature authenticates it; it carries no other.
public struct SpentToken: Sendable, Equatable {
    public let meshID: MeshID
    /// 32 hex digits (`InviteToken.id`).
    public let tokenID: String
    public let member: NodeID
    public let at: Date

    /// `token` spent to admit `member`.
    public init(token: InviteToken, member: NodeID, at: Date) {
        self.init(meshID: token.meshID, tokenID: token.id, member: member, at: at)
    }

    init(meshID: MeshID, tokenID: String, member: NodeID, at: Date) {
        self.meshID = meshID
        self.tokenID = tokenID
        self.member = member
        self.at = at.truncatedToEntryPrecision
    }

    public var entryKey: String { MemberEntryKey.spent(tokenID: tokenID).string }

    /// The put that gossips this spent token.
    public var intent: EntryIntent { .put(.member, entryKey, encoded()) }

    public func encoded() -> [UInt8] {
        var w = EntryWriter(tag: .spentToken)
        w.fixed(meshID.bytes)
        // Always 32 hex digits: made from `InviteToken.id` or decoded from 16 bytes.
        w.fixed(Hex.decode(tokenID) ?? [UInt8](repeating: 0, count: 16))
        w.fixed(member.bytes)
        w.date(at)
        return w.bytes
    }

    public init(decoding raw: [UInt8]) throws(EntryDecodingError) {
        var r = try EntryReader(raw, tag: .spentToken, what: "spent token")
        let mesh = MeshID(bytes: try r.fixed(MeshID.byteCount, "mesh ID"))!
        let id = Hex.encode(try r.fixed(16, "token ID"))
        let member = try r.nodeID("member")
        let at = try r.date("time")
        try r.finish()
        self.init(meshID: mesh, tokenID: id, member: member, at: at)
    }
}
