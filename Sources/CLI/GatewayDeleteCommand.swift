import ArgumentParser
import Foundation
import MeshNode

/// `warren gateway delete NAME`: the node that made the gateway has its backend remove the VM and
/// everything made for it (a local gateway: its process and state).
struct GatewayDeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete a gateway this node created, and everything made for it.",
        aliases: ["rm"])

    @Argument(help: "The gateway's name, as `warren gateway list` shows it.") var name: String
    @Flag(name: [.short, .customLong("yes")], help: "Do not ask for confirmation.") var yes = false
    @OptionGroup var node: NodeOptions

    func run() async throws {
        if !yes, isatty(STDIN_FILENO) == 1 {
            FileHandle.standardError.write(Data("Delete the gateway \(name) and everything made for it? [y/N] ".utf8))
            let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
            guard answer == "y" || answer == "yes" else {
                Output.error("Nothing deleted.")
                throw ExitCode(1)
            }
        }
        let request = GatewayDeleteRequest(environment: GatewayCreateRequest.backendEnvironment(ProcessInfo.processInfo.environment))
        let last = try reportingFailures {
            try node.client.progress("DELETE", "/v1/gateways/\(name.urlPathEscaped)", request) { event in
                // One line a thing removed: "deleted instance i-0abc", "deleted state directory …".
                if event.step != .failed && event.step != .deleted { Output.error(event.message) }
            }
        }
        guard let last, last.step == .deleted else {
            Output.error("error: \(last?.error ?? "the node ended the deletion without a result")")
            throw ExitCode(1)
        }
        if node.json { try Output.json(["deleted": name]) } else { Output.line("Gateway \(name) deleted.") }
    }
}
