import Foundation
public import Gossip
public import Trust

/// The replicated entries, as the project logic reads and writes them: the node's gossip replica.
public protocol EntryReplica: Sendable {
    /// The live (not deleted) entries of these kinds.
    func snapshots(kinds: Set<EntryKind>) async -> [EntrySnapshot]
    /// Writes the intents as entries authored and signed by this node, and spreads them.
    func apply(_ intents: [EntryIntent]) async throws
    /// The mesh's roster when admission is in force (nil before any `mesh init`).
    func roster() async -> MeshRoster?
}

/// `warren secrets …` on a node: secrets sealed under their project's key, kept and spread as
/// entries of the replica; their values are opened only here, only for a member.
public struct ProjectSecrets: SecretsService {
    let replica: any EntryReplica
    let local: LocalMember

    public init(replica: any EntryReplica, local: LocalMember) {
        self.replica = replica
        self.local = local
    }

    private func book() async -> ProjectBook {
        ProjectBook(entries: await replica.snapshots(kinds: [.project, .secret]), roster: await replica.roster())
    }

    public func add(project: String, name: String, value: String) async throws -> SecretInfo {
        let book = await book()
        // Until a project is created explicitly, the first secret makes it, with this node as its
        // only member.
        let intents = try book.putSecretCreatingProject(name, value: value, project: project, local: local, now: Date())
        try await replica.apply(intents)
        let listing = try? await self.book().secretListing(project, reader: local.nodeID)
        return SecretInfo(project: project, name: name, version: listing?.first { $0.name == name }?.version ?? 1)
    }

    public func list(project: String) async throws -> [SecretInfo] {
        do {
            return try await book().secretListing(project, reader: local.nodeID).map {
                SecretInfo(project: project, name: $0.name, version: $0.version)
            }
        } catch .noSuchProject {
            return []
        } catch {
            throw error
        }
    }

    public func delete(project: String, name: String) async throws {
        try await replica.apply(try await book().deleteSecret(name, project: project, local: local))
    }

    public func values(project: String) async throws -> SecretValues {
        do {
            return SecretValues(project: project, values: try await book().secretValues(project, local: local))
        } catch .noSuchProject {
            // A project with no secrets yet: interpolation names the missing secret and the project.
            return SecretValues(project: project, values: [:])
        } catch {
            throw error
        }
    }
}
