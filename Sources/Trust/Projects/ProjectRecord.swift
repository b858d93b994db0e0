public import Foundation
public import Gossip

/// A project, gossiped under `project/<P>` (kind `project`) by its creator.
///
/// ```
///  tag=5 ‖ ver=1 ‖ u16 length ‖ name (≤ 64) ‖ creator (32) ‖ created (i64 ms)
/// ```
public struct ProjectRecord: Sendable, Equatable {
    public let name: String
    public let creator: NodeID
    public let created: Date

    public init(name: String, creator: NodeID, created: Date) {
        self.name = name
        self.creator = creator
        self.created = created.truncatedToEntryPrecision
    }

    public static func entryKey(_ project: String) -> String { "project/\(project)" }

    public var intent: EntryIntent { .put(.project, ProjectRecord.entryKey(name), encoded()) }

    public func encoded() -> [UInt8] {
        var w = EntryWriter(tag: .project)
        w.string(name)
        w.fixed(creator.bytes)
        w.date(created)
        return w.bytes
    }

    public init(decoding raw: [UInt8]) throws(EntryDecodingError) {
        var r = try EntryReader(raw, tag: .project, what: "project record")
        let name = try r.string("name", max: ProjectName.maxLength)
        guard ProjectName.isValid(name) else { throw EntryDecodingError("project record", "invalid project name") }
        let creator = try r.nodeID("creator")
        let created = try r.date("created")
        try r.finish()
        self.init(name: name, creator: creator, created: created)
    }
}
