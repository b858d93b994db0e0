import ArgumentParser
import Foundation
import MeshNode
import Provisioning

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
        let client = node.client
        let gateways: [GatewayInfo] = try reportingFailures { try client.get("/v1/gateways") }
        let records = (try? client.get("/v1/gateways/provisioned", as: [GatewayRecord].self)) ?? []
        let record = records.first { $0.name == name }
        let madeNode = record?.gateway.resources["node"]
        let listed = gateways.first { $0.name == name || (madeNode != nil && $0.node == madeNode) }
        if record == nil, let listed, listed.status != "alive" {
            // Deleted before (or stopped): gossip keeps a member that left for a while.
            Output.error("error: gateway \(name) is not running (gossip lists it as \(listed.status)): it was deleted already, or its node stopped. Nothing to delete here.")
            throw ExitCode(1)
        }
        // Runs bound to it lose their URL: that needs a yes, from --yes or a person at a terminal.
        let address = record?.gateway.address ?? listed?.address
        let bound = address.map { boundRuns(to: $0, client: client) } ?? []
        if !yes, !bound.isEmpty, isatty(STDIN_FILENO) != 1 {
            let runs = "\(bound.count) run\(bound.count == 1 ? "" : "s")"
            Output.error("error: gateway \(name) serves \(runs): \(bound.joined(separator: ", ")).")
            Output.error("Deleting it takes their URLs down. Stop them first (`warren stop RUN` on their node), or pass --yes to delete it anyway.")
            throw ExitCode(1)
        }
        if !yes, isatty(STDIN_FILENO) == 1 {
            if !bound.isEmpty { Output.error("Gateway \(name) serves: \(bound.joined(separator: ", ")); their URLs stop working.") }
            FileHandle.standardError.write(Data("Delete the gateway \(name) and everything made for it? [y/N] ".utf8))
            let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
            guard answer == "y" || answer == "yes" else {
                Output.error("Nothing deleted.")
                throw ExitCode(1)
            }
        }
        let request = GatewayDeleteRequest(environment: GatewayCreateRequest.backendEnvironment(ProcessInfo.processInfo.environment))
        let last = try reportingFailures {
            try client.progress("DELETE", "/v1/gateways/\(name.urlPathEscaped)", request) { event in
                // One line a thing removed: "deleted instance i-0abc", "deleted state directory …".
                if event.step != .failed && event.step != .deleted { Output.error(event.message) }
            }
        }
        guard let last, last.step == .deleted else {
            Output.error("error: \(last?.error ?? "the node ended the deletion without a result")")
            throw ExitCode(1)
        }
        if node.json { try Output.json(["deleted": name]); return }
        Output.line("Gateway \(name) deleted.")
        if !bound.isEmpty {
            Output.line("These runs have no gateway now: \(bound.joined(separator: ", ")); stop them, or run them again with another gateway.")
        }
    }

    /// The runs that lose their URL with the gateway at `address`: every lease it holds in the
    /// mesh, and this node's own active runs published there that have no lease yet (a run just
    /// started with `-d` is still asking for one).
    private func boundRuns(to address: String, client: NodeClient) -> [String] {
        let leases = ((try? client.get("/v1/leases", as: [LeaseInfo].self)) ?? []).filter { $0.gateway == address }
        let runs = ((try? client.get("/v1/runs", as: [RunInfo].self)) ?? []).filter { run in
            run.isActive && (run.gateway == address || run.gateways?.contains { $0.address == address } == true)
        }
        let described = leases.map { "\($0.run) (node \(NodeIDText.short($0.node)), port \($0.port))" }
            + runs.map { "\($0.name) (node \(NodeIDText.short($0.node)), port \($0.externalPort))" }
        return Array(Set(described)).sorted()
    }
}
