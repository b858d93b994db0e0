import ArgumentParser
import Foundation
import MeshNode

/// `warren project …`: projects, whose members alone can read their secrets.
struct ProjectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project",
        abstract: "Create projects, manage their members (who can read the project's secrets) and their gateway backend.",
        subcommands: [Create.self, List.self, AddMember.self, RemoveMember.self, SetBackend.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a project; this node is its first member.")
        @Argument(help: "The project's name.") var name: String
        @OptionGroup var node: NodeOptions

        func run() async throws {
            let info: ProjectInfo = try reportingFailures { try node.client.post("/v1/projects", ProjectCreateRequest(name: name)) }
            if node.json { try Output.json(info) } else { Output.line("Project \(name) created; this node is its member.") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the mesh's projects and their members.", aliases: ["ls"])
        @OptionGroup var node: NodeOptions

        func run() async throws {
            let projects: [ProjectInfo] = try reportingFailures { try node.client.get("/v1/projects") }
            if node.json { try Output.json(projects); return }
            if projects.isEmpty { Output.line("No projects: create one with `warren project create NAME`."); return }
            Output.line(Output.table(["project", "members", "key", "this node"], projects.map {
                [$0.name, $0.members.map(NodeIDText.short).joined(separator: ","), String($0.generation), $0.isMember ? "member" : "-"]
            }))
        }
    }

    struct AddMember: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-member", abstract: "Let a mesh member read the project's secrets.")
        @Argument(help: "The project.") var project: String
        @Argument(help: "The node ID to add.") var nodeID: String
        @OptionGroup var node: NodeOptions

        func run() async throws {
            let info: ProjectInfo = try reportingFailures {
                try node.client.post("/v1/projects/\(project.urlPathEscaped)/members", ProjectMemberRequest(node: nodeID))
            }
            if node.json { try Output.json(info) } else { Output.line("Node \(nodeID) is now a member of project \(project).") }
        }
    }

    struct RemoveMember: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove-member",
            abstract: "Remove a member: the project key rotates and every secret is sealed again without it.")
        @Argument(help: "The project.") var project: String
        @Argument(help: "The node ID to remove.") var nodeID: String
        @OptionGroup var node: NodeOptions

        func run() async throws {
            try reportingFailures { try node.client.delete("/v1/projects/\(project.urlPathEscaped)/members/\(nodeID.urlPathEscaped)") }
            if node.json { try Output.json(["removed": nodeID]) } else { Output.line("Node \(nodeID) removed from project \(project); its key rotated.") }
        }
    }
}
