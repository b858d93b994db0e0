public import Foundation

/// A mesh's ACME settings as `warren gateway create --acme-email --acme-directory --acme-ca-bundle`
/// gives them, checked: the node writes them as the mesh's setting, which every gateway without
/// ACME flags of its own follows (it terminates TLS for its names with certificates from that CA).
public struct GatewayACME: Sendable, Codable, Equatable {
    /// Let's Encrypt's production directory, the default CA.
    public static let letsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

    /// The CA's directory URL; nil: Let's Encrypt.
    public var directory: String?
    /// The contact e-mail of the mesh's account at the CA.
    public var email: String?
    /// CA certificates (PEM) trusted for the directory's https instead of the system's: a private CA's.
    public var caBundlePEM: String?

    /// Checks the values: a directory and an e-mail a person can read back, a bundle of PEM
    /// certificates (nothing else: it is gossiped in clear).
    public init(directory: String?, email: String?, caBundlePEM: String? = nil) throws {
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
        if let caBundlePEM {
            let begins = caBundlePEM.components(separatedBy: "-----BEGIN ").dropFirst()
            guard !begins.isEmpty, begins.allSatisfy({ $0.hasPrefix("CERTIFICATE-----") }), caBundlePEM.utf8.count <= 64 * 1024 else {
                throw ProvisioningError.invalidConfiguration(
                    "--acme-ca-bundle takes a file of PEM certificates (-----BEGIN CERTIFICATE-----, at most 64 KiB), the CA that signed the directory's https certificate; it holds something else")
            }
        }
        self.directory = directory
        self.email = email
        self.caBundlePEM = caBundlePEM
    }

    /// No character a shell or a systemd unit would interpret, no space, ASCII only.
    private static func isPlain(_ value: String) -> Bool {
        value.unicodeScalars.allSatisfy { $0.isASCII && $0.value > 32 && !"'\"\\`$;%&|<>(){}".unicodeScalars.contains($0) }
    }
}
