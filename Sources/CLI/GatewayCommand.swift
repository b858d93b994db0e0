import ArgumentParser
import Foundation
import MeshNode

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Manage gateways: the public machines services are reached through.",
        subcommands: [GatewayCreateCommand.self, List.self, GatewayDeleteCommand.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the mesh's gateways (any project may use any of them).")
        @OptionGroup var node: NodeOptions

        func run() async throws {
            let gateways: [GatewayInfo] = try reportingFailures { try node.client.get("/v1/gateways") }
            if node.json { try Output.json(gateways); return }
            if gateways.isEmpty { Output.line("No gateways yet: start one with `warren node start --gateway --public-address ADDR`."); return }
            Output.line(Output.table(["name", "address", "backend", "region", "status", "domains", "bindings"], gateways.map {
                [$0.name, $0.address, $0.backend, $0.region ?? "-", $0.status, $0.domains.isEmpty ? "-" : $0.domains.joined(separator: ","),
                 $0.bindings.isEmpty ? "-" : $0.bindings.joined(separator: ",")]
            }))
        }
    }
}
