public import Curl

/// The cloud backends by name, configured from a project's secrets over the environment.
/// (`local` needs a running node and is made by the node itself.)
public enum GatewayBackends {
    public static let cloudKinds = ["aws", "azure", "gcp"]

    /// The backend `kind` (`aws`, `azure`, `gcp`) configured from `settings`; a clear error names
    /// the missing setting, or the unknown kind.
    public static func make(kind: String, settings: BackendSettings, http: HTTPClient = HTTPClient()) throws -> any GatewayBackend {
        switch kind.lowercased() {
        case "aws": return AWSBackend(configuration: try AWSBackend.Configuration(settings: settings), http: http)
        case "azure": return AzureBackend(configuration: try AzureBackend.Configuration(settings: settings), http: http)
        case "gcp": return GCPBackend(configuration: try GCPBackend.Configuration(settings: settings), http: http)
        default:
            throw ProvisioningError.invalidConfiguration("unknown gateway backend \(kind.debugDescription): use one of local, \(cloudKinds.joined(separator: ", "))")
        }
    }
}
