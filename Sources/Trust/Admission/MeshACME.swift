import Foundation

/// The mesh's ACME settings (entry `meshSetting`, key `acme`, written by an admin through
/// `warren gateway create --acme-…`): every gateway started without ACME flags of its own orders
/// its certificates from this CA.
public struct MeshACME: Codable, Sendable, Equatable {
    public static let key = "acme"
    /// Let's Encrypt's production directory, the default CA.
    public static let letsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

    /// The CA's directory URL (https).
    public var directory: String
    /// The contact e-mail of the mesh's account at the CA.
    public var email: String?
    /// CA certificates (PEM) trusted for the directory's https instead of the system's: a private
    /// CA's. Public certificates only, so in clear.
    public var caBundlePEM: String?

    public init(directory: String = MeshACME.letsEncrypt, email: String? = nil, caBundlePEM: String? = nil) {
        self.directory = directory
        self.email = email
        self.caBundlePEM = caBundlePEM
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Checks what it holds: an https directory, and a bundle of PEM certificates only.
    public static func decode(_ bytes: [UInt8]) throws -> MeshACME {
        let acme: MeshACME
        do { acme = try JSONDecoder().decode(MeshACME.self, from: Data(bytes)) } catch { throw Invalid(description: "\(error)") }
        guard acme.directory.hasPrefix("https://"), URL(string: acme.directory)?.host != nil else {
            throw Invalid(description: "the directory \(acme.directory.prefix(200).debugDescription) is not an https:// URL")
        }
        if let pem = acme.caBundlePEM, !isCertificateBundle(pem) {
            throw Invalid(description: "the CA bundle holds something else than PEM certificates")
        }
        return acme
    }

    public var encoded: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Array((try? encoder.encode(self)) ?? Data())
    }

    /// PEM certificates and nothing else (a private key put there by mistake would be gossiped).
    public static func isCertificateBundle(_ pem: String) -> Bool {
        let begins = pem.components(separatedBy: "-----BEGIN ").dropFirst()
        return !begins.isEmpty && begins.allSatisfy { $0.hasPrefix("CERTIFICATE-----") } && pem.utf8.count <= 64 * 1024
    }
}
