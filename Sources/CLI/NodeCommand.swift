import ArgumentParser
import Foundation
import Gossip
import Link
import Logging
import MeshNode
import Metrics
import Prometheus
import ServiceLifecycle
import Trust
import UnixSignals

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run this machine's agent, or show its identity.",
        subcommands: [Start.self, ID.self]
    )

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the agent in the foreground (SIGTERM or Ctrl-C stops it gracefully).",
            discussion: """
                Links (TCP) and gossip (UDP) share the --listen port. A gateway serves services on its \
                --public-address; every node can run services. Several nodes on one machine need one \
                state directory each (--state-dir or WARREN_HOME) and distinct listen addresses, e.g. \
                127.0.0.2:7420 and 127.0.0.3:7420.
                """
        )

        @Option(name: .customLong("state-dir"), help: ArgumentHelp("The state directory (default: $WARREN_HOME, else ~/.warren).", valueName: "DIR"))
        var stateDirectory: String?

        @Option(help: ArgumentHelp("Where links and gossip listen.", valueName: "ADDR:PORT"))
        var listen: String = "0.0.0.0:\(AgentOptions.defaultPort)"

        @Option(help: ArgumentHelp("How other members reach this node, when not the listen address.", valueName: "ADDR:PORT"))
        var advertise: String?

        @Flag(help: "Serve as a gateway: accept public traffic on --public-address for services of the mesh.")
        var gateway = false

        @Option(help: ArgumentHelp("The gateway's public address, which services name in `gateway:`.", valueName: "ADDR"))
        var publicAddress: String?

        @Option(help: ArgumentHelp("The gateway's name in `warren gateway list` (default: warren-gateway-<node>).", valueName: "NAME"))
        var name: String?

        @Option(help: ArgumentHelp("A domain that points at this gateway (repeatable).", valueName: "DOMAIN"))
        var domain: [String] = []

        @Option(help: ArgumentHelp("A member to join through (repeatable), or the invite token of a mesh with admission.", valueName: "ADDR:PORT|TOKEN"))
        var join: [String] = []

        @Option(name: .customLong("join-file"), help: ArgumentHelp(
            "A file holding the invite token, so that it does not show in `ps` (also: $WARREN_JOIN_TOKEN).", valueName: "FILE"))
        var joinFile: String?

        @Option(help: ArgumentHelp("Serve Prometheus metrics at http://ADDR:PORT/metrics (off by default).", valueName: "ADDR:PORT"))
        var metrics: String?

        @Option(name: .customLong("serve-release"), help: ArgumentHelp(
            "Serve the release this node was installed from to new gateways at http://ADDR:PORT/release/SHA256 (a gateway's first boot sets it).",
            valueName: "ADDR:PORT"))
        var serveRelease: String?

        @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error.", valueName: "LEVEL"))
        var logLevel: String = "info"

        @Option(help: ArgumentHelp("A gateway's contact e-mail at its ACME CA; turns on HTTPS for services with a domain. Without --acme-… flags a gateway follows the mesh's setting (`gateway create --acme-…`).", valueName: "EMAIL"))
        var acmeEmail: String?

        @Option(help: ArgumentHelp("The ACME directory (default: Let's Encrypt); turns on HTTPS for services with a domain.", valueName: "URL"))
        var acmeDirectory: String?

        @Option(help: ArgumentHelp("CA certificates (PEM) trusted for the ACME directory instead of the system's.", valueName: "FILE"))
        var acmeCaBundle: String?

        @Option(help: ArgumentHelp("A gateway's HTTP port for names: runs on it without a domain get <run-name>.<first --domain>; ACME checks and redirects come here.", valueName: "PORT"))
        var httpPort: Int = 80

        @Option(help: ArgumentHelp("Where a gateway serves HTTPS for domains.", valueName: "PORT"))
        var httpsPort: Int = 443

        @Option(help: ArgumentHelp(
            "Keep direct links to at most N gateways; reach the others through a member linked to them (one relay hop).", valueName: "N"))
        var maxGatewayLinks: Int?

        func validate() throws {
            guard Self.hostPort(listen) != nil else { throw ValidationError("--listen takes ADDR:PORT, got `\(listen)`") }
            _ = try joinToken()
            if let name, !PlainName.isValid(name) {
                throw ValidationError("--name \(PlainName.describe(name)) is not a plain name: \(PlainName.rule)")
            }
            for j in join where Self.hostPort(j) == nil && !j.hasPrefix(InviteToken.prefix) {
                throw ValidationError("--join takes ADDR:PORT or an invite token (warren1.…), got `\(j)`")
            }
            if let metrics, Self.hostPort(metrics) == nil { throw ValidationError("--metrics takes ADDR:PORT, got `\(metrics)`") }
            if let serveRelease, Self.hostPort(serveRelease) == nil { throw ValidationError("--serve-release takes ADDR:PORT, got `\(serveRelease)`") }
            if gateway && publicAddress == nil { throw ValidationError("--gateway needs --public-address ADDR (what services name in `gateway:`)") }
            if !gateway && (publicAddress != nil || !domain.isEmpty) { throw ValidationError("--public-address and --domain go with --gateway") }
            guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level `\(logLevel)`") }
            if !gateway && (acmeEmail != nil || acmeDirectory != nil) { throw ValidationError("--acme-email and --acme-directory go with --gateway") }
            if acmeCaBundle != nil && acmeEmail == nil && acmeDirectory == nil {
                throw ValidationError("--acme-ca-bundle goes with --acme-directory (a gateway without ACME flags follows the mesh's setting, bundle included)")
            }
            for (flag, port) in [("--http-port", httpPort), ("--https-port", httpsPort)] where !(1...65535).contains(port) {
                throw ValidationError("\(flag) takes a port in 1...65535, got \(port)")
            }
            if let maxGatewayLinks, maxGatewayLinks < 1 {
                throw ValidationError("--max-gateway-links takes 1 or more (a runner needs one link to reach the mesh), got \(maxGatewayLinks)")
            }
            if let acmeDirectory, !acmeDirectory.hasPrefix("https://") {
                throw ValidationError("--acme-directory takes an https:// URL (an ACME directory), got `\(acmeDirectory)`")
            }
        }

        /// The invite token from `--join-file` or `$WARREN_JOIN_TOKEN`, which keep it out of the
        /// process's arguments (anyone on the machine reads those with `ps`).
        func joinToken(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
            if let joinFile {
                guard let data = FileManager.default.contents(atPath: joinFile) else {
                    throw ValidationError("--join-file \(joinFile) can't be read; give a file holding the invite token (warren1.…)")
                }
                let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard token.hasPrefix(InviteToken.prefix) else {
                    throw ValidationError("--join-file \(joinFile) does not hold an invite token (warren1.…); ask an admin for one with `warren invite`")
                }
                return token
            }
            guard let token = environment["WARREN_JOIN_TOKEN"]?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty else { return nil }
            guard token.hasPrefix(InviteToken.prefix) else {
                throw ValidationError("WARREN_JOIN_TOKEN does not hold an invite token (warren1.…); ask an admin for one with `warren invite`")
            }
            return token
        }

        static func hostPort(_ s: String) -> (String, Int)? {
            guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port) else { return nil }
            let host = String(s[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            return host.isEmpty ? nil : (host, port)
        }

        func run() async throws {
            let level = Logger.Level(rawValue: logLevel) ?? .info
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "warren.node")
            let (host, port) = Self.hostPort(listen)!
            var metricsEndpoint: (host: String, port: Int, emit: MetricsServer.Emit)?
            if let metrics, let (mhost, mport) = Self.hostPort(metrics) {
                let registry = PrometheusCollectorRegistry()
                MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
                metricsEndpoint = (mhost, mport, { registry.emitToBuffer() })
            }
            var options = AgentOptions(
                stateDirectory: StateDirectory.resolve(stateDirectory), listenHost: host, listenPort: port, advertise: advertise,
                isGateway: gateway, publicAddress: publicAddress, gatewayName: name, domains: domain,
                join: join + [(try? joinToken()) ?? nil].compactMap { $0 },
                metrics: metricsEndpoint, serveRelease: serveRelease.flatMap { Self.hostPort($0) }.map { (host: $0.0, port: $0.1) })
            options.httpPort = httpPort
            options.httpsPort = httpsPort
            options.maxGatewayLinks = maxGatewayLinks
            if acmeEmail != nil || acmeDirectory != nil {
                options.acme = AcmeSettings(
                    directoryURL: acmeDirectory ?? AcmeSettings.letsEncrypt, email: acmeEmail, caBundlePath: acmeCaBundle,
                    httpPort: httpPort, httpsPort: httpsPort)
            }
            do {
                let agent = try await NodeAgent(options: options, logger: logger)
                // Started in order; SIGTERM / SIGINT stop them in reverse, each after the ones started after it.
                let group = ServiceGroup(configuration: .init(
                    services: agent.services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
                try await group.run()
            } catch {
                Output.error("error: \(error)")
                throw ExitCode(1)
            }
        }
    }

    struct ID: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "id", abstract: "Print this node's ID (made on first use).")
        @Option(name: .customLong("state-dir"), help: ArgumentHelp("The state directory.", valueName: "DIR"))
        var stateDirectory: String?

        @Flag(help: "Print JSON: {\"id\": ID}.")
        var json = false

        func run() async throws {
            let dir = StateDirectory.resolve(stateDirectory)
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                let id = try NodeIdentity.loadOrCreate(directory: dir).id.description
                if json { try Output.json(["id": id]) } else { Output.line(id) }
            } catch {
                Output.error("error: \(error)")
                throw ExitCode(1)
            }
        }
    }
}
