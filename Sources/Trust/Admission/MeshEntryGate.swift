public import Gossip

/// The one check the replicated map makes before merging a write, for the kinds this module owns:
/// `member` goes to the roster, `project` and `secret` to the project book; other kinds are
/// someone else's and pass. A refused write never enters the replica.
///
/// Before the node belongs to a mesh (no roster yet) only the entries' own consistency is checked.
public enum MeshEntryGate {
    public static func check(
        kind: MeshEntryKind, key: String, value: [UInt8]?, author: NodeID, roster: MeshRoster?, book: ProjectBook
    ) throws(EntryRefusal) {
        switch kind {
        case .member:
            guard let roster else { return }
            try roster.checkWrite(key: key, value: value, author: author)
        case .project, .secret:
            try book.check(kind: kind, key: key, value: value, author: author, roster: roster)
        case .gateway, .lease, .domainClaim:
            return
        }
    }
}
