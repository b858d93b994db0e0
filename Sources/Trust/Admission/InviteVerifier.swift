public import Foundation
public import Gossip
public import Sodium

/// What the contacted member runs when a node presents an invite token
/// (`warren node start --join TOKEN`), after the link's handshake proved the joining node's ID.
///
/// Checks, in this order, each refusal its own case: a token is present, well-formed, for this
/// mesh, signed by its inviter, the inviter is an admin, not expired (by the injected `now`), and
/// not spent. Accepting a token spends it here at once, and `admit` returns the entries that
/// spend it mesh-wide and record the new member.
public struct InviteVerifier: Sendable {
    public private(set) var roster: MeshRoster
    /// Tokens already used: the roster's, plus the ones this verifier accepted.
    public private(set) var spent: Set<String>

    public init(roster: MeshRoster) {
        self.roster = roster
        self.spent = roster.spentTokenIDs
    }

    /// The token, if every check passes; does not spend it.
    public func verify(_ text: String?, now: Date) throws(AdmissionRefusal) -> InviteToken {
        guard let text, !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw .noToken }
        let token = try InviteToken(encoded: text)
        guard token.meshID == roster.meshID else { throw .otherMesh(token: token.meshID, local: roster.meshID) }
        guard token.isSignatureValid else { throw .forged(inviter: token.inviter) }
        guard roster.isAdmin(token.inviter) else { throw .notAnAdmin(inviter: token.inviter, role: roster.role(of: token.inviter)) }
        guard now < token.expires else { throw .expired(at: token.expires) }
        guard !spent.contains(token.id) else { throw .reused(tokenID: token.id) }
        return token
    }

    /// Verifies the token, spends it, and returns the new member's record with the entries to
    /// gossip: the spent token and the membership record (signed by `voucherKeys`, this member).
    public mutating func admit(
        _ text: String?, joining node: NodeID, addresses: [String], now: Date, voucherKeys: Ed25519.KeyPair
    ) throws(AdmissionRefusal) -> (record: MembershipRecord, intents: [EntryIntent]) {
        let token = try verify(text, now: now)
        guard !roster.isRemoved(node) else { throw .removedNode(node) }
        // The joining node's announced addresses are its own business: keep the ones that fit.
        let announced = addresses.filter { !$0.isEmpty && $0.utf8.count <= InviteToken.maxAddressLength }.prefix(InviteToken.maxAddresses)
        let record: MembershipRecord
        do throws(AdmissionError) {
            record = try MembershipRecord.admitting(node, addresses: Array(announced), token: token, at: now, voucherKeys: voucherKeys)
        } catch {
            throw .malformed(error.description)  // not reached: the addresses were filtered above
        }
        spent.insert(token.id)
        let spentEntry = SpentToken(token: token, member: node, at: now)
        return (record, [spentEntry.intent, record.intent])
    }
}
