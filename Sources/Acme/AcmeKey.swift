// P-256 keys for ACME (the account's JWS key and the certificates' keys), the CSR, and reading a
// certificate's issuer and validity: libcrypto, as the other wrappers of this package use it.

internal import CX509
import Foundation

/// Why a key, a request or a certificate could not be handled; OpenSSL's text is kept.
public struct AcmeCryptoError: Error, Sendable, CustomStringConvertible {
    public var what: String
    public var openssl: String

    init(_ what: String) {
        self.what = what
        var buffer = [CChar](repeating: 0, count: 256)
        warren_x509_last_error(&buffer, buffer.count)
        self.openssl = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { "\(self.what) (OpenSSL: \(self.openssl))" }
}

/// An ECDSA P-256 private key. Immutable once made, so one key may sign from several threads.
public final class AcmeKey: @unchecked Sendable {
    private let key: OpaquePointer

    /// A new random key.
    public init() throws(AcmeCryptoError) {
        guard let key = warren_p256_generate() else { throw AcmeCryptoError("a P-256 key could not be generated") }
        self.key = key
    }

    /// A key from PEM (PKCS#8 `BEGIN PRIVATE KEY`, or SEC1 `BEGIN EC PRIVATE KEY`).
    public init(pem: String) throws(AcmeCryptoError) {
        let bytes = Array(pem.utf8)
        let parsed = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { warren_pkey_from_pem($0.baseAddress, Int32($0.count)) }
        }
        guard let parsed else { throw AcmeCryptoError("the PEM text holds no private key") }
        guard warren_pkey_is_p256(parsed) == 1 else {
            EVP_PKEY_free(parsed)
            throw AcmeCryptoError("the private key is not an EC P-256 key (ACME keys here are ES256)")
        }
        self.key = parsed
    }

    deinit { EVP_PKEY_free(self.key) }

    /// PKCS#8 PEM, for the state directory (keep it private).
    public var pem: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = warren_pkey_to_pem(self.key, &buffer, Int32(buffer.count))
        guard length > 0 else { return "" }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The public point, uncompressed: 0x04 || X || Y.
    var publicPoint: [UInt8] {
        var point = [UInt8](repeating: 0, count: 65)
        _ = warren_p256_public_point(self.key, &point)
        return point
    }

    /// ES256: the raw R || S signature (64 bytes) of SHA-256(message).
    func signES256(_ message: [UInt8]) throws(AcmeCryptoError) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: 64)
        let ok = message.withUnsafeBufferPointer { warren_es256_sign(self.key, $0.baseAddress, $0.count, &signature) }
        guard ok == 1 else { throw AcmeCryptoError("ES256 signing failed") }
        return signature
    }

    /// A PKCS#10 request (DER) for `names`; the first is the subject's common name when it fits.
    func certificateSigningRequest(names: [String]) throws(AcmeCryptoError) -> [UInt8] {
        var request = [UInt8](repeating: 0, count: 16 * 1024)
        let alternatives = names.map { "DNS:\($0)" }.joined(separator: ",")
        let length = request.withUnsafeMutableBufferPointer { out in
            warren_csr(self.key, names.first, alternatives, out.baseAddress, Int32(out.count))
        }
        guard length > 0 else { throw AcmeCryptoError("the certificate signing request for \(names.joined(separator: ", ")) could not be made") }
        return Array(request.prefix(Int(length)))
    }
}

enum SHA256Digest {
    static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = bytes.withUnsafeBufferPointer { EVP_Digest($0.baseAddress, $0.count, &digest, &length, EVP_sha256(), nil) }
        return digest
    }
}

/// The issuer and validity of the first certificate of a PEM text.
struct CertificateSummary {
    var issuer: String
    var notBefore: Date
    var notAfter: Date

    init(pem: String) throws(AcmeCryptoError) {
        let bytes = Array(pem.utf8)
        var issuer = [CChar](repeating: 0, count: 1024)
        var notBefore: Int64 = 0
        var notAfter: Int64 = 0
        let ok = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) {
                warren_certificate_summary($0.baseAddress, Int32($0.count), &issuer, Int32(issuer.count), &notBefore, &notAfter)
            }
        }
        guard ok == 1 else { throw AcmeCryptoError("the PEM text holds no readable certificate") }
        self.issuer = String(decoding: issuer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.notBefore = Date(timeIntervalSince1970: TimeInterval(notBefore))
        self.notAfter = Date(timeIntervalSince1970: TimeInterval(notAfter))
    }
}
