public import Foundation
public import Gossip
public import Sodium

/// Who belongs to the mesh, computed from the replicated entries of kind `member`.
///
/// The rule of trust, in full:
/// 1. The **founding record** is the one self-signed admin record whose node ID and salt derive the
///    mesh ID (`MeshID.derive`). Any other self-signed record is refused.
/// 2. An **admission record** counts when its embedded invite token is for this mesh, signed by
///    its inviter, the inviter is an admitted admin, the role matches the token's, the record was
///    made before the token expired, and the record is signed by an admitted member (the one that
///    checked the token). A token admits one node: if two records carry it, the earlier one
///    (by time, then node ID) counts.
/// 3. A **removal** counts when signed by an admin not removed before it; removals apply in time
///    order. A removed node ID never counts as a member again, and records it signed or whose
///    token it issued, dated at or after its removal, stop counting.
///
/// The roster is a pure function of the set of entries, so every replica with the same entries
/// agrees on it, whatever order the entries arrived in.
public struct MeshRoster: Sendable {
    /// An entry that does not count, and why (for logs).
    public struct Rejection: Sendable, Equatable, CustomStringConvertible {
        public var key: String
        public var reason: String
        public var description: String { "\(key): \(reason)" }
    }

    public let meshID: MeshID
    /// The founder, once its record is known.
    public private(set) var founder: NodeID?
    /// Current members (admitted and not removed) and their records.
    public private(set) var records: [NodeID: MembershipRecord] = [:]
    /// Removed node IDs and the removals that count.
    public private(set) var removals: [NodeID: MemberRemoval] = [:]
    /// IDs of tokens that may not be used again: gossiped spent tokens and the tokens of records.
    public private(set) var spentTokenIDs: Set<String> = []
    /// The node each counted record's token admitted, by token ID.
    private var tokenUsers: [String: NodeID] = [:]
    /// Entries that were refused, and why.
    public private(set) var rejections: [Rejection] = []

    /// The roster of `meshID` from the (key, value) pairs of the live entries of kind `member`.
    public init(meshID: MeshID, entries: [(key: String, value: [UInt8])]) {
        self.meshID = meshID
        var candidates: [MembershipRecord] = []
        var removalCandidates: [MemberRemoval] = []
        for (key, value) in entries {
            switch MeshRoster.check(meshID: meshID, key: key, value: value) {
            case .failure(let why): rejections.append(Rejection(key: key, reason: why.description))
            case .success(.member(let record)): candidates.append(record)
            case .success(.removal(let removal)): removalCandidates.append(removal)
            case .success(.spent(let spent)): spentTokenIDs.insert(spent.tokenID)
            }
        }
        admit(candidates)
        applyRemovals(removalCandidates)
    }

    /// The roster from gossip snapshots; entries of other kinds are ignored.
    public init(meshID: MeshID, snapshots: [EntrySnapshot]) {
        self.init(meshID: meshID, entries: snapshots.filter { $0.kind == .member }.map { ($0.key, $0.value) })
    }

    // MARK: Queries

    public func isMember(_ id: NodeID) -> Bool { records[id] != nil }

    /// The member's role; nil for a node that is not a member.
    public func role(of id: NodeID) -> MeshRole? { records[id]?.role }

    public func isAdmin(_ id: NodeID) -> Bool { role(of: id) == .admin }

    public func isRemoved(_ id: NodeID) -> Bool { removals[id] != nil }

    /// Current members, sorted.
    public var members: [NodeID] { records.keys.sorted() }

    /// The addresses members announced, admins first: what an invite token lists.
    public var memberAddresses: [String] {
        let ordered = records.values.sorted { ($0.role.rawValue, $0.member) < ($1.role.rawValue, $1.member) }
        var seen = Set<String>(), out: [String] = []
        for a in ordered.flatMap(\.addresses) where seen.insert(a).inserted { out.append(a) }
        return out
    }

    // MARK: Building

    private mutating func admit(_ candidates: [MembershipRecord]) {
        var pending: [MembershipRecord] = []
        for record in candidates {
            switch record.origin {
            case .founding(let salt):
                if record.signer == record.member, record.role == .admin, meshID.isFounded(by: record.member, salt: salt) {
                    founder = record.member
                    records[record.member] = record
                } else {
                    rejections.append(Rejection(key: record.entryKey, reason: "a self-signed record that the mesh ID does not commit to: only the founder's record is self-signed"))
                }
            case .invited:
                pending.append(record)
            }
        }
        // Records wait until their inviter and voucher are admitted; stop when a pass admits none.
        pending.sort { ($0.admittedAt, $0.member) < ($1.admittedAt, $1.member) }
        var usedTokens: [String: NodeID] = [:]
        var progress = true
        while progress {
            progress = false
            var next: [MembershipRecord] = []
            for record in pending {
                guard case .invited(let token) = record.origin else { continue }
                guard records[token.inviter] != nil, records[record.signer] != nil else { next.append(record); continue }
                progress = true
                if let why = MeshRoster.invalidity(of: record, token: token, in: self) {
                    rejections.append(Rejection(key: record.entryKey, reason: why))
                } else if let earlier = usedTokens[token.id], earlier != record.member {
                    rejections.append(Rejection(key: record.entryKey, reason: "its invite token already admitted node \(earlier.short)…"))
                } else {
                    usedTokens[token.id] = record.member
                    tokenUsers[token.id] = record.member
                    spentTokenIDs.insert(token.id)
                    if records[record.member] == nil { records[record.member] = record }
                }
            }
            pending = next
        }
        for record in pending {
            guard case .invited(let token) = record.origin else { continue }
            let who = records[token.inviter] == nil ? "its inviter \(token.inviter.short)…" : "its signer \(record.signer.short)…"
            rejections.append(Rejection(key: record.entryKey, reason: "\(who) is not a member of this mesh"))
        }
    }

    private static func invalidity(of record: MembershipRecord, token: InviteToken, in roster: MeshRoster) -> String? {
        if token.meshID != roster.meshID { return "its invite token is for mesh \(token.meshID)" }
        if !token.isSignatureValid { return "its invite token's signature does not verify" }
        if roster.role(of: token.inviter) != .admin { return "its inviter \(token.inviter.short)… is not an admin" }
        if token.role != record.role { return "its role \(record.role) differs from the token's \(token.role)" }
        if record.admittedAt > token.expires { return "it was made after its invite token expired" }
        return nil
    }

    private mutating func applyRemovals(_ candidates: [MemberRemoval]) {
        let ordered = candidates.sorted { ($0.at, $0.removedBy, $0.member) < ($1.at, $1.removedBy, $1.member) }
        for removal in ordered {
            guard isAdmin(removal.removedBy) else {
                rejections.append(Rejection(key: removal.entryKey, reason: "signed by \(removal.removedBy.short)…, which is not an admin"))
                continue
            }
            removals[removal.member] = removal
            records[removal.member] = nil
        }
        // A removed node's authority ends at its removal: records it signed, or whose token it
        // issued, dated after that do not count. (One pass: the members such records admitted
        // are dropped, not the ones those members admitted in turn.)
        for (id, record) in records {
            guard case .invited(let token) = record.origin else { continue }
            let lapsed = [token.inviter, record.signer].first { removals[$0].map { $0.at <= record.admittedAt } ?? false }
            if let lapsed {
                records[id] = nil
                rejections.append(Rejection(key: record.entryKey, reason: "made after \(lapsed.short)…, who vouched for it, was removed"))
            }
        }
    }

    // MARK: Checking one entry

    /// A decoded entry of kind `member`.
    public enum MemberEntry: Sendable, Equatable {
        case member(MembershipRecord)
        case removal(MemberRemoval)
        case spent(SpentToken)
    }

    /// Decodes and checks one entry of kind `member` on its own: known key, well-formed value that
    /// matches its key, this mesh, a valid signature. What a gossip replica calls before letting the
    /// entry in; whether its signer is an admin is the roster's business (it may not be known yet).
    /// Deletions of `member` entries are never made by this module: refuse them.
    public static func check(meshID: MeshID, key: String, value: [UInt8]) -> Result<MemberEntry, EntryDecodingError> {
        guard let parsed = MemberEntryKey(key) else { return .failure(EntryDecodingError("member entry key", "unknown key \"\(key.prefix(80))\"")) }
        do throws(EntryDecodingError) {
            switch parsed {
            case .member(let id):
                let record = try MembershipRecord(decoding: value)
                guard record.member == id else { throw EntryDecodingError("membership record", "its member differs from its key") }
                guard record.meshID == meshID else { throw EntryDecodingError("membership record", "it is for mesh \(record.meshID)") }
                guard record.isSignatureValid else { throw EntryDecodingError("membership record", "its signature does not verify") }
                return .success(.member(record))
            case .removed(let id):
                let removal = try MemberRemoval(decoding: value)
                guard removal.member == id else { throw EntryDecodingError("member removal", "its member differs from its key") }
                guard removal.meshID == meshID else { throw EntryDecodingError("member removal", "it is for mesh \(removal.meshID)") }
                guard removal.isSignatureValid else { throw EntryDecodingError("member removal", "its signature does not verify") }
                return .success(.removal(removal))
            case .spent(let tokenID):
                let spent = try SpentToken(decoding: value)
                guard spent.tokenID == tokenID else { throw EntryDecodingError("spent token", "its token ID differs from its key") }
                guard spent.meshID == meshID else { throw EntryDecodingError("spent token", "it is for mesh \(spent.meshID)") }
                return .success(.spent(spent))
            }
        } catch {
            return .failure(error)
        }
    }

    /// What the replicated map asks before merging a write of kind `member` by `author` (a put,
    /// or a delete when `value` is nil).
    ///
    /// A write is let in only if it would count in this roster: otherwise any member could replace
    /// `member/<X>` with a well-formed record that doesn't chain to the founder, and drop X from the
    /// mesh. So a record needs its inviter to be an admin and its signer a member here, a removal
    /// an admin signer, a spent token a member author; member entries are never deleted. A joining
    /// node, whose roster is still empty, takes the founding record first and the others as
    /// anti-entropy sends them again.
    public func checkWrite(key: String, value: [UInt8]?, author: NodeID) throws(EntryRefusal) {
        func refuse(_ why: String) -> EntryRefusal { EntryRefusal(key: key, reason: why) }
        // A node this roster does not know may be admitted by an entry still on its way; a removed
        // one never comes back.
        func unknown(_ node: NodeID, _ role: String) -> EntryRefusal {
            isRemoved(node)
                ? refuse("its \(role) \(node.short)… was removed from this mesh")
                : EntryRefusal(key: key, reason: "its \(role) \(node.short)… is not a member of this mesh (yet)", awaitsDependency: true)
        }
        guard let value else { throw refuse("member entries are never deleted") }
        switch MeshRoster.check(meshID: meshID, key: key, value: value) {
        case .failure(let error):
            throw refuse(error.description)
        case .success(.spent):
            guard isMember(author) else { throw unknown(author, "author") }
        case .success(.removal(let removal)):
            guard isMember(removal.removedBy) else { throw unknown(removal.removedBy, "signer") }
            guard isAdmin(removal.removedBy) else { throw refuse("signed by \(removal.removedBy.short)…, which is not an admin") }
        case .success(.member(let record)):
            guard !isRemoved(record.member) else { throw refuse("node \(record.member.short)… was removed from this mesh") }
            switch record.origin {
            case .founding(let salt):
                guard record.signer == record.member, record.role == .admin, meshID.isFounded(by: record.member, salt: salt) else {
                    throw refuse("a self-signed record that the mesh ID does not commit to")
                }
            case .invited(let token):
                guard isMember(token.inviter) else { throw unknown(token.inviter, "inviter") }
                guard isMember(record.signer) else { throw unknown(record.signer, "signer") }
                if let why = MeshRoster.invalidity(of: record, token: token, in: self) { throw refuse(why) }
                if let user = tokenUsers[token.id], user != record.member {
                    throw refuse("its invite token already admitted node \(user.short)…")
                }
            }
        }
    }

    /// Members that joined and members that left between `old` and this roster: the node closes
    /// the links of the removed, drops their gossip and releases their leases.
    public func changes(since old: MeshRoster) -> (joined: [NodeID], removed: [NodeID]) {
        (members.filter { !old.isMember($0) }, old.members.filter { !isMember($0) })
    }

    // MARK: Changes

    /// Founds a new mesh with this node as its only member, an admin (`warren mesh init`).
    /// Returns the roster and the entry to write.
    public static func found(addresses: [String], at now: Date, keys: Ed25519.KeyPair) throws(AdmissionError) -> (roster: MeshRoster, intents: [EntryIntent]) {
        let record = try MembershipRecord.founding(addresses: addresses, at: now, keys: keys)
        let roster = MeshRoster(meshID: record.meshID, entries: [(record.entryKey, record.encoded())])
        return (roster, [record.intent])
    }

    /// A token for a new member (`warren invite`). Only admins may invite; `addresses` defaults to
    /// the members' announced addresses.
    public func issueInvite(role: MeshRole, ttl: TimeInterval, now: Date, inviterKeys: Ed25519.KeyPair, addresses: [String]? = nil) throws(AdmissionError) -> InviteToken {
        let inviter = NodeID(bytes: inviterKeys.publicKey)!
        guard isAdmin(inviter) else { throw .notAnAdmin(inviter) }
        guard ttl > 0, ttl <= InviteToken.maxTTL else { throw .invalidTTL(ttl) }
        let listed = addresses ?? Array(memberAddresses.prefix(InviteToken.maxAddresses))
        return try InviteToken.issue(meshID: meshID, role: role, expires: now.addingTimeInterval(ttl), addresses: listed, inviterKeys: inviterKeys)
    }

    /// The removal of `member` signed by this admin (`warren mesh remove NODE`).
    public func remove(_ member: NodeID, at now: Date, adminKeys: Ed25519.KeyPair) throws(AdmissionError) -> EntryIntent {
        let admin = NodeID(bytes: adminKeys.publicKey)!
        guard isAdmin(admin) else { throw .notAnAdmin(admin) }
        guard isMember(member) else { throw .notAMember(member) }
        return MemberRemoval.signed(meshID: meshID, member: member, at: now, adminKeys: adminKeys).intent
    }
}
