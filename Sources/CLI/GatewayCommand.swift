import ArgumentParser
import Foundation
import MeshNode
import Provisioning

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Manage gateways: the public machines services are reached through.",
        subcommands: [GatewayCreateCommand.self, List.self, GatewayDeleteCommand.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the mesh's gateways (any project may use any of them).", aliases: ["ls"])
        @OptionGroup var node: NodeOptions

        func run() async throws {
            var gateways: [GatewayInfo] = try reportingFailures { try node.client.get("/v1/gateways") }
            // What this node made: the name, backend and region it chose (a cloud VM's node does
            // not know them), and gateways made but not (or no longer) in the mesh.
            if let records = try? node.client.get("/v1/gateways/provisioned", as: [GatewayRecord].self) {
                gateways = Self.merge(gateways, records)
            }
            if node.json { try Output.json(gateways); return }
            if gateways.isEmpty { Output.line("No gateways yet: create one with `warren gateway create --project P`."); return }
            Output.line(Output.table(["name", "address", "backend", "region", "status", "domains", "bindings"], gateways.map {
                [$0.name, $0.address, $0.backend, $0.region ?? "-", $0.status, $0.domains.isEmpty ? "-" : $0.domains.joined(separator: ","),
                 $0.bindings.isEmpty ? "-" : $0.bindings.joined(separator: ",")]
            }))
        }

        static func merge(_ gateways: [GatewayInfo], _ records: [GatewayRecord]) -> [GatewayInfo] {
            var merged = gateways
            for record in records {
                let made = record.gateway
                let index = merged.firstIndex { g in
                    made.resources["node"].map { g.node == $0 } ?? (made.address != nil && g.address == made.address)
                }
                if let index {
                    merged[index].name = made.name
                    merged[index].backend = made.backend
                    merged[index].region = made.region
                } else {
                    merged.append(GatewayInfo(
                        name: made.name, address: made.address ?? "-", domains: [], node: made.resources["node"] ?? "",
                        backend: made.backend, region: made.region, status: "not in the mesh", bindings: []))
                }
            }
            return merged.sorted { $0.name < $1.name }
        }
    }
}
