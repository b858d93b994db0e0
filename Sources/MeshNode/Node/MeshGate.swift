import Gossip
import NIOConcurrencyHelpers
import Trust

/// Who may talk to this node, answered synchronously (the link handshake, the datagram sealer and
/// the gossip merge ask from inside their own locks): the roster and project book of the replica,
/// as `MeshState` last computed them.
///
/// Admission is in force once the roster has its founding record: before `warren mesh init` (the
/// default mesh "warren") every node that completes a link handshake is a member, and a joining
/// node takes the member entries its contact sends until the founding record arrives.
final class MeshGate: Sendable {
    private struct State {
        var roster: MeshRoster?
        var book = ProjectBook(entries: [])
        /// The live entries of kinds member, project and secret, by kind and key.
        var entries: [String: EntrySnapshot] = [:]
        /// Entries let in since the replica last reported (`update`): a merge of many entries
        /// checks each one against those before it (a project's key after its record).
        var provisional = false
    }

    /// The mesh this node belongs to; nil for the default mesh without admission.
    let meshID: MeshID?
    private let state = NIOLockedValueBox(State())

    init(meshID: MeshID?) {
        self.meshID = meshID
    }

    /// The roster in force, or nil when admission is not (yet) in force.
    var roster: MeshRoster? { state.withLockedValue { $0.roster } }

    var book: ProjectBook { state.withLockedValue { $0.book } }

    /// Whether entries were let in since the last `update`.
    var isProvisional: Bool { state.withLockedValue { $0.provisional } }

    /// Recomputes the roster and the book from the replica's live entries of kinds member,
    /// project and secret; returns the roster before the change.
    @discardableResult
    func update(from snapshots: [EntrySnapshot]) -> MeshRoster? {
        state.withLockedValue { state in
            let old = state.roster
            state.entries = Dictionary(snapshots.map { (Self.slot($0.kind, $0.key), $0) }, uniquingKeysWith: { $1 })
            state.provisional = false
            recompute(&state)
            return old
        }
    }

    private static func slot(_ kind: MeshEntryKind, _ key: String) -> String { "\(kind.rawValue)/\(key)" }

    private func recompute(_ state: inout State) {
        let snapshots = Array(state.entries.values)
        let roster = meshID.map { MeshRoster(meshID: $0, snapshots: snapshots) }
        state.roster = roster?.founder == nil ? nil : roster
        state.book = ProjectBook(entries: snapshots.filter { $0.kind != .member }, roster: state.roster)
    }

    /// Whether gossip and streams from `node` are let in.
    func isMember(_ node: NodeID) -> Bool {
        guard let roster else { return true }
        return roster.isMember(node)
    }

    /// Whether `node` may keep an inbound link. A node not yet admitted may link, to present its
    /// invite token on `/admission/join` (`StreamRouter` refuses its other streams); a removed
    /// node never again.
    func mayLink(_ node: NodeID) -> Bool {
        !(roster?.isRemoved(node) ?? false)
    }

    /// The gossip merge's check of an entry from elsewhere: its author a member (when admission is
    /// in force), then `MeshEntryGate` for the kinds it knows. An entry that may count once what
    /// it depends on arrives (an author not admitted here yet) is held back, not refused: gossip
    /// asks again as entries arrive, so it is not lost until the next push-pull.
    func accept(_ entry: Entry) -> EntryVerdict {
        state.withLockedValue { state in
            // Whatever the kind, nothing written by a non-member gets in; one not admitted here
            // yet waits, unless its entry is refused on its own merits below.
            var verdict = EntryVerdict.accept
            if let roster = state.roster, !roster.isMember(entry.author) {
                if roster.isRemoved(entry.author) { return .refuse }
                verdict = .hold
            }
            guard let kind = MeshEntryKind(rawValue: Int(entry.kind.rawValue)) else { return verdict }
            do throws(EntryRefusal) {
                try MeshEntryGate.check(kind: kind, key: entry.key, value: entry.value, author: entry.author, roster: state.roster, book: state.book)
            } catch {
                return error.awaitsDependency ? .hold : .refuse
            }
            guard verdict == .accept else { return verdict }
            if kind == .member || kind == .project || kind == .secret {
                let slot = Self.slot(kind, entry.key)
                state.entries[slot] = entry.value.map { EntrySnapshot(kind: kind, key: entry.key, value: $0, author: entry.author) }
                state.provisional = true
                recompute(&state)
            }
            return .accept
        }
    }
}
