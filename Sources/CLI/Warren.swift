import ArgumentParser
import Foundation

@main
struct Warren: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warren",
        abstract: "A peer-to-peer mesh that puts applications on the public internet through gateways.",
        discussion: """
            Every machine runs the same agent (`warren node start`); the other commands talk to the \
            node on this machine. Start with the walkthrough in README.md.
            """,
        subcommands: [
            RunCommand.self, PsCommand.self, LogsCommand.self, StopCommand.self,
            SecretsCommand.self, ProjectCommand.self, GatewayCommand.self, PeersCommand.self, LeasesCommand.self,
            NodeCommand.self, ConfigCommand.self, DebugLinkCommand.self,
            MeshCommand.self, InviteCommand.self,
        ]
    )

    /// Exit codes: 0 success, 1 a failure the command reports (invalid file, refused run, …),
    /// 2 a usage error (unknown option, missing argument).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                // Argument parser's usage errors: print its message and the usage line, exit 2.
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}
