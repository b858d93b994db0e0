import ArgumentParser
import Foundation
import Logging
import MeshNode
import Trust

/// `warren mesh …`: found a mesh, list its members, remove one.
struct MeshCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh",
        abstract: "Found a mesh with admission, list its members, remove a member.",
        subcommands: [Init.self, Members.self, Remove.self]
    )

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make this node the first member (an admin) of a new mesh.",
            discussion: """
                Runs on the state directory of a node that is not running; start the node afterwards. \
                From then on the node admits only nodes that present an invite token (`warren invite`).
                """)

        @Option(name: .customLong("state-dir"), help: ArgumentHelp("The node's state directory (default: $WARREN_HOME, else ~/.warren).", valueName: "DIR"))
        var stateDirectory: String?

        @Option(help: ArgumentHelp("How members reach this node (repeatable); invite tokens list it.", valueName: "ADDR:PORT"))
        var advertise: [String] = []

        @Flag(help: "Print JSON: {\"meshID\": ID}.")
        var json = false

        func validate() throws {
            for a in advertise where NodeCommand.Start.hostPort(a) == nil { throw ValidationError("--advertise takes ADDR:PORT, got `\(a)`") }
        }

        func run() async throws {
            let dir = StateDirectory.resolve(stateDirectory)
            if (try? NodeClient(stateDirectory: dir).get("/v1/node", as: NodeInfo.self)) != nil {
                Output.error("error: the node of \(dir) is running; stop it, run `warren mesh init`, then start it again")
                throw ExitCode(1)
            }
            do {
                let id = try await MeshSetup.initialize(stateDirectory: dir, addresses: advertise, logger: Logger(label: "warren.mesh"))
                if json { try Output.json(["meshID": "\(id)"]); return }
                Output.line("Founded mesh \(id); this node is its first admin. Start it, then invite nodes with `warren invite`.")
            } catch {
                Output.error("error: \(error)")
                throw ExitCode(1)
            }
        }
    }

    struct Members: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the mesh's admitted members and their roles.")
        @OptionGroup var node: NodeOptions

        func run() async throws {
            let info: MeshInfo = try reportingFailures { try node.client.get("/v1/mesh") }
            if node.json { try Output.json(info); return }
            guard let meshID = info.meshID else { Output.line("This node's mesh has no admission (no `warren mesh init`)."); return }
            Output.line("Mesh \(meshID)")
            Output.line(Output.table(["node", "role", "addresses"], info.members.map { [$0.id, $0.role, $0.addresses.joined(separator: ",")] }))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a member: every node closes its links and drops its gossip; its projects' keys rotate.")
        @Argument(help: "The node ID to remove.") var nodeID: String
        @OptionGroup var node: NodeOptions

        func run() async throws {
            let info: MeshInfo = try reportingFailures { try node.client.post("/v1/mesh/remove", MemberRemoveRequest(node: nodeID)) }
            if node.json { try Output.json(info) } else { Output.line("Node \(nodeID) removed from mesh \(info.meshID ?? "-").") }
        }
    }
}

/// `warren invite`: a single-use token for a new member.
struct InviteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invite",
        abstract: "Print a single-use invite token (admins only).",
        discussion: "The new node starts with `warren node start --join TOKEN`.")

    @Option(help: "The new member's role: admin, gateway or runner.") var role: String = "runner"
    @Option(help: ArgumentHelp("How long the token is valid, e.g. 30m, 1h, 2d.", valueName: "DURATION")) var ttl: String = "1h"
    @OptionGroup var node: NodeOptions

    func validate() throws {
        guard ["admin", "gateway", "runner"].contains(role) else { throw ValidationError("--role takes admin, gateway or runner, got `\(role)`") }
        guard let seconds = Self.seconds(ttl) else { throw ValidationError("--ttl takes a duration like 30s, 15m, 1h or 2d, got `\(ttl)`") }
        guard seconds <= InviteToken.maxTTL else {
            throw ValidationError("--ttl \(ttl) is longer than 7 days: an unused token admits whoever holds it; use at most 7d, and a new token later")
        }
    }

    static func seconds(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        guard let unit = text.last.flatMap({ units[$0] }), let n = Double(text.dropLast()), n > 0, n.isFinite else { return nil }
        return n * unit
    }

    func run() async throws {
        let info: InviteInfo = try reportingFailures {
            try node.client.post("/v1/invites", InviteRequest(role: role, ttlSeconds: Self.seconds(ttl) ?? 3600))
        }
        if node.json { try Output.json(info) } else { Output.line(info.token) }
    }
}
