public import Gossip
public import Sodium

/// A project's key of one generation sealed to one member, gossiped under
/// `key/<P>/<generation>/<node ID>` (kind `project`).
///
/// The entries of every generation stay: they are the history that lets any replica check who
/// may write which (see `ProjectBook`). An entry of an old generation opens only a key its member
/// already had; the members of a project are the holders of an entry of its newest generation.
///
/// ```
///  tag=6 ‖ ver=1 ‖ u16 length ‖ project (≤ 64) ‖ member (32) ‖ generation (u32)
///  ‖ added by (32) ‖ u16 length ‖ crypto_box_seal(project key) to the member's X25519 key (≤ 128)
/// ```
public struct ProjectMemberKey: Sendable, Equatable {
    static let maxSealedLength = 128

    public let project: String
    public let member: NodeID
    public let generation: UInt32
    public let addedBy: NodeID
    public let sealedKey: [UInt8]

    public init(project: String, member: NodeID, generation: UInt32, addedBy: NodeID, sealedKey: [UInt8]) {
        self.project = project
        self.member = member
        self.generation = generation
        self.addedBy = addedBy
        self.sealedKey = sealedKey
    }

    /// `key` sealed to `member`'s X25519 key (the Montgomery form of its node ID).
    public static func sealing(_ key: ProjectKey, project: String, to member: NodeID, addedBy: NodeID) throws -> ProjectMemberKey {
        let sealed = try key.sealed(to: Ed25519.x25519PublicKey(from: member.bytes))
        return ProjectMemberKey(project: project, member: member, generation: key.generation, addedBy: addedBy, sealedKey: sealed)
    }

    public static func entryKey(project: String, generation: UInt32, member: NodeID) -> String {
        "key/\(project)/\(generation)/\(member)"
    }

    public var entryKey: String { ProjectMemberKey.entryKey(project: project, generation: generation, member: member) }

    public var intent: EntryIntent { .put(.project, entryKey, encoded()) }

    public func open(with keys: X25519.KeyPair) throws -> ProjectKey {
        try ProjectKey.open(sealedKey, generation: generation, with: keys)
    }

    public func encoded() -> [UInt8] {
        var w = EntryWriter(tag: .projectMemberKey)
        w.string(project)
        w.fixed(member.bytes)
        w.u32(generation)
        w.fixed(addedBy.bytes)
        w.variable(sealedKey)
        return w.bytes
    }

    public init(decoding raw: [UInt8]) throws(EntryDecodingError) {
        let what = "project member key"
        var r = try EntryReader(raw, tag: .projectMemberKey, what: what)
        let project = try r.string("project", max: ProjectName.maxLength)
        guard ProjectName.isValid(project) else { throw EntryDecodingError(what, "invalid project name") }
        let member = try r.nodeID("member")
        let generation = try r.u32("generation")
        let addedBy = try r.nodeID("added by")
        let sealed = try r.variable("sealed key", max: ProjectMemberKey.maxSealedLength)
        try r.finish()
        self.init(project: project, member: member, generation: generation, addedBy: addedBy, sealedKey: sealed)
    }
}
