internal import CCrypto
import Foundation

/// Errors of RSA signing. Never a raw OpenSSL code: the message is OpenSSL's own text.
public enum RSASignerError: Error, Equatable, CustomStringConvertible {
    /// The PEM text holds no private key this library can read.
    case invalidKey(String)
    /// The key is not an RSA key.
    case notRSA
    /// OpenSSL failed to sign.
    case signingFailed(String)

    public var description: String {
        switch self {
        case .invalidKey(let why): return "invalid RSA private key: \(why)"
        case .notRSA: return "the private key is not an RSA key (RS256 needs RSA)"
        case .signingFailed(let why): return "RSA signing failed: \(why)"
        }
    }
}

/// RS256: RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017), as JWTs for Google's OAuth token endpoint need.
public final class RSASigner: @unchecked Sendable {
    // Immutable after init; EVP_DigestSign on a fresh context per call only reads the key.
    private let key: OpaquePointer

    /// Reads a private key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what service-account JSON keys
    /// hold) or PKCS#1 (`BEGIN RSA PRIVATE KEY`). Encrypted keys are not supported.
    public init(pem: String) throws(RSASignerError) {
        let der = try Self.derFromPEM(pem)
        let parsed: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var pointer: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_AutoPrivateKey(nil, &pointer, buffer.count)
        }
        guard let parsed else { throw RSASignerError.invalidKey("OpenSSL could not read it (\(Self.opensslError()))") }
        guard EVP_PKEY_get_base_id(parsed) == EVP_PKEY_RSA else {
            EVP_PKEY_free(parsed)
            throw RSASignerError.notRSA
        }
        key = parsed
    }

    deinit { EVP_PKEY_free(key) }

    /// The modulus length in bytes (the signature length).
    public var signatureLength: Int { Int(EVP_PKEY_get_size(key)) }

    /// The RS256 signature of `message`.
    public func sign(_ message: [UInt8]) throws(RSASignerError) -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { throw RSASignerError.signingFailed("out of memory") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, EVP_sha256(), nil, key) == 1 else {
            throw RSASignerError.signingFailed(Self.opensslError())
        }
        var length = 0
        var signature = [UInt8](repeating: 0, count: signatureLength)
        let ok = message.withUnsafeBufferPointer { m in
            signature.withUnsafeMutableBufferPointer { s in
                length = s.count
                var empty: UInt8 = 0
                return withUnsafePointer(to: &empty) { e in
                    EVP_DigestSign(context, s.baseAddress, &length, m.baseAddress ?? e, m.count)
                }
            }
        }
        guard ok == 1 else { throw RSASignerError.signingFailed(Self.opensslError()) }
        return Array(signature.prefix(length))
    }

    /// The base64 body of the first PEM block, decoded.
    static func derFromPEM(_ pem: String) throws(RSASignerError) -> [UInt8] {
        let lines = pem.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN ") && $0.hasSuffix("PRIVATE KEY-----") }),
              let end = lines[begin...].firstIndex(where: { $0.hasPrefix("-----END ") }) else {
            throw RSASignerError.invalidKey("no -----BEGIN PRIVATE KEY----- block")
        }
        if lines[begin].contains("ENCRYPTED") { throw RSASignerError.invalidKey("the key is encrypted; export it without a passphrase") }
        let body = lines[(begin + 1)..<end].filter { !$0.contains(":") }.joined()
        guard let der = Data(base64Encoded: body), !der.isEmpty else { throw RSASignerError.invalidKey("the PEM body is not base64") }
        return Array(der)
    }

    static func opensslError() -> String {
        let code = ERR_get_error()
        guard code != 0 else { return "no detail from OpenSSL" }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        ERR_clear_error()
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
