public import Gossip
public import Sodium

/// One rotation of a project's key: the new generation sealed to every member the rotator kept,
/// and the members it left out. Gossiped under `rotation/<P>/<generation>/<rotator>` (kind
/// `project`) by the rotator, a member of the generation before.
///
/// The key names the rotator, so two members rotating the same generation at the same moment
/// write two entries side by side instead of overwriting each other's per-member entries (which
/// would leave members holding different keys of one generation). `ProjectBook` settles such a
/// contested generation: see `ProjectBook.settle`.
///
/// ```
///  tag=8 ‖ ver=1 ‖ u16 length ‖ project (≤ 64) ‖ generation (u32) ‖ rotator (32)
///  ‖ u32 count ‖ removed node IDs (32 each)
///  ‖ u32 count ‖ (member (32) ‖ u16 length ‖ crypto_box_seal(key) to the member (≤ 128)) each
/// ```
public struct ProjectRotation: Sendable, Equatable {
    /// Most members a rotation seals to, and most it removes (keeps a value under gossip's 64 KiB).
    static let maxMembers = 256

    public let project: String
    public let generation: UInt32
    public let rotator: NodeID
    /// Members of the generation before that the rotation left out.
    public let removed: [NodeID]
    /// The new key sealed to each member kept, by member.
    public let sealedKeys: [NodeID: [UInt8]]

    public init(project: String, generation: UInt32, rotator: NodeID, removed: [NodeID], sealedKeys: [NodeID: [UInt8]]) {
        self.project = project
        self.generation = generation
        self.rotator = rotator
        self.removed = removed.sorted()
        self.sealedKeys = sealedKeys
    }

    /// `key` sealed to each of `members`, each to the X25519 form of its node ID.
    public static func sealing(_ key: ProjectKey, project: String, to members: [NodeID], removed: [NodeID], rotator: NodeID) throws -> ProjectRotation {
        var sealed: [NodeID: [UInt8]] = [:]
        for member in members { sealed[member] = try key.sealed(to: Ed25519.x25519PublicKey(from: member.bytes)) }
        return ProjectRotation(project: project, generation: key.generation, rotator: rotator, removed: removed, sealedKeys: sealed)
    }

    public static func entryKey(project: String, generation: UInt32, rotator: NodeID) -> String {
        "rotation/\(project)/\(generation)/\(rotator)"
    }

    public var entryKey: String { ProjectRotation.entryKey(project: project, generation: generation, rotator: rotator) }

    public var intent: EntryIntent { .put(.project, entryKey, encoded()) }

    /// Members kept, sorted.
    public var kept: [NodeID] { sealedKeys.keys.sorted() }

    /// The key as sealed to `member`, in the shape of its key entry; nil if the rotation left it out.
    public func memberKey(_ member: NodeID) -> ProjectMemberKey? {
        sealedKeys[member].map { ProjectMemberKey(project: project, member: member, generation: generation, addedBy: rotator, sealedKey: $0) }
    }

    public func encoded() -> [UInt8] {
        var w = EntryWriter(tag: .projectRotation)
        w.string(project)
        w.u32(generation)
        w.fixed(rotator.bytes)
        w.u32(UInt32(removed.count))
        for id in removed { w.fixed(id.bytes) }
        w.u32(UInt32(sealedKeys.count))
        for member in kept {
            w.fixed(member.bytes)
            w.variable(sealedKeys[member]!)
        }
        return w.bytes
    }

    public init(decoding raw: [UInt8]) throws(EntryDecodingError) {
        let what = "project key rotation"
        var r = try EntryReader(raw, tag: .projectRotation, what: what)
        let project = try r.string("project", max: ProjectName.maxLength)
        guard ProjectName.isValid(project) else { throw EntryDecodingError(what, "invalid project name") }
        let generation = try r.u32("generation")
        let rotator = try r.nodeID("rotator")
        let removedCount = try r.u32("removed count")
        guard removedCount <= ProjectRotation.maxMembers else { throw EntryDecodingError(what, "\(removedCount) removed members, at most \(ProjectRotation.maxMembers)") }
        var removed: [NodeID] = []
        for _ in 0..<removedCount { removed.append(try r.nodeID("removed member")) }
        let keptCount = try r.u32("member count")
        guard keptCount >= 1, keptCount <= ProjectRotation.maxMembers else { throw EntryDecodingError(what, "\(keptCount) members, 1 to \(ProjectRotation.maxMembers) expected") }
        var sealed: [NodeID: [UInt8]] = [:]
        for _ in 0..<keptCount {
            let member = try r.nodeID("member")
            guard sealed[member] == nil else { throw EntryDecodingError(what, "member \(member.short)… listed twice") }
            sealed[member] = try r.variable("sealed key", max: ProjectMemberKey.maxSealedLength)
        }
        try r.finish()
        guard Set(removed).count == removed.count, Set(removed).isDisjoint(with: sealed.keys) else {
            throw EntryDecodingError(what, "a member is both kept and removed, or removed twice")
        }
        self.init(project: project, generation: generation, rotator: rotator, removed: removed, sealedKeys: sealed)
    }
}
