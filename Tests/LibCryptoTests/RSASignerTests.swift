import Foundation
import LibCrypto
import Testing

/// RS256 signatures checked by the `openssl` command: `dgst -sha256 -verify` must accept them, and,
/// PKCS#1 v1.5 being deterministic, `dgst -sha256 -sign` must produce the same bytes.
@Suite("RSASigner (RS256)")
struct RSASignerTests {
    final class Scratch {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("warren-rsa-\(UUID().uuidString)")
        init() throws { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(at: directory) }
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    }

    @discardableResult
    static func openssl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test(arguments: [false, true])
    func signatureVerifiesWithOpenSSL(traditionalFormat: Bool) throws {
        let scratch = try Scratch()
        let key = scratch.path("key.pem")
        #expect(try Self.openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key]).status == 0)
        if traditionalFormat {
            // PKCS#1 "BEGIN RSA PRIVATE KEY", as older tools write it.
            #expect(try Self.openssl(["rsa", "-in", key, "-traditional", "-out", key]).status == 0)
        }
        #expect(try Self.openssl(["pkey", "-in", key, "-pubout", "-out", scratch.path("pub.pem")]).status == 0)
        let pem = try String(contentsOfFile: key, encoding: .utf8)
        #expect(pem.contains(traditionalFormat ? "BEGIN RSA PRIVATE KEY" : "BEGIN PRIVATE KEY"))

        let message = Array(#"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJ0ZXN0In0"#.utf8)
        try Data(message).write(to: URL(fileURLWithPath: scratch.path("msg")))
        let signer = try RSASigner(pem: pem)
        let signature = try signer.sign(message)
        #expect(signature.count == 256)
        try Data(signature).write(to: URL(fileURLWithPath: scratch.path("sig")))

        let verify = try Self.openssl(["dgst", "-sha256", "-verify", scratch.path("pub.pem"), "-signature", scratch.path("sig"), scratch.path("msg")])
        #expect(verify.status == 0)
        #expect(verify.output.contains("Verified OK"))

        #expect(try Self.openssl(["dgst", "-sha256", "-sign", key, "-out", scratch.path("ref"), scratch.path("msg")]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.path("ref"))) == Data(signature))

        // A changed message must not verify.
        try Data(message + [0x21]).write(to: URL(fileURLWithPath: scratch.path("msg")))
        #expect(try Self.openssl(["dgst", "-sha256", "-verify", scratch.path("pub.pem"), "-signature", scratch.path("sig"), scratch.path("msg")]).status != 0)
    }

    @Test func badKeysAreClearErrors() throws {
        #expect(throws: RSASignerError.self) { try RSASigner(pem: "not a key") }
        #expect(throws: RSASignerError.self) { try RSASigner(pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n") }
        let scratch = try Scratch()
        let key = scratch.path("ec.pem")
        #expect(try Self.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]).status == 0)
        #expect(throws: RSASignerError.notRSA) { try RSASigner(pem: try String(contentsOfFile: key, encoding: .utf8)) }
    }
}
