// The certificates a gateway terminates TLS with, and the HTTP-01 answers it gives on plain HTTP.

import NIOConcurrencyHelpers
import NIOSSL

/// Why a certificate could not be installed.
public struct TLSCertificateError: Error, CustomStringConvertible, Sendable {
    public var names: [String]
    public var reason: String

    public var description: String {
        "the certificate for \(self.names.joined(separator: ", ")) could not be installed: \(self.reason); "
            + "the names keep their previous certificate (if any) until a good one is issued"
    }
}

/// Thread-safe store shared by every listener of a gateway: a TLS context per host name (SNI picks
/// it), and the ACME HTTP-01 answers by token. Host-routed bindings whose route `terminatesTLS` are
/// served with these contexts; plain HTTP requests for a name with a certificate are redirected to
/// `https://NAME[:httpsPort]/...`.
public final class TLSCertificates: Sendable {
    private struct State {
        var contexts: [String: NIOSSLContext] = [:]
        var challenges: [String: String] = [:]
    }

    private let state = NIOLockedValueBox(State())
    /// The port plain-HTTP requests are redirected to (443 is left out of the URL).
    public let httpsPort: Int

    public init(httpsPort: Int = 443) {
        self.httpsPort = httpsPort
    }

    /// Serves `names` with the PEM chain (leaf first) and key; ALPN offers h2 and http/1.1.
    public func install(chainPEM: String, privateKeyPEM: String, for names: [String]) throws(TLSCertificateError) {
        let context: NIOSSLContext
        do {
            let chain = try NIOSSLCertificate.fromPEMBytes(Array(chainPEM.utf8))
            guard !chain.isEmpty else { throw TLSCertificateError(names: names, reason: "the PEM chain holds no certificate") }
            let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)
            )
            configuration.applicationProtocols = ["h2", "http/1.1"]
            configuration.minimumTLSVersion = .tlsv12
            context = try NIOSSLContext(configuration: configuration)
        } catch let error as TLSCertificateError {
            throw error
        } catch {
            throw TLSCertificateError(names: names, reason: "\(error)")
        }
        self.state.withLockedValue { state in
            for name in names { state.contexts[HostName.normalize(name)] = context }
        }
    }

    /// Stops terminating TLS for `names` (their connections get `unrecognized_name`).
    public func remove(_ names: [String]) {
        self.state.withLockedValue { state in
            for name in names { state.contexts[HostName.normalize(name)] = nil }
        }
    }

    /// The names served now, sorted.
    public var names: [String] { self.state.withLockedValue { $0.contexts.keys.sorted() } }

    public func hasCertificate(for host: String) -> Bool {
        self.state.withLockedValue { $0.contexts[HostName.normalize(host)] != nil }
    }

    func context(for host: String?) -> NIOSSLContext? {
        guard let host else { return nil }
        return self.state.withLockedValue { $0.contexts[HostName.normalize(host)] }
    }

    /// Answers `GET /.well-known/acme-challenge/TOKEN` with `keyAuthorization` on every HTTP port.
    public func publishChallenge(token: String, keyAuthorization: String) {
        self.state.withLockedValue { $0.challenges[token] = keyAuthorization }
    }

    public func withdrawChallenge(token: String) {
        self.state.withLockedValue { $0.challenges[token] = nil }
    }

    static let challengePrefix = "/.well-known/acme-challenge/"

    /// The answer for a request path, when it asks for a published challenge.
    func challengeAnswer(for path: String) -> String? {
        guard path.hasPrefix(Self.challengePrefix) else { return nil }
        let token = String(path.dropFirst(Self.challengePrefix.count))
        return self.state.withLockedValue { $0.challenges[token] }
    }

    /// Where a plain-HTTP request for `host` and `uri` is sent.
    func redirectLocation(host: String, uri: String) -> String {
        let name = HostName.normalize(host)
        let authority = self.httpsPort == 443 ? name : "\(name):\(self.httpsPort)"
        return "https://\(authority)\(uri.hasPrefix("/") ? uri : "/" + uri)"
    }
}
