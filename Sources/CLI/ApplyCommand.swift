import ArgumentParser
import Foundation

/// `warren apply`: dstack's verb for starting a service, here `warren run -d` under that name, so
/// dstack users' muscle memory and scripts work.
struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Start a service and return once its URL is live (the same as `warren run -d`).")

    @Argument(help: "The working directory of the service's commands.") var directory: String = "."
    @Option(name: [.short, .customLong("file")], help: ArgumentHelp(
        "The service configuration file, dstack format (default: .dstack.yml, else service.dstack.yml, in DIR).", valueName: "FILE"))
    var file: String?
    @Option(help: "The project whose secrets the configuration uses.") var project: String
    @OptionGroup var node: NodeOptions

    func run() async throws {
        var arguments = [directory, "--project", project, "--detach"]
        if let file { arguments += ["--file", file] }
        if let dir = node.stateDirectory { arguments += ["--state-dir", dir] }
        if node.json { arguments.append("--json") }
        let run = try RunCommand.parse(arguments)
        try await run.run()
    }
}
