import Foundation
import Gossip
import Logging
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
        /// The address each gateway announces, by node: whose leases are whose to write.
        var gateways: [NodeID: String] = [:]
        /// The live entries of kinds member, project, secret and gateway, by kind and key.
        var entries: [String: EntrySnapshot] = [:]
        /// Entries refused, by rule (the `reason` of the refusal counter).
        var refusals: [String: Int] = [:]
        /// (author, rule) pairs already logged: a member repeating a refused write (gossip and
        /// push-pull resend it) is logged once, and counted every time.
        var logged: Set<String> = []
        /// Entries let in since the replica last reported (`update`): a merge of many entries
        /// checks each one against those before it (a project's key after its record).
        var provisional = false
        /// Versions held back and counted (`EntryRefusal.countedWhenHeld`), oldest first: gossip
        /// asks again about a held entry as others arrive, and that is not another refusal.
        var heldCounted: Set<String> = []
        var heldCountedOrder: [String] = []
    }

    /// How many held versions the gate remembers having counted.
    static let heldCountedLimit = 4096

    /// The mesh this node belongs to; nil for the default mesh without admission.
    let meshID: MeshID?
    private let state = NIOLockedValueBox(State())
    private let logger: Logger

    /// The entry kinds the gate keeps to judge others: the roster, the project book, the gateways.
    static let trackedKinds: Set<EntryKind> = [.member, .project, .secret, .gateway]

    /// The kinds whose writer rule `admitsRestored` checks again on a restart (the tracked kinds
    /// are checked by the roster and the book as they are rebuilt).
    static let authoredKinds: Set<EntryKind> = [.gateway, .lease, .domainClaim, .certificateOrder, .certificate, .meshSetting]

    init(meshID: MeshID?, logger: Logger = Logger(label: "warren.gate")) {
        self.meshID = meshID
        self.logger = logger
    }

    /// Entries refused so far, by rule: the refusal counter `warren_entries_refused_total{reason}`.
    var refusals: [String: Int] { state.withLockedValue { $0.refusals } }

    /// The roster in force, or nil when admission is not (yet) in force.
    var roster: MeshRoster? { state.withLockedValue { $0.roster } }

    var book: ProjectBook { state.withLockedValue { $0.book } }

    /// Whether entries were let in since the last `update`.
    var isProvisional: Bool { state.withLockedValue { $0.provisional } }

    /// Recomputes the roster, the book and the gateways from the replica's live entries of the
    /// tracked kinds; returns the roster before the change.
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

    private static func slot(_ kind: EntryKind, _ key: String) -> String { "\(kind.rawValue)/\(key)" }

    private func recompute(_ state: inout State) {
        let snapshots = Array(state.entries.values)
        let roster = meshID.map { MeshRoster(meshID: $0, snapshots: snapshots) }
        state.roster = roster?.founder == nil ? nil : roster
        state.book = ProjectBook(entries: snapshots.filter { $0.kind == .project || $0.kind == .secret }, roster: state.roster)
        var gateways: [NodeID: String] = [:]
        for s in snapshots where s.kind == .gateway {
            if let id = NodeID(s.key), s.author == id, let entry = try? JSONDecoder().decode(GatewayEntry.self, from: Data(s.value)) {
                gateways[id] = entry.address
            }
        }
        state.gateways = gateways
    }

    /// Counts a refusal by rule, and logs it the first time this author breaks this rule.
    private func refused(_ entry: Entry, rule: String?, reason: String, level: Logger.Level = .warning, _ state: inout State) {
        let kindName = entry.kind.name
        let label = rule ?? kindName + "_invalid"
        state.refusals[label, default: 0] += 1
        if state.logged.insert("\(entry.author)|\(label)").inserted {
            logger.log(level: level, "refused an entry", metadata: [
                "peer.id": "\(entry.author.short)", "entry.kind": "\(kindName)",
                "entry.key": "\(entry.key.prefix(120))", "refusal.rule": "\(label)", "refusal.reason": "\(reason)",
            ])
        }
    }

    /// Counts a held entry's refusal once per version (logged at notice: an honest write can race
    /// its author's addition to the project).
    private func refusedWhileHeld(_ entry: Entry, _ error: EntryRefusal, _ state: inout State) {
        let version = "\(entry.kind.rawValue)/\(entry.key)|\(entry.author)|\(entry.timestamp.wallMillis).\(entry.timestamp.logical)"
        guard state.heldCounted.insert(version).inserted else { return }
        state.heldCountedOrder.append(version)
        if state.heldCountedOrder.count > Self.heldCountedLimit {
            state.heldCounted.remove(state.heldCountedOrder.removeFirst())
        }
        refused(entry, rule: error.rule, reason: error.reason + " (held until its addition arrives, if it ever does)", level: .notice, &state)
    }

    /// Gossip kept `entry` out on its own rules (its signature checked): counted and logged as a
    /// refusal like the gate's own. An older version of a key than the one held is counted as
    /// `superseded`, logged at notice only, as most are late copies of honest gossip rather than
    /// replays; an entry of a node not in the gossip group counts only when the roster says it
    /// was removed (`removed_author`), as before admission every node may be new.
    func dropped(_ entry: Entry, _ why: EntryDrop) {
        state.withLockedValue { state in
            switch why {
            case .futureDated:
                refused(entry, rule: "future_dated", reason: "dated further ahead than clocks may drift (it would win every later write)", &state)
            case .superseded:
                refused(entry, rule: "superseded", reason: "older than the version held (a late copy, or a replay)", level: .notice, &state)
            case .unknownAuthor:
                guard state.roster?.isRemoved(entry.author) == true else { return }
                refused(entry, rule: "removed_author", reason: "its author was removed from the mesh", &state)
            case .deletedBefore:
                refused(entry, rule: "replayed_after_delete",
                        reason: "no newer than a delete whose tombstone was collected (a replay, or a copy kept by a node away longer than the grace)",
                        &state)
            }
        }
    }

    /// The writer rule for an entry this node loads from its own database after a restart: those
    /// were let in once, but a rule may have been added since or the file edited, and the restore
    /// path does not go through gossip's checks. False for an entry refused on its own merits
    /// (counted like any refusal); call after `update` with the restored entries of tracked kinds.
    func admitsRestored(_ entry: Entry) -> Bool {
        let kind = entry.kind
        guard Self.authoredKinds.contains(kind) else { return true }
        return state.withLockedValue { state in
            if state.roster?.isRemoved(entry.author) == true {
                refused(entry, rule: "removed_author", reason: "its author was removed from the mesh", &state)
                return false
            }
            do throws(EntryRefusal) {
                try MeshEntryGate.check(kind: kind, key: entry.key, value: entry.value, author: entry.author, roster: state.roster,
                                        book: state.book, gateways: state.gateways)
                return true
            } catch {
                if error.awaitsDependency { return true }
                refused(entry, rule: error.rule, reason: error.reason, &state)
                return false
            }
        }
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
            let kind = entry.kind
            if let roster = state.roster, !roster.isMember(entry.author) {
                if roster.isRemoved(entry.author) {
                    refused(entry, rule: "removed_author", reason: "its author was removed from the mesh", &state)
                    return .refuse
                }
                verdict = .hold
            }
            do throws(EntryRefusal) {
                try MeshEntryGate.check(kind: kind, key: entry.key, value: entry.value, author: entry.author, roster: state.roster,
                                        book: state.book, gateways: state.gateways)
            } catch {
                if error.awaitsDependency {
                    if error.countedWhenHeld { refusedWhileHeld(entry, error, &state) }
                    return .hold
                }
                refused(entry, rule: error.rule, reason: error.reason, &state)
                return .refuse
            }
            guard verdict == .accept else { return verdict }
            if Self.trackedKinds.contains(kind) {
                let slot = Self.slot(kind, entry.key)
                state.entries[slot] = entry.value.map { EntrySnapshot(kind: kind, key: entry.key, value: $0, author: entry.author) }
                state.provisional = true
                recompute(&state)
            }
            return .accept
        }
    }
}
