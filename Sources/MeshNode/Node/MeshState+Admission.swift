import Gossip
import Trust

/// Admission on the gossip state machine: the gate checks every entry from elsewhere before it is
/// merged, and is recomputed from the replica whenever an entry of kind member, project or secret
/// changes.
extension MeshState {
    /// Raw kinds whose entries make up the roster and the project book.
    static let admissionKinds: Set<UInt8> = [MeshEntryKind.member, .project, .secret].reduce(into: []) { $0.insert(UInt8($1.rawValue)) }

    /// `observer` hears of every change of the roster in force (old, new).
    func observeRoster(_ observer: @escaping @Sendable (_ old: MeshRoster?, _ new: MeshRoster?) async -> Void) {
        rosterObservers.append(observer)
    }

    /// `observer` hears, once per batch of changes and after all of them, that a project key
    /// rotation arrived or was written, or that a member died or left (the member that settles a
    /// contested rotation may have been that one).
    func observeRotations(_ observer: @escaping @Sendable () async -> Void) {
        rotationObservers.append(observer)
    }

    static func isRotation(_ entry: Entry) -> Bool {
        MeshEntryKind(rawValue: Int(entry.kind.rawValue)) == .project && entry.key.hasPrefix("rotation/")
    }

    func refreshGate() async {
        guard let gate else { return }
        let old = gate.update(from: await snapshots(kinds: [.member, .project, .secret]))
        let new = gate.roster
        guard old?.members != new?.members || old?.removals.keys.sorted() != new?.removals.keys.sorted() else { return }
        for observer in rosterObservers { await observer(old, new) }
    }
}
