public import Gossip

/// The projects of the mesh, their members and their secrets, computed from the replicated entries
/// of kinds `project` and `secret`. Answers who may read what, opens values for members, and
/// produces the entries of every change (see `ProjectBook+Changes.swift`).
///
/// Entry keys:
/// ```
///  kind project  project/<P>            ProjectRecord      written by the creator
///  kind project  key/<P>/<gen>/<node>   ProjectMemberKey   generation <gen> of the key, sealed to one member
///                                                         (the first generation, and members added)
///  kind project  rotation/<P>/<gen>/<by> ProjectRotation   a new generation sealed to the members kept
///  kind secret   <P>/<NAME>             SealedSecret       ciphertext under the project key
/// ```
/// Trust: a project record counts only when written by its creator; key entries and rotations
/// only when they chain back to the creator through the generations (see `settle`); a secret only
/// when written by a member. With a roster, authors must have been admitted to the mesh. The members of a
/// project are the holders of a key entry of its newest generation. Key entries are never deleted:
/// they are the history that makes the book a pure function of the set of entries, whatever order
/// they arrived in; `check` (the gate) keeps writes of non-members out of the replica.
public struct ProjectBook: Sendable {
    /// Largest secret value accepted, in bytes.
    public static let maxSecretBytes = 32 * 1024

    /// One project as the entries describe it.
    public struct Project: Sendable, Equatable {
        public var record: ProjectRecord
        /// The newest key generation.
        public var generation: UInt32
        /// Key entries of the newest generation, by member.
        public var memberKeys: [NodeID: ProjectMemberKey]
        /// Secrets by name.
        public var secrets: [String: SealedSecret]
        /// The rotations that made the newest generation (none for the first), by rotator: more
        /// than one when members rotated it at the same moment.
        public var rotations: [ProjectRotation] = []
        /// By generation g (the newest included), the nodes whose rotations of g+1 count: its
        /// members and, when g is contested, every node a rotation of g kept. A rotation of g
        /// that removed such a node may have arrived after the node rotated g+1: the removal
        /// still holds (`unsettledRemovals`), but the generations made since stay.
        public var rotatorsByGeneration: [UInt32: Set<NodeID>] = [:]
        /// Members that a rotation of an older, contested generation removed and that a later
        /// generation kept without adding them back: its rotator did not see that removal (it
        /// arrived late). Until the healer rotates them out (`ProjectBook.rekey`), they hold the
        /// current key, so nothing new is sealed under it. See `ProjectBook.settle`.
        public var unsettledRemovals: Set<NodeID> = []

        /// Whether `node`'s rotation of `generation` counts (a member of the generation before).
        public func mayRotate(_ generation: UInt32, by node: NodeID) -> Bool {
            rotatorsByGeneration[generation &- 1]?.contains(node) == true
        }

        public var name: String { record.name }
        public var members: [NodeID] { memberKeys.keys.sorted() }

        /// Whether two members rotated the newest generation at the same moment: its members may
        /// hold different keys of it, so nothing new is sealed under it until a member rotates
        /// again (`ProjectBook.rekey`, which the node runs on its own; see `settle`).
        public var isContested: Bool { rotations.count > 1 }

        /// Whether the healer must rotate the key again before anything new is sealed under it:
        /// the newest generation is contested, or it kept a member an older rotation removed.
        public var needsRekey: Bool { isContested || !unsettledRemovals.isEmpty }

        /// The member that rotates a contested generation again (`ProjectBook.rekey`): the one
        /// with the smallest node ID among the members (unsettled removals aside) `isAlive` says
        /// are up, so a healer that is down does not leave the project contested until it
        /// returns; the smallest of all when none is known to be up, or liveness is unknown (nil).
        ///
        /// Two members that see liveness differently (one still sees the smallest alive, the
        /// other already sees it dead) may both rotate: that is one more contested generation,
        /// which the same rule settles, with the next rotation.
        public func healer(isAlive: ((NodeID) -> Bool)? = nil) -> NodeID? {
            let candidates = members.filter { !unsettledRemovals.contains($0) }
            if let isAlive, let up = candidates.first(where: isAlive) { return up }
            return candidates.first
        }

        /// Members a rotation of the newest generation left out: added back, they get a new one.
        public var removedAtThisGeneration: Set<NodeID> { Set(rotations.flatMap(\.removed)) }

        /// Every entry of the newest generation's key sealed to `member`: one, or one per
        /// rotation that kept it when the generation is contested.
        public func keyEntries(of member: NodeID) -> [ProjectMemberKey] {
            guard let primary = memberKeys[member] else { return [] }
            return [primary] + rotations.compactMap { $0.memberKey(member) }.filter { $0 != primary }
        }
    }

    /// What `secrets list` shows: never a value.
    public struct SecretListing: Sendable, Equatable {
        public var name: String
        public var version: UInt64
        public var keyGeneration: UInt32
    }

    public private(set) var projects: [String: Project] = [:]
    /// Entries that did not count, and why (for logs).
    public private(set) var rejections: [String] = []

    /// The book from live entries (kinds other than `project` and `secret` are ignored). With a
    /// roster, entries by nodes never admitted to the mesh are refused.
    public init(entries: [EntrySnapshot], roster: MeshRoster? = nil) {
        var keyCandidates: [String: [(entry: ProjectMemberKey, author: NodeID)]] = [:]
        var rotationCandidates: [String: [ProjectRotation]] = [:]
        var secretCandidates: [String: [(secret: SealedSecret, author: NodeID)]] = [:]
        for e in entries where e.kind == .project || e.kind == .secret {
            // A removed member's past writes still count (they were made while it belonged); the
            // gate keeps it from writing more.
            if let roster, !roster.isMember(e.author), !roster.isRemoved(e.author) {
                rejections.append("\(e.kind.name)/\(e.key): its author \(e.author.short)… was never a mesh member")
                continue
            }
            do throws(EntryDecodingError) {
                if e.kind == .secret {
                    let secret = try SealedSecret(decoding: e.value)
                    guard secret.entryKey == e.key else { throw EntryDecodingError("sealed secret", "its project and name differ from its key") }
                    secretCandidates[secret.project, default: []].append((secret, e.author))
                } else if e.key.hasPrefix("project/") {
                    let record = try ProjectRecord(decoding: e.value)
                    guard ProjectRecord.entryKey(record.name) == e.key else { throw EntryDecodingError("project record", "its name differs from its key") }
                    guard record.creator == e.author else { throw EntryDecodingError("project record", "written by \(e.author.short)…, not by its creator") }
                    projects[record.name] = Project(record: record, generation: 0, memberKeys: [:], secrets: [:])
                } else if e.key.hasPrefix("key/") {
                    let key = try ProjectMemberKey(decoding: e.value)
                    guard key.entryKey == e.key else { throw EntryDecodingError("project member key", "its project and member differ from its key") }
                    keyCandidates[key.project, default: []].append((key, e.author))
                } else if e.key.hasPrefix("rotation/") {
                    let rotation = try ProjectRotation(decoding: e.value)
                    guard rotation.entryKey == e.key else { throw EntryDecodingError("project key rotation", "its project, generation and rotator differ from its key") }
                    guard rotation.rotator == e.author else { throw EntryDecodingError("project key rotation", "written by \(e.author.short)…, not by its rotator") }
                    rotationCandidates[rotation.project, default: []].append(rotation)
                } else {
                    throw EntryDecodingError("project entry", "unknown key")
                }
            } catch {
                rejections.append("\(e.kind.name)/\(e.key.prefix(120)): \(error)")
            }
        }
        for name in projects.keys {
            settle(name, keys: keyCandidates[name] ?? [], rotations: rotationCandidates[name] ?? [], secrets: secretCandidates[name] ?? [])
        }
        for name in Set(keyCandidates.keys).union(rotationCandidates.keys).union(secretCandidates.keys) where projects[name] == nil {
            rejections.append("entries of project \(name), whose project record is missing")
        }
    }

    /// Decides which key entries, rotations and secrets of one project count, generation by
    /// generation. Generation 1 is the creator's: its entries count when written by the creator
    /// or by a holder of a counted generation-1 entry. Generation g+1 is made by rotations of
    /// members of generation g (or, for a generation with no rotation entry, by their key entries:
    /// stored meshes hold such generations, and they must keep counting); its
    /// entries then count when written by a holder of it (members added). A gap in the
    /// generations ends the chain.
    ///
    /// Two members rotating generation g at the same moment (a `project remove-member` on each,
    /// or one beside the node's own rotation after a removal from the mesh) each write a rotation
    /// of g+1; neither overwrites the other, as their keys name their rotators. The rule, which
    /// every replica applies alike whatever order the entries came in:
    /// - the members of g+1 are those some rotation kept, less those any rotation removed (a
    ///   removal is never undone by a concurrent rotation);
    /// - each member opens the key of every rotation that kept it, so it reads every secret
    ///   re-sealed by either rotation;
    /// - the generation is contested (`Project.isContested`): nothing new is sealed under it, and
    ///   its healer (`Project.healer`: the member with the smallest node ID among those the node
    ///   sees alive) rotates again (`rekey`) to g+2, sealed to those members and re-sealing every
    ///   secret, so all end on one key that no removed node holds. Members that disagree about
    ///   who is alive may both rotate g+1: g+2 is then contested in turn, and settled alike;
    /// - a removal sticks: a rotation of g that arrives after g was settled (a third member's,
    ///   say, removing X) still removes X from g, and if a later generation kept X without a key
    ///   entry adding it back (`project add-member` writes one), X is an unsettled removal
    ///   (`Project.unsettledRemovals`): the project needs a rekey as if contested, and the
    ///   healer's rotation leaves X out, so X reads nothing written after its removal. For
    ///   this the generations made since stay: who may rotate g+1 after a contested g is every
    ///   node some rotation of g kept (`Project.rotatorsByGeneration`), so a late removal of the
    ///   node that rotated g+1 does not undo g+1 (and the secrets re-sealed under it); that node
    ///   is an unsettled removal in turn.
    private mutating func settle(
        _ name: String, keys: [(entry: ProjectMemberKey, author: NodeID)], rotations: [ProjectRotation],
        secrets: [(secret: SealedSecret, author: NodeID)]
    ) {
        guard var project = projects[name] else { return }
        var contestedRemovals: [(generation: UInt32, removed: Set<NodeID>)] = []
        var additions: [(member: NodeID, by: NodeID, generation: UInt32)] = []
        let keysByGeneration = Dictionary(grouping: keys) { $0.entry.generation }
        let rotationsByGeneration = Dictionary(grouping: rotations) { $0.generation }
        for g in Set(keysByGeneration.keys).union(rotationsByGeneration.keys).sorted() {
            var pending = keysByGeneration[g] ?? []
            let offered = rotationsByGeneration[g] ?? []
            guard g == project.generation &+ 1 else {
                for p in pending { rejections.append("\(p.entry.entryKey): generation \(g) does not follow generation \(project.generation)") }
                for r in offered { rejections.append("\(r.entryKey): generation \(g) does not follow generation \(project.generation)") }
                continue
            }
            // Rotations of generation g by members of g-1 (none for the first generation).
            let counted = g == 1 ? [] : offered.filter { project.mayRotate(g, by: $0.rotator) }.sorted { $0.rotator < $1.rotator }
            for r in offered where !counted.contains(r) { rejections.append("\(r.entryKey): rotated by \(r.rotator.short)…, not a member of project \(name)") }
            let removed = Set(counted.flatMap(\.removed))
            var accepted: [NodeID: ProjectMemberKey] = [:]
            for rotation in counted {
                for member in rotation.kept where !removed.contains(member) && accepted[member] == nil { accepted[member] = rotation.memberKey(member) }
            }
            // Who may write the generation's first key entries: the creator for the first; for a
            // later one with no rotation entry, any member of the one before (a generation made of
            // key entries alone, one per member, as stored meshes hold them, must keep counting).
            let writers: Set<NodeID> = g == 1 ? [project.record.creator] : counted.isEmpty ? Set(project.memberKeys.keys) : []
            var progress = true
            while progress {
                progress = false
                pending.removeAll { candidate in
                    guard writers.contains(candidate.author) || accepted[candidate.author] != nil else { return false }
                    guard !removed.contains(candidate.entry.member) else { return false }
                    if accepted[candidate.entry.member] == nil { accepted[candidate.entry.member] = candidate.entry }
                    if g > 1 { additions.append((candidate.entry.member, candidate.author, g)) }
                    progress = true
                    return true
                }
            }
            for p in pending { rejections.append("\(p.entry.entryKey): written by \(p.author.short)…, not a member of project \(name), or for a member removed at this generation") }
            guard !accepted.isEmpty else { break }
            project.generation = g
            project.memberKeys = accepted
            project.rotations = counted
            project.rotatorsByGeneration[g] = Set(accepted.keys)
            if counted.count > 1 {
                contestedRemovals.append((g, removed))
                project.rotatorsByGeneration[g]!.formUnion(counted.flatMap(\.kept))
            }
        }
        project.unsettledRemovals = Self.unsettledRemovals(contestedRemovals, additions: additions, members: Set(project.memberKeys.keys))
        for s in secrets {
            if project.memberKeys[s.author] != nil {
                project.secrets[s.secret.name] = s.secret
            } else {
                rejections.append("\(s.secret.entryKey): written by \(s.author.short)…, not a member of project \(name)")
            }
        }
        projects[name] = project
    }

    /// Members of the newest generation that a rotation of an older contested generation h
    /// removed, and that no key entry of a generation after h added back. A later generation's
    /// rotator that saw only some rotations of h kept them without knowing (a third rotation of
    /// h arriving after the contest was settled); one that saw a single rotation of h saw the
    /// removal, so keeping the node there is deliberate and contested generations alone count.
    /// Additions count when written by a member for another node, not by one of these nodes.
    private static func unsettledRemovals(
        _ contested: [(generation: UInt32, removed: Set<NodeID>)], additions: [(member: NodeID, by: NodeID, generation: UInt32)], members: Set<NodeID>
    ) -> Set<NodeID> {
        var removedAt: [NodeID: UInt32] = [:]
        for (g, removed) in contested {
            for node in removed where members.contains(node) { removedAt[node] = max(removedAt[node] ?? 0, g) }
        }
        let suspects = Set(removedAt.keys)
        return suspects.filter { node in
            !additions.contains { $0.member == node && $0.by != node && !suspects.contains($0.by) && $0.generation > removedAt[node]! }
        }
    }

    // MARK: Queries

    /// Project names, sorted.
    public var projectNames: [String] { projects.keys.sorted() }

    public func project(_ name: String) throws(ProjectError) -> Project {
        guard ProjectName.isValid(name) else { throw .invalidProjectName(name) }
        guard let project = projects[name] else { throw .noSuchProject(name) }
        return project
    }

    public func members(of project: String) throws(ProjectError) -> [NodeID] {
        try self.project(project).members
    }

    public func isMember(_ node: NodeID, of project: String) -> Bool {
        projects[project]?.memberKeys[node] != nil
    }

    /// Project members that are no longer mesh members (removed from the mesh): each still holds
    /// the current key, so a remaining member rotates it with `removeMember` (the node does this
    /// when the roster drops a node).
    public func staleMembers(roster: MeshRoster) -> [(project: String, member: NodeID)] {
        projectNames.flatMap { name in
            projects[name]!.members.filter { !roster.isMember($0) }.map { (project: name, member: $0) }
        }
    }

    /// The projects `node` belongs to, sorted.
    public func projects(of node: NodeID) -> [String] {
        projects.values.filter { $0.memberKeys[node] != nil }.map(\.name).sorted()
    }

    /// The current project key, opened with this node's X25519 keys; members only. A generation
    /// that needs a rekey (contested, or holding a late removal) has no key to seal under: it
    /// throws until the healer rotates again.
    public func openKey(_ project: String, local: LocalMember) throws(ProjectError) -> ProjectKey {
        let p = try self.project(project)
        guard p.memberKeys[local.nodeID] != nil else { throw .notAMember(local.nodeID, project: project) }
        guard !p.needsRekey else { throw .keyRotationContested(project: project) }
        return try openKeys(project, local: local)[0]
    }

    /// Every key of the newest generation this member holds: one, or one per rotation that kept
    /// it when the generation is contested.
    public func openKeys(_ project: String, local: LocalMember) throws(ProjectError) -> [ProjectKey] {
        let p = try self.project(project)
        let entries = p.keyEntries(of: local.nodeID)
        guard !entries.isEmpty else { throw .notAMember(local.nodeID, project: project) }
        var keys: [ProjectKey] = []
        var failure = ""
        for entry in entries {
            do { keys.append(try entry.open(with: local.keyAgreement)) } catch { failure = "\(error)" }
        }
        guard !keys.isEmpty else { throw .keyUnavailable(project: project, reason: failure) }
        return keys
    }

    /// A secret's value opened with whichever of `keys` sealed it.
    static func open(_ secret: SealedSecret, keys: [ProjectKey]) -> String? {
        for key in keys where key.generation == secret.keyGeneration {
            if let value = try? secret.open(with: key) { return value }
        }
        return nil
    }

    /// Names and versions of the project's secrets; members only (`secrets list --project P`).
    public func secretListing(_ project: String, reader: NodeID) throws(ProjectError) -> [SecretListing] {
        let p = try self.project(project)
        guard p.memberKeys[reader] != nil else { throw .notAMember(reader, project: project) }
        return p.secrets.values.sorted { $0.name < $1.name }
            .map { SecretListing(name: $0.name, version: $0.version, keyGeneration: $0.keyGeneration) }
    }

    /// A secret's value; members only.
    public func readSecret(_ name: String, project: String, local: LocalMember) throws(ProjectError) -> String {
        let p = try self.project(project)
        guard p.memberKeys[local.nodeID] != nil else { throw .notAMember(local.nodeID, project: project) }
        guard let secret = p.secrets[name] else { throw .noSuchSecret(project: project, name: name) }
        let keys = try openKeys(project, local: local)
        guard let value = Self.open(secret, keys: keys) else {
            throw .keyUnavailable(project: project, reason: "secret \(name) (version \(secret.version), key generation \(secret.keyGeneration)) does not open with key generation \(p.generation)")
        }
        return value
    }

    /// Every secret of the project, opened: what `${{ secrets.NAME }}` interpolation reads.
    public func secretValues(_ project: String, local: LocalMember) throws(ProjectError) -> [String: String] {
        let p = try self.project(project)
        var values: [String: String] = [:]
        for name in p.secrets.keys { values[name] = try readSecret(name, project: project, local: local) }
        return values
    }
}
