public import Gossip

/// What the replicated map asks before merging a write of kind `project` or `secret` (a put, or a
/// delete when `value` is nil): the book alone ignores entries that don't count, but a write that
/// is let in replaces the entry under its key, so a non-member's write must never get that far.
///
/// A write refused only because what it depends on has not arrived yet (a key entry before its
/// project record or its author's key, a secret before its project or its author's key) is
/// refused as `awaitsDependency`: the replica holds it back and asks again as entries arrive.
extension ProjectBook {
    public func check(kind: EntryKind, key: String, value: [UInt8]?, author: NodeID, roster: MeshRoster? = nil) throws(EntryRefusal) {
        func refuse(_ why: String) -> EntryRefusal { EntryRefusal(key: key, reason: why) }
        func notYet(_ why: String) -> EntryRefusal { EntryRefusal(key: key, reason: why, awaitsDependency: true) }
        // A mesh member outside a project writing in it: held, as its addition may be on its way,
        // but counted, as it far more often is not.
        func notMember(_ project: Project) -> EntryRefusal {
            EntryRefusal(key: key, reason: "written by \(author.short)…, not a member of project \(project.name)", awaitsDependency: true,
                         rule: "not_project_member", countedWhenHeld: true)
        }
        if let roster, !roster.isMember(author) {
            throw roster.isRemoved(author) ? refuse("its author \(author.short)… was removed from this mesh") : notYet("its author \(author.short)… is not a mesh member (yet)")
        }
        switch kind {
        case .project where key.hasPrefix("project/"):
            guard let value else { throw refuse("projects are not deleted") }
            let record: ProjectRecord
            do { record = try ProjectRecord(decoding: value) } catch { throw refuse(error.description) }
            guard ProjectRecord.entryKey(record.name) == key else { throw refuse("its name differs from its key") }
            guard record.creator == author else { throw refuse("written by \(author.short)…, not by its creator") }
            if let existing = projects[record.name], existing.record.creator != record.creator {
                throw refuse("project \(record.name) already exists, created by \(existing.record.creator.short)…")
            }
        case .project where key.hasPrefix("key/"):
            guard let value else { throw refuse("key entries are kept as history; remove a member to rotate the key") }
            let entry: ProjectMemberKey
            do { entry = try ProjectMemberKey(decoding: value) } catch { throw refuse(error.description) }
            guard entry.entryKey == key else { throw refuse("its project, generation and member differ from its key") }
            guard let project = projects[entry.project] else { throw notYet("no such project (yet)") }
            let isMember = project.memberKeys[author] != nil
            // Only the creator (generation 1) and a rotating member seal the key to themselves:
            // a mesh member outside the project doing so is refused, not held for later.
            if entry.member == author, !isMember, !(entry.generation == 1 && author == project.record.creator) {
                throw EntryRefusal(key: key, reason: "written by \(author.short)…, not a member of project \(project.name), sealing its key to itself",
                                   rule: "key_not_project_member")
            }
            switch entry.generation {
            case project.generation where project.generation > 0:
                // The creator seals generation 1 to itself and to members it adds; those entries
                // may arrive in any order (as `settle` counts them).
                guard isMember || (entry.generation == 1 && author == project.record.creator) else { throw notMember(project) }
                guard !project.removedAtThisGeneration.contains(entry.member) else {
                    throw refuse("node \(entry.member.short)… was removed at generation \(entry.generation); adding it back rotates the key")
                }
            case project.generation &+ 1 where project.generation == 0:
                guard author == project.record.creator else { throw notYet("written by \(author.short)…, not a member of project \(project.name) (yet)") }
            case project.generation &+ 1:
                // A later generation is made by a rotation not seen here yet. Written by a node
                // outside the project, it is held as a secret of a non-member is: its addition may
                // be on its way, but far more often it is a member writing where it may not.
                guard isMember else { throw notMember(project) }
                throw notYet("key generation \(entry.generation) of project \(project.name) has no rotation here (yet)")
            case let g where g > project.generation &+ 1:
                throw notYet("key generation \(g) does not follow the project's \(project.generation) (yet)")
            default:
                throw refuse("key generation \(entry.generation) does not follow the project's \(project.generation)")
            }
        case .project where key.hasPrefix("rotation/"):
            guard let value else { throw refuse("rotations are kept as history") }
            let rotation: ProjectRotation
            do { rotation = try ProjectRotation(decoding: value) } catch { throw refuse(error.description) }
            guard rotation.entryKey == key else { throw refuse("its project, generation and rotator differ from its key") }
            guard rotation.rotator == author else { throw refuse("written by \(author.short)…, not by its rotator") }
            guard let project = projects[rotation.project] else { throw notYet("no such project (yet)") }
            switch rotation.generation {
            case project.generation &+ 1 where project.generation > 0:
                guard project.mayRotate(rotation.generation, by: author) else { throw notMember(project) }
            case let g where g > 1 && g <= project.generation:
                // A rotation beside one already here: members rotated at the same moment. Of an
                // older generation, it arrived after a later one was made; its removals still
                // hold (see `ProjectBook.settle`), so it is let in, but only from a member still
                // in the project: a member removed since can't write a rotation back in time.
                guard project.mayRotate(g, by: author) else {
                    throw refuse("rotated by \(author.short)…, not a member of project \(project.name) at generation \(g &- 1)")
                }
                guard g == project.generation || project.memberKeys[author] != nil else {
                    throw refuse("rotates key generation \(g), older than the project's \(project.generation), and \(author.short)… is no longer a member")
                }
            case let g where g > project.generation &+ 1:
                throw notYet("key generation \(g) does not follow the project's \(project.generation) (yet)")
            default:
                throw refuse("key generation \(rotation.generation) does not follow the project's \(project.generation)")
            }
        case .secret:
            guard let slash = key.firstIndex(of: "/"), let project = projects[String(key[..<slash])] else { throw notYet("no such project (yet)") }
            guard project.memberKeys[author] != nil else { throw notMember(project) }
            guard let value else { return }
            let secret: SealedSecret
            do { secret = try SealedSecret(decoding: value) } catch { throw refuse(error.description) }
            guard secret.entryKey == key else { throw refuse("its project and name differ from its key") }
            // Sealed under an older key, a removed member could read it: never let it in.
            guard secret.keyGeneration >= project.generation else {
                throw refuse("sealed under key generation \(secret.keyGeneration), older than the project's \(project.generation)")
            }
            if let current = project.secrets[secret.name], (secret.version, secret.keyGeneration) < (current.version, current.keyGeneration) {
                throw refuse("version \(secret.version) is older than the current \(current.version)")
            }
        default:
            throw refuse("not an entry of projects or secrets")
        }
    }
}
