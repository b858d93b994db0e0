import ArgumentParser
import Foundation
import MeshNode

/// `warren rm`: forget runs that have ended, so `ps -a` shows what still matters.
struct RmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove ended runs from this node's list (`warren ps -a`).",
        discussion: "An active run is refused: stop it first with `warren stop RUN`.")

    @Argument(help: "The runs' names or IDs.") var runs: [String] = []
    @Flag(help: "Remove every run that has ended.") var prune = false
    @OptionGroup var node: NodeOptions

    func validate() throws {
        if runs.isEmpty && !prune { throw ValidationError("name the runs to remove, or pass --prune to remove every ended run") }
    }

    func run() async throws {
        let client = node.client
        var targets = runs
        if prune {
            let all: [RunInfo] = try reportingFailures { try client.get("/v1/runs") }
            targets += all.filter { !$0.isActive && !runs.contains($0.name) && !runs.contains($0.id) }.map(\.name)
        }
        var removed: [RunInfo] = []
        var failed = false
        for target in targets {
            switch Self.remove(target, client: client) {
            case .success(let info): removed.append(info)
            case .failure(let failure):
                Output.error("error: \(failure.description)")
                failed = true
            }
        }
        if node.json {
            try Output.json(removed)
        } else if removed.isEmpty, !failed {
            Output.line("No ended runs to remove.")
        } else {
            for info in removed { Output.line("Removed run \(info.name) (\(info.state.rawValue)).") }
        }
        if failed { throw ExitCode(1) }
    }

    private static func remove(_ target: String, client: NodeClient) -> Result<RunInfo, NodeClient.Failure> {
        Result { () throws(NodeClient.Failure) -> RunInfo in try client.delete("/v1/runs/\(target.urlPathEscaped)", as: RunInfo.self) }
    }
}
