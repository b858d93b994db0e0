public import Foundation

/// A mesh's ACME settings for the gateways it makes (`warren gateway create --acme-email
/// --acme-directory`): passed to each new gateway's `node start`, which then terminates TLS for the
/// names it serves, with certificates from that CA.
public struct GatewayACME: Sendable, Codable, Equatable {
    /// Let's Encrypt's production directory, the default CA.
    public static let letsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

    /// The CA's directory URL; nil: Let's Encrypt.
    public var directory: String?
    /// The contact e-mail of the mesh's account at the CA.
    public var email: String?

    /// Checks both values: they end up in a first-boot shell script and a systemd unit line.
    public init(directory: String?, email: String?) throws {
        if let directory {
            guard directory.hasPrefix("https://"), Self.isPlain(directory), URL(string: directory)?.host != nil else {
                throw ProvisioningError.invalidConfiguration(
                    "--acme-directory takes the https:// URL of an ACME directory (Let's Encrypt's is \(Self.letsEncrypt)), got \(directory.debugDescription)")
            }
        }
        if let email {
            let parts = email.split(separator: "@", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), Self.isPlain(email) else {
                throw ProvisioningError.invalidConfiguration(
                    "--acme-email takes an e-mail address such as ops@example.com (the CA's contact for the mesh's certificates), got \(email.debugDescription)")
            }
        }
        self.directory = directory
        self.email = email
    }

    /// The arguments of `warren node start` that turn TLS termination on with these settings.
    public var startArguments: [String] {
        ["--acme-directory", directory ?? Self.letsEncrypt] + (email.map { ["--acme-email", $0] } ?? [])
    }

    /// No character a shell or a systemd unit would interpret, no space, ASCII only.
    private static func isPlain(_ value: String) -> Bool {
        value.unicodeScalars.allSatisfy { $0.isASCII && $0.value > 32 && !"'\"\\`$;%&|<>(){}".unicodeScalars.contains($0) }
    }
}
