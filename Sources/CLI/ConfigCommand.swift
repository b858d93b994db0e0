import ArgumentParser
import Foundation
import MeshNode

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with service configuration files.",
        subcommands: [Check.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a service file and print the service it describes.",
            discussion: """
                Accepts dstack's service format. Exit status: 0 when the file is valid, 1 when it is not \
                (each problem is printed as file:line:column), 2 on a usage error.

                `${{ secrets.NAME }}` takes its value from --secret or --secrets-file, else, with a node \
                running, from the project's secrets (shown as ***; the gateway in full); \
                `${{ env.NAME }}` from this shell's environment.
                """
        )

        @Option(name: [.short, .customLong("file")], help: "The service configuration file.")
        var file: String

        @Option(help: "The project whose secrets `${{ secrets.NAME }}` refers to.")
        var project: String = "local"

        @Option(name: .customLong("secret"), help: ArgumentHelp("A secret value, NAME=VALUE (repeatable).", valueName: "NAME=VALUE"))
        var secrets: [String] = []

        @Option(help: "A file of NAME=VALUE lines to take secret values from.")
        var secretsFile: String?

        @OptionGroup var node: NodeOptions

        func validate() throws {
            for s in secrets where !s.contains("=") {
                throw ValidationError("--secret takes NAME=VALUE, got `\(s)`")
            }
        }

        func run() async throws {
            // With a node running and no values given here, the node resolves the file with the
            // project's secrets, exactly as `run` would.
            if secrets.isEmpty, secretsFile == nil, (try? node.client.get("/v1/node", as: NodeInfo.self)) != nil {
                try ProjectCheck.require(project, client: node.client)
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    Output.error("error: cannot read the configuration file \(file)")
                    throw ExitCode(1)
                }
                let request = ConfigCheckRequest(project: project, configuration: text, configurationPath: file,
                                                 environment: ProcessInfo.processInfo.environment)
                do {
                    try show(try node.client.post("/v1/config/check", request, as: ServiceSummaryInfo.self), secretsFrom: "the node")
                } catch let failure as NodeClient.Failure {
                    guard failure.status == 422 else { throw failure.report() }
                    for issue in failure.issues { Output.error(issue) }
                    Output.error(failure.description)
                    throw ExitCode(1)
                }
                return
            }
            var values: [String: String] = [:]
            if let secretsFile {
                guard let text = try? String(contentsOfFile: secretsFile, encoding: .utf8) else {
                    Output.error("error: cannot read the secrets file \(secretsFile)")
                    throw ExitCode(1)
                }
                for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") && line.contains("=") {
                    let parts = line.split(separator: "=", maxSplits: 1)
                    values[String(parts[0]).trimmingCharacters(in: .whitespaces)] = parts.count > 1 ? String(parts[1]) : ""
                }
            }
            for s in secrets {
                let parts = s.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                values[String(parts[0])] = String(parts[1])
            }
            let parser = ServiceConfigurationParser(secrets: SecretValues(project: project, values: values))
            let service: ServiceConfiguration
            do {
                service = try parser.parse(contentsOf: file)
            } catch {
                for issue in error.issues { Output.error("\(issue.file):\(issue.line):\(issue.column): error: \(issue.message)") }
                let n = error.issues.count
                Output.error("\(file): \(n) problem\(n == 1 ? "" : "s") found")
                if secrets.isEmpty, secretsFile == nil, error.issues.contains(where: { $0.message.contains("unknown secret") }) {
                    Output.error("(no node is running for \(node.resolvedStateDirectory) to resolve the project's secrets: start it, or give values with --secret NAME=VALUE)")
                }
                throw ExitCode(1)
            }
            try show(ServiceSummaryInfo(service), secretsFrom: nil)
        }

        private func show(_ summary: ServiceSummaryInfo, secretsFrom: String?) throws {
            if node.json {
                try Output.json(summary)
            } else {
                Output.line("\(file): a valid service\(secretsFrom.map { " (secrets of project \(project) from \($0), shown as ***)" } ?? "")")
                Output.line(summary.text)
            }
        }
    }
}

/// What `config check` prints: the service, secrets masked but in the gateway.
extension ServiceSummaryInfo {
    var text: String {
        var rows: [[String]] = []
        if let name { rows.append(["name", name]) }
        rows.append(["gateway", gateway])
        rows.append(["port", "\(externalPort) → \(appPort)  (public port → app port)"])
        if let domain { rows.append(["domain", domain]) }
        for (i, c) in setup.enumerated() { rows.append([i == 0 ? "setup" : "", c]) }
        for (i, c) in commands.enumerated() { rows.append([i == 0 ? "commands" : "", c]) }
        for (i, (k, v)) in env.sorted(by: { $0.key < $1.key }).enumerated() { rows.append([i == 0 ? "env" : "", "\(k)=\(v)"]) }
        if !ignoredFields.isEmpty { rows.append(["ignored", ignoredFields.joined(separator: ", ") + "  (dstack fields Warren does not act on)"]) }
        return rows.map { " " + $0[0].padding(toLength: 10, withPad: " ", startingAt: 0) + $0[1] }.joined(separator: "\n")
    }
}
