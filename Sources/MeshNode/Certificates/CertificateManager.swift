// A gateway's certificates: ordered from its ACME CA for the names it terminates TLS for, kept on
// disk, installed in the data plane, renewed two thirds into their lifetime, retried with backoff.

import Acme
public import Foundation
import Logging
import Metrics
import Proxy

/// The ACME settings of a gateway.
public struct AcmeSettings: Sendable, Hashable {
    public static let letsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

    public var directoryURL: String
    public var email: String?
    /// CAs trusted for the directory's https instead of the system's (a private CA, pebble in tests).
    public var caBundlePath: String?
    /// Names held on this port get a certificate (the CA's HTTP-01 check comes here too).
    public var httpPort: Int
    /// Where HTTPS is served; plain HTTP redirects there.
    public var httpsPort: Int

    public init(
        directoryURL: String = AcmeSettings.letsEncrypt, email: String? = nil, caBundlePath: String? = nil,
        httpPort: Int = 80, httpsPort: Int = 443
    ) {
        self.directoryURL = directoryURL
        self.email = email
        self.caBundlePath = caBundlePath
        self.httpPort = httpPort
        self.httpsPort = httpsPort
    }
}

/// What `warren certs` shows for one name.
public struct CertificateStatus: Codable, Sendable, Equatable {
    public var name: String
    public var issuer: String?
    public var notAfter: Date?
    public var renewAt: Date?
    /// The gateway (by name) that holds it.
    public var gateway: String
    public var lastError: String?
    public var lastErrorAt: Date?

    public init(name: String, issuer: String? = nil, notAfter: Date? = nil, renewAt: Date? = nil, gateway: String,
                lastError: String? = nil, lastErrorAt: Date? = nil) {
        self.name = name
        self.issuer = issuer
        self.notAfter = notAfter
        self.renewAt = renewAt
        self.gateway = gateway
        self.lastError = lastError
        self.lastErrorAt = lastErrorAt
    }
}

actor CertificateManager {
    nonisolated let tls: TLSCertificates
    private let settings: AcmeSettings
    private let directory: URL
    private let gatewayName: String
    private let logger: Logger
    private var client: AcmeClient?
    private var tasks: [String: Task<Void, Never>] = [:]
    private var statuses: [String: CertificateStatus] = [:]
    /// Waits after failed orders: doubling from the first, up to the last.
    private let firstRetry: Duration
    private let maxRetry: Duration

    init(settings: AcmeSettings, stateDirectory: String, gatewayName: String, logger: Logger,
         firstRetry: Duration = .seconds(30), maxRetry: Duration = .seconds(3600)) {
        self.settings = settings
        self.tls = TLSCertificates(httpsPort: settings.httpsPort)
        self.directory = URL(fileURLWithPath: stateDirectory).appendingPathComponent("certificates")
        self.gatewayName = gatewayName
        self.logger = logger
        self.firstRetry = firstRetry
        self.maxRetry = maxRetry
    }

    /// The names to terminate TLS for now: new ones are loaded from disk or ordered, gone ones stop
    /// being served (their files stay for a later return).
    func serve(_ names: Set<String>) {
        for name in names where self.tasks[name] == nil {
            self.statuses[name] = self.statuses[name] ?? CertificateStatus(name: name, gateway: self.gatewayName)
            self.tasks[name] = Task { await self.keep(name) }
        }
        for (name, task) in self.tasks where !names.contains(name) {
            task.cancel()
            self.tasks[name] = nil
            self.statuses[name] = nil
            self.tls.remove([name])
        }
        self.updateMetrics()
    }

    var status: [CertificateStatus] { self.statuses.values.sorted { $0.name < $1.name } }

    func shutdown() {
        for task in self.tasks.values { task.cancel() }
        self.tasks = [:]
    }

    // MARK: One name

    /// Keeps `name` served until cancelled: install what is on disk, order when there is none or it
    /// is due for renewal, sleep until the next renewal.
    private func keep(_ name: String) async {
        var failures = 0
        while !Task.isCancelled {
            if let stored = self.load(name), stored.certificate.notAfter > Date() {
                self.installed(name, stored.certificate, keyPEM: stored.keyPEM)
                let wait = stored.certificate.renewalDate.timeIntervalSinceNow
                if wait > 0 {
                    try? await Task.sleep(for: .seconds(min(wait, 86_400)))
                    continue
                }
            }
            do {
                let key = try AcmeKey()
                let issued = try await self.acme().issue(names: [name], certificateKey: key, responder: GatewayChallengeResponder(tls: self.tls))
                try self.save(name, issued, keyPEM: key.pem)
                self.installed(name, issued, keyPEM: key.pem)
                failures = 0
            } catch {
                guard !Task.isCancelled else { return }
                failures += 1
                let text = "\(error)"
                self.statuses[name]?.lastError = text
                self.statuses[name]?.lastErrorAt = Date()
                var wait = self.firstRetry
                for _ in 1..<failures where wait < self.maxRetry { wait *= 2 }
                if let asked = (error as? AcmeError)?.retryAfter, asked > wait { wait = asked }
                wait = min(wait, max(self.maxRetry, (error as? AcmeError)?.retryAfter ?? .zero))
                self.logger.error("certificate order failed", metadata: [
                    "tls.name": "\(name)", "error": "\(text)", "retry.in": "\(wait)", "attempt": "\(failures)",
                ])
                try? await Task.sleep(for: wait)
            }
        }
    }

    private func installed(_ name: String, _ certificate: IssuedCertificate, keyPEM: String) {
        do {
            try self.tls.install(chainPEM: certificate.chainPEM, privateKeyPEM: keyPEM, for: [name])
        } catch {
            self.statuses[name]?.lastError = "\(error)"
            self.statuses[name]?.lastErrorAt = Date()
            return
        }
        self.statuses[name]?.issuer = certificate.issuer
        self.statuses[name]?.notAfter = certificate.notAfter
        self.statuses[name]?.renewAt = certificate.renewalDate
        self.statuses[name]?.lastError = nil
        self.statuses[name]?.lastErrorAt = nil
        self.updateMetrics()
    }

    private func acme() throws -> AcmeClient {
        if let client { return client }
        let key = try self.accountKey()
        let client = AcmeClient(
            directoryURL: self.settings.directoryURL, contactEmail: self.settings.email, accountKey: key,
            caBundlePath: self.settings.caBundlePath, logger: self.logger
        )
        self.client = client
        return client
    }

    // MARK: Files: certificates/<name>/{chain.pem,key.pem}, certificates/account.pem (mode 0600)

    private func accountKey() throws -> AcmeKey {
        let file = self.directory.appendingPathComponent("account.pem")
        if let pem = try? String(contentsOf: file, encoding: .utf8) {
            return try AcmeKey(pem: pem)
        }
        let key = try AcmeKey()
        try Self.writeSecret(key.pem, to: file)
        return key
    }

    private func load(_ name: String) -> (certificate: IssuedCertificate, keyPEM: String)? {
        let folder = self.directory.appendingPathComponent(name)
        guard let chain = try? String(contentsOf: folder.appendingPathComponent("chain.pem"), encoding: .utf8),
              let key = try? String(contentsOf: folder.appendingPathComponent("key.pem"), encoding: .utf8),
              let certificate = try? IssuedCertificate(names: [name], chainPEM: chain)
        else { return nil }
        return (certificate, key)
    }

    private func save(_ name: String, _ certificate: IssuedCertificate, keyPEM: String) throws {
        let folder = self.directory.appendingPathComponent(name)
        try Self.writeSecret(keyPEM, to: folder.appendingPathComponent("key.pem"))
        try Self.writeSecret(certificate.chainPEM, to: folder.appendingPathComponent("chain.pem"))
    }

    private static func writeSecret(_ text: String, to file: URL) throws {
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let temporary = file.appendingPathExtension("tmp")
        _ = FileManager.default.createFile(atPath: temporary.path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        guard rename(temporary.path, file.path) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file.path])
        }
    }

    // MARK: Metrics

    private func updateMetrics() {
        Gauge(label: "warren_certificates").record(self.statuses.values.filter { $0.notAfter != nil }.count)
        for status in self.statuses.values {
            guard let notAfter = status.notAfter else { continue }
            Gauge(label: "warren_certificate_days_to_expiry", dimensions: [("name", status.name)])
                .record(notAfter.timeIntervalSinceNow / 86_400)
        }
    }
}

/// The ACME client's challenges, answered by the gateway's own HTTP listeners.
struct GatewayChallengeResponder: AcmeChallengeResponder {
    let tls: TLSCertificates
    func publish(token: String, keyAuthorization: String, for name: String) async {
        self.tls.publishChallenge(token: token, keyAuthorization: keyAuthorization)
    }
    func withdraw(token: String) async { self.tls.withdrawChallenge(token: token) }
}
