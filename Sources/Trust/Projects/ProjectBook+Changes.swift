public import Foundation
public import Gossip
internal import Sodium

/// The entries each project and secret command writes. Nothing here changes the book: the node
/// writes the intents to its replica (signing them) and builds a new book from the entries.
extension ProjectBook {
    /// `warren project create P`: the project record and its first key, sealed to the creator.
    public func createProject(_ name: String, local: LocalMember, now: Date) throws(ProjectError) -> [EntryIntent] {
        guard ProjectName.isValid(name) else { throw .invalidProjectName(name) }
        guard projects[name] == nil else { throw .projectExists(name) }
        let record = ProjectRecord(name: name, creator: local.nodeID, created: now)
        let key = ProjectKey.generate(generation: 1)
        return [record.intent, try seal(key, project: name, to: local.nodeID, by: local.nodeID).intent]
    }

    /// Until admission is wired, a project is created on first use with this node as its only
    /// member: the entries to create it, or none when it exists.
    public func ensureProject(_ name: String, local: LocalMember, now: Date) throws(ProjectError) -> [EntryIntent] {
        guard ProjectName.isValid(name) else { throw .invalidProjectName(name) }
        return projects[name] == nil ? try createProject(name, local: local, now: now) : []
    }

    /// `warren project add-member P NODE`: the current key sealed to the new member. With a
    /// roster, the node must be a mesh member. A node removed at the current generation, or any
    /// node while the generation is contested, gets a new generation instead (a rotation that
    /// adds it, and its key entry, which records the addition: see `settle`): a removal is never
    /// undone within its generation.
    public func addMember(_ node: NodeID, to project: String, local: LocalMember, roster: MeshRoster? = nil) throws(ProjectError) -> [EntryIntent] {
        let p = try self.project(project)
        guard p.memberKeys[local.nodeID] != nil else { throw .notAMember(local.nodeID, project: project) }
        guard p.memberKeys[node] == nil else { throw .alreadyAMember(node, project: project) }
        if let roster, !roster.isMember(node) { throw .notAMeshMember(node) }
        if p.needsRekey || p.removedAtThisGeneration.contains(node) {
            return try rotate(p, keeping: p.members + [node], removing: [], adding: node, local: local)
        }
        let key = try openKey(project, local: local)
        return [try seal(key, project: project, to: node, by: local.nodeID).intent]
    }

    /// `warren project remove-member P NODE`: rotates the key. A new generation sealed to every
    /// remaining member and every secret re-encrypted under it (same version): the removed member
    /// is left out of the new generation, so it can read nothing written after. Its entries of
    /// older generations stay as history; they open only keys it already had.
    public func removeMember(_ node: NodeID, from project: String, local: LocalMember) throws(ProjectError) -> [EntryIntent] {
        let p = try self.project(project)
        guard p.memberKeys[local.nodeID] != nil else { throw .notAMember(local.nodeID, project: project) }
        guard p.memberKeys[node] != nil else { throw .notAMember(node, project: project) }
        let remaining = p.members.filter { $0 != node }
        guard !remaining.isEmpty else { throw .lastMember(node, project: project) }
        return try rotate(p, keeping: remaining, removing: [node], local: local)
    }

    /// A new generation for the same members: what settles a contested generation (see `settle`).
    public func rekey(_ project: String, local: LocalMember) throws(ProjectError) -> [EntryIntent] {
        let p = try self.project(project)
        guard p.memberKeys[local.nodeID] != nil else { throw .notAMember(local.nodeID, project: project) }
        return try rotate(p, keeping: p.members, removing: [], local: local)
    }

    /// Projects that need a rekey (`Project.needsRekey`) and that this node rotates again: those
    /// whose healer (`Project.healer`) it is, so the members don't race. `isAlive` is this node's
    /// view of which nodes are up (gossip); this node counts as up.
    public func projectsToRekey(by local: LocalMember, isAlive: ((NodeID) -> Bool)? = nil) -> [String] {
        let alive = isAlive.map { isAlive in { (node: NodeID) in node == local.nodeID || isAlive(node) } }
        return projectNames.filter { name in
            guard let p = projects[name], p.needsRekey else { return false }
            return p.healer(isAlive: alive) == local.nodeID
        }
    }

    /// The rotation to generation g+1 sealed to `members`, and every secret re-sealed under it
    /// (opened with any key of g this node holds). Unsettled removals are left out whatever the
    /// change; a member `adding` also gets a key entry of g+1 (the record of its addition).
    private func rotate(_ p: Project, keeping members: [NodeID], removing removed: [NodeID], adding: NodeID? = nil, local: LocalMember) throws(ProjectError) -> [EntryIntent] {
        let old = try openKeys(p.name, local: local)
        let new = ProjectKey.generate(generation: p.generation &+ 1)
        let kept = members.filter { !p.unsettledRemovals.contains($0) }
        guard !kept.isEmpty else { throw .lastMember(members.first ?? local.nodeID, project: p.name) }
        let rotation: ProjectRotation
        do {
            rotation = try ProjectRotation.sealing(new, project: p.name, to: kept, removed: Array(Set(removed).union(p.unsettledRemovals)), rotator: local.nodeID)
        } catch {
            throw .keyUnavailable(project: p.name, reason: "a member's key has no X25519 form: \(error)")
        }
        var intents = [rotation.intent]
        if let adding { intents.append(try seal(new, project: p.name, to: adding, by: local.nodeID).intent) }
        for secret in p.secrets.values.sorted(by: { $0.name < $1.name }) {
            guard let value = ProjectBook.open(secret, keys: old) else {
                // A secret this member cannot open (sealed under an older generation by a
                // concurrent write) is dropped rather than left readable by the removed node.
                intents.append(.delete(.secret, secret.entryKey))
                continue
            }
            intents.append(try sealSecret(value, project: p.name, name: secret.name, version: secret.version, key: new).intent)
        }
        return intents
    }

    /// `warren secrets add NAME VALUE --project P`: a new secret (version 1), or the next version
    /// of an existing one.
    public func putSecret(_ name: String, value: String, project: String, local: LocalMember) throws(ProjectError) -> [EntryIntent] {
        guard SecretName.isValid(name) else { throw .invalidSecretName(name) }
        guard value.utf8.count <= ProjectBook.maxSecretBytes else { throw .secretTooLarge(name: name, bytes: value.utf8.count) }
        let p = try self.project(project)
        guard p.memberKeys[local.nodeID] != nil else { throw .notAMember(local.nodeID, project: project) }
        let key = try openKey(project, local: local)
        let version = (p.secrets[name]?.version ?? 0) &+ 1
        return [try sealSecret(value, project: project, name: name, version: version, key: key).intent]
    }

    /// `putSecret`, creating the project first (this node its only member) when it doesn't exist:
    /// what `secrets add` does until admission is wired.
    public func putSecretCreatingProject(_ name: String, value: String, project: String, local: LocalMember, now: Date) throws(ProjectError) -> [EntryIntent] {
        let creation = try ensureProject(project, local: local, now: now)
        guard !creation.isEmpty else { return try putSecret(name, value: value, project: project, local: local) }
        let created = ProjectBook(entries: creation.compactMap { intent in
            intent.value.map { EntrySnapshot(kind: intent.kind, key: intent.key, value: $0, author: local.nodeID) }
        })
        return creation + (try created.putSecret(name, value: value, project: project, local: local))
    }

    /// `warren secrets delete NAME --project P`: a tombstone for the secret.
    public func deleteSecret(_ name: String, project: String, local: LocalMember) throws(ProjectError) -> [EntryIntent] {
        guard SecretName.isValid(name) else { throw .invalidSecretName(name) }
        let p = try self.project(project)
        guard p.memberKeys[local.nodeID] != nil else { throw .notAMember(local.nodeID, project: project) }
        guard p.secrets[name] != nil else { throw .noSuchSecret(project: project, name: name) }
        return [.delete(.secret, SealedSecret.entryKey(project: project, name: name))]
    }

    private func seal(_ key: ProjectKey, project: String, to member: NodeID, by author: NodeID) throws(ProjectError) -> ProjectMemberKey {
        do {
            return try ProjectMemberKey.sealing(key, project: project, to: member, addedBy: author)
        } catch {
            throw .keyUnavailable(project: project, reason: "node \(member.short)…'s key has no X25519 form: \(error)")
        }
    }

    private func sealSecret(_ value: String, project: String, name: String, version: UInt64, key: ProjectKey) throws(ProjectError) -> SealedSecret {
        do {
            return try SealedSecret.seal(value, project: project, name: name, version: version, key: key)
        } catch {
            throw .keyUnavailable(project: project, reason: "sealing secret \(name) failed: \(error)")
        }
    }
}
