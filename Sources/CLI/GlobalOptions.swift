import ArgumentParser
import Foundation

/// Options every command that talks to the node takes.
struct NodeOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: ArgumentHelp("The node's state directory (default: $WARREN_HOME, else ~/.warren).", valueName: "DIR"))
    var stateDirectory: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    var resolvedStateDirectory: String { StateDirectory.resolve(stateDirectory) }

    var client: NodeClient { NodeClient(stateDirectory: resolvedStateDirectory) }
}

enum StateDirectory {
    /// `--state-dir`, else `$WARREN_HOME`, else `~/.warren`.
    static func resolve(_ explicit: String?) -> String {
        if let explicit { return absolute(explicit) }
        if let home = ProcessInfo.processInfo.environment["WARREN_HOME"], !home.isEmpty { return absolute(home) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".warren").path
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}

extension NodeClient.Failure {
    /// Prints the failure as the CLI reports every error, and returns the exit code to use.
    func report() -> ExitCode {
        Output.error("error: \(description)")
        for issue in issues { Output.error("  \(issue)") }
        return ExitCode(1)
    }
}

/// Runs `body`, turning a node failure into its message on stderr and exit status 1.
func reportingFailures<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let failure as NodeClient.Failure {
        throw failure.report()
    }
}
