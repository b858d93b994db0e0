import Gossip
import Trust

/// Admission on the gossip state machine: the gate checks every entry from elsewhere before it is
/// merged, and is recomputed from the replica whenever an entry of kind member, project or secret
/// changes.
extension MeshState {
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
        entry.kind == .project && entry.key.hasPrefix("rotation/")
    }

    /// Recomputes the gate from the replica and tells the roster observers of a change since the
    /// roster they last heard of. Not since the gate's own last roster: the gate already took in
    /// a removal while merging it (`MeshGate.accept`), so a node that learns of a removal by
    /// gossip would see no change and never act on it.
    func refreshGate() async {
        guard let gate else { return }
        gate.update(from: await snapshots(kinds: MeshGate.trackedKinds))
        let old = reportedRoster, new = gate.roster
        guard old?.members != new?.members || old?.removals.keys.sorted() != new?.removals.keys.sorted() else { return }
        reportedRoster = new
        for observer in rosterObservers { await observer(old, new) }
    }
}
