import ArgumentParser
import Foundation
import MeshNode

/// A project named on the command line must exist: a typo must not quietly make a gateway or a run
/// with nothing behind it. `local`, the project of the walkthrough, exists from the start (its
/// first secret or `project create` gives it members).
enum ProjectCheck {
    static let implicit = "local"

    /// Throws the CLI's error listing the projects there are when `project` is not one of them.
    static func require(_ project: String, client: NodeClient) throws {
        guard project != implicit else { return }
        let projects: [ProjectInfo] = try reportingFailures { try client.get("/v1/projects") }
        guard !projects.contains(where: { $0.name == project }) else { return }
        let names = Set(projects.map(\.name) + [implicit]).sorted()
        throw NodeClient.Failure(description: """
            no project named `\(project)` in this mesh; the projects are: \(names.joined(separator: ", ")).
            Create it with `warren project create \(project)`, or name one of those with --project.
            """).report()
    }

    /// Whether `project` exists yet (for saying that a first secret creates it).
    static func exists(_ project: String, client: NodeClient) -> Bool {
        guard let projects = try? client.get("/v1/projects", as: [ProjectInfo].self) else { return true }
        return projects.contains { $0.name == project }
    }
}
