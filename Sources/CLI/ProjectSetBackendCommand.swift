import ArgumentParser
import Foundation
import MeshNode
import Provisioning

extension ProjectCommand {
    /// Stores the backend kind and its credentials as secrets of the project (sealed, readable
    /// by the project's members only), where `gateway create` finds them.
    struct SetBackend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-backend",
            abstract: "Set the backend the project's gateways are made with, and store its credentials.",
            discussion: """
                The credentials are taken from this shell's environment and stored as the project's \
                secrets: aws reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION; \
                azure AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_SUBSCRIPTION_ID, \
                AZURE_LOCATION; gcp GOOGLE_APPLICATION_CREDENTIALS (the key file's content is stored) \
                and GCP_ZONE. Cloud gateways also need WARREN_RELEASE_URL, where they download Warren.
                """)

        @Argument(help: "The project.") var project: String
        @Argument(help: "local, aws, azure or gcp.") var backend: String
        @OptionGroup var node: NodeOptions

        func validate() throws {
            guard GatewayProvisioner.kinds.contains(backend.lowercased()) else {
                throw ValidationError("unknown backend `\(backend)`: use one of \(GatewayProvisioner.kinds.joined(separator: ", "))")
            }
        }

        func run() async throws {
            let kind = backend.lowercased()
            var values = kind == "local" ? [:] : Self.settings(for: kind, in: ProcessInfo.processInfo.environment)
            if kind == "gcp", values["GOOGLE_CREDENTIALS_JSON"] == nil, let path = values.removeValue(forKey: "GOOGLE_APPLICATION_CREDENTIALS") {
                // The key's content, not its path: other members of the project may make gateways too.
                guard let json = try? String(contentsOfFile: path, encoding: .utf8) else {
                    Output.error("error: cannot read the GCP key file \(path) named by GOOGLE_APPLICATION_CREDENTIALS")
                    throw ExitCode(1)
                }
                values["GOOGLE_CREDENTIALS_JSON"] = json
            }
            if kind != "local" {
                do {
                    _ = try GatewayBackends.make(kind: kind, settings: BackendSettings(values, environment: [:]))
                } catch {
                    Output.error("error: \(error)")
                    Output.error("Nothing stored: set the variables in this shell and run `warren project set-backend \(project) \(kind)` again.")
                    throw ExitCode(1)
                }
            }
            values["WARREN_BACKEND"] = kind
            for (name, value) in values.sorted(by: { $0.key < $1.key }) {
                let _: SecretInfo = try reportingFailures {
                    try node.client.post("/v1/projects/\(project.urlPathEscaped)/secrets", SecretAddRequest(name: name, value: value))
                }
            }
            if node.json { try Output.json(["project": project, "backend": kind, "secrets": values.keys.sorted().joined(separator: ",")]); return }
            Output.line("Project \(project) makes its gateways with \(kind) (stored as its secrets: \(values.keys.sorted().joined(separator: ", "))).")
        }

        /// The variables of `environment` that configure `kind` (and the release URL).
        static func settings(for kind: String, in environment: [String: String]) -> [String: String] {
            let prefixes = ["aws": ["AWS_"], "azure": ["AZURE_"], "gcp": ["GOOGLE_", "GCP_"]][kind] ?? []
            return GatewayCreateRequest.backendEnvironment(environment).filter { key, _ in
                key == "WARREN_RELEASE_URL" || key == "WARREN_RELEASE_SHA256" || prefixes.contains { key.hasPrefix($0) }
            }
        }
    }
}
