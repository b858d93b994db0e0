public import Foundation

/// A fresh RSA key pair made with `openssl`, in a temporary directory of its own, standing in for
/// a GCP service account's key; removed by `remove()`.
public struct ServiceAccountKey: Sendable {
    public let directory: URL
    public var privateKeyPath: String { directory.appendingPathComponent("key.pem").path }
    public var publicKeyPath: String { directory.appendingPathComponent("pub.pem").path }

    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("warren-gcp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        guard try Self.openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", privateKeyPath]) == 0,
              try Self.openssl(["pkey", "-in", privateKeyPath, "-pubout", "-out", publicKeyPath]) == 0
        else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "openssl could not make an RSA key in \(directory.path)"]) }
    }

    public func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// The key file as the console downloads it.
    public func json(email: String, project: String, tokenURI: String) throws -> String {
        let keyFile: [String: Any] = [
            "type": "service_account", "project_id": project, "private_key_id": "abc",
            "private_key": try String(contentsOfFile: privateKeyPath, encoding: .utf8), "client_email": email,
            "client_id": "123", "token_uri": tokenURI,
        ]
        return String(decoding: try JSONSerialization.data(withJSONObject: keyFile), as: UTF8.self)
    }

    /// `openssl ARGUMENTS`, its output discarded; its exit status.
    public static func openssl(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}
