import ArgumentParser
import Foundation
import MeshNode
import Trust

struct SecretsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secrets",
        abstract: "Manage a project's secrets (sealed; readable only by the project's members).",
        subcommands: [Add.self, List.self, Delete.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add or replace a secret.",
            discussion: "Configurations use it as ${{ secrets.NAME }}. The value is sealed with the project key before it leaves this process's node.")

        @Argument(help: "The secret's name, e.g. GATEWAY_IP.") var name: String
        @Argument(help: "The value.") var value: String
        @Option(help: "The project the secret belongs to.") var project: String
        @OptionGroup var node: NodeOptions

        func validate() throws {
            guard SecretName.isValid(name) else {
                throw ValidationError("`\(name)` is not a valid secret name: use letters, digits and _, not starting with a digit")
            }
        }

        func run() async throws {
            let isNew = !ProjectCheck.exists(project, client: node.client)
            let info: SecretInfo = try reportingFailures {
                try node.client.post("/v1/projects/\(project.urlPathEscaped)/secrets", SecretAddRequest(name: name, value: value))
            }
            if node.json { try Output.json(info); return }
            Output.line("Secret \(name) saved in project \(project) (version \(info.version)).")
            if isNew { Output.line("Project \(project) did not exist: it was created, with this node as its only member.") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a project's secrets: names only, never values.", aliases: ["ls"])
        @Option(help: "The project.") var project: String
        @OptionGroup var node: NodeOptions

        func run() async throws {
            try ProjectCheck.require(project, client: node.client)
            let secrets: [SecretInfo] = try reportingFailures { try node.client.get("/v1/projects/\(project.urlPathEscaped)/secrets") }
            if node.json { try Output.json(secrets); return }
            if secrets.isEmpty { Output.line("Project \(project) has no secrets."); return }
            Output.line(Output.table(["name", "version"], secrets.map { [$0.name, String($0.version)] }))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a secret.", aliases: ["rm"])
        @Argument(help: "The secret's name.") var name: String
        @Option(help: "The project.") var project: String
        @OptionGroup var node: NodeOptions

        func run() async throws {
            try ProjectCheck.require(project, client: node.client)
            try reportingFailures { try node.client.delete("/v1/projects/\(project.urlPathEscaped)/secrets/\(name.urlPathEscaped)") }
            if node.json { try Output.json(["deleted": name]) } else { Output.line("Secret \(name) deleted from project \(project).") }
        }
    }
}

extension String {
    var urlPathEscaped: String {
        addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(.init(charactersIn: "/"))) ?? self
    }
}
