public import Gossip

/// The projects of the mesh, their members and their secrets, computed from the replicated entries
/// of kinds `project` and `secret`. Answers who may read what, opens values for members, and
/// produces the entries of every change (see `ProjectBook+Changes.swift`).
///
/// Entry keys:
/// ```
///  kind project  project/<P>            ProjectRecord      written by the creator
///  kind project  key/<P>/<gen>/<node>   ProjectMemberKey   generation <gen> of the key, sealed to one member
///  kind secret   <P>/<NAME>             SealedSecret       ciphertext under the project key
/// ```
/// Trust: a project record counts only when written by its creator; a key entry only when it
/// chains back to the creator through the generations (see `settle`); a secret only when written
/// by a member. With a roster, authors must have been admitted to the mesh. The members of a
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

        public var name: String { record.name }
        public var members: [NodeID] { memberKeys.keys.sorted() }
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
        var secretCandidates: [String: [(secret: SealedSecret, author: NodeID)]] = [:]
        for e in entries where e.kind == .project || e.kind == .secret {
            // A removed member's past writes still count (they were made while it belonged); the
            // gate keeps it from writing more.
            if let roster, !roster.isMember(e.author), !roster.isRemoved(e.author) {
                rejections.append("\(e.kind)/\(e.key): its author \(e.author.short)… was never a mesh member")
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
                } else {
                    throw EntryDecodingError("project entry", "unknown key")
                }
            } catch {
                rejections.append("\(e.kind)/\(e.key.prefix(120)): \(error)")
            }
        }
        for name in projects.keys {
            settle(name, keys: keyCandidates[name] ?? [], secrets: secretCandidates[name] ?? [])
        }
        for name in Set(keyCandidates.keys).union(secretCandidates.keys) where projects[name] == nil {
            rejections.append("entries of project \(name), whose project record is missing")
        }
    }

    /// Decides which key entries and secrets of one project count, generation by generation:
    /// an entry of generation 1 counts when written by the creator or by a holder of a counted
    /// generation-1 entry; one of generation g+1 when written by a holder of a counted entry of
    /// generation g (a rotation) or g+1 (an addition). A gap in the generations ends the chain.
    private mutating func settle(_ name: String, keys: [(entry: ProjectMemberKey, author: NodeID)], secrets: [(secret: SealedSecret, author: NodeID)]) {
        guard var project = projects[name] else { return }
        let byGeneration = Dictionary(grouping: keys) { $0.entry.generation }
        var mayWrite: Set<NodeID> = [project.record.creator]
        for g in byGeneration.keys.sorted() {
            var pending = byGeneration[g]!
            guard g == project.generation &+ 1 else {
                for p in pending { rejections.append("\(p.entry.entryKey): generation \(g) does not follow generation \(project.generation)") }
                continue
            }
            var accepted: [NodeID: ProjectMemberKey] = [:]
            var progress = true
            while progress {
                progress = false
                pending.removeAll { candidate in
                    guard mayWrite.contains(candidate.author) || accepted[candidate.author] != nil else { return false }
                    accepted[candidate.entry.member] = candidate.entry
                    progress = true
                    return true
                }
            }
            for p in pending { rejections.append("\(p.entry.entryKey): written by \(p.author.short)…, not a member of project \(name)") }
            guard !accepted.isEmpty else { break }
            project.generation = g
            project.memberKeys = accepted
            mayWrite = Set(accepted.keys)
        }
        for s in secrets {
            if project.memberKeys[s.author] != nil {
                project.secrets[s.secret.name] = s.secret
            } else {
                rejections.append("\(s.secret.entryKey): written by \(s.author.short)…, not a member of project \(name)")
            }
        }
        projects[name] = project
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

    /// The current project key, opened with this node's X25519 keys; members only.
    public func openKey(_ project: String, local: LocalMember) throws(ProjectError) -> ProjectKey {
        let p = try self.project(project)
        guard let entry = p.memberKeys[local.nodeID] else { throw .notAMember(local.nodeID, project: project) }
        do {
            return try entry.open(with: local.keyAgreement)
        } catch {
            throw .keyUnavailable(project: project, reason: "\(error)")
        }
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
        let key = try openKey(project, local: local)
        do {
            return try secret.open(with: key)
        } catch {
            throw .keyUnavailable(project: project, reason: "secret \(name) (version \(secret.version), key generation \(secret.keyGeneration)) does not open with key generation \(key.generation)")
        }
    }

    /// Every secret of the project, opened: what `${{ secrets.NAME }}` interpolation reads.
    public func secretValues(_ project: String, local: LocalMember) throws(ProjectError) -> [String: String] {
        let p = try self.project(project)
        var values: [String: String] = [:]
        for name in p.secrets.keys { values[name] = try readSecret(name, project: project, local: local) }
        return values
    }
}
