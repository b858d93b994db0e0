// A gateway's certificates: ordered from its ACME CA for the names it terminates TLS for, kept on
// disk, installed in the data plane, renewed two thirds into their lifetime, retried with backoff.
// In a mesh, one gateway orders each name and shares it sealed with the others (CertificateShare).

import Acme
public import Foundation
import Gossip
import Logging
import Metrics
import Proxy
import Trust

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
    /// The most recent failure for the name, of this gateway or of the gateway that orders it
    /// (`lastErrorBy`), whichever is newer; nil once the certificate is served again.
    public var lastError: String?
    public var lastErrorAt: Date?
    /// The gateway (node ID) that ordered the certificate served, when another did and shared it.
    public var sharedBy: String?
    /// The gateways (by name) that serve this same certificate now, this one included, as their
    /// order claims say. Nil from a node that predates the field.
    public var holders: [String]?
    /// The gateway (by name) that hit `lastError`: this one, or the one ordering the name.
    public var lastErrorBy: String?

    public init(name: String, issuer: String? = nil, notAfter: Date? = nil, renewAt: Date? = nil, gateway: String,
                lastError: String? = nil, lastErrorAt: Date? = nil, sharedBy: String? = nil, holders: [String]? = nil,
                lastErrorBy: String? = nil) {
        self.sharedBy = sharedBy
        self.holders = holders
        self.lastErrorBy = lastErrorBy
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
    private var settings: AcmeSettings
    private let directory: URL
    private let gatewayName: String
    private let logger: Logger
    private var client: AcmeClient?
    private var tasks: [String: Task<Void, Never>] = [:]
    private var statuses: [String: CertificateStatus] = [:]
    /// Waits after failed orders: doubling from the first, up to the last.
    private let firstRetry: Duration
    private let maxRetry: Duration
    /// With the mesh: one gateway orders each name, the others take it from the mesh. Nil: this
    /// gateway orders every name itself.
    private let sharing: CertificateSharing?
    /// The certificate served now, with its key, by name.
    private var current: [String: (certificate: IssuedCertificate, keyPEM: String)] = [:]
    /// This gateway's order claims as last written, by name.
    private var claims: [String: CertificateOrderClaim] = [:]
    /// The HTTP-01 answers of this gateway's open orders, by name: shared in its claim.
    private var challenges: [String: [String: String]] = [:]
    /// Answers given for another gateway's order, by name (tokens).
    private var relayed: [String: Set<String>] = [:]
    /// Certificates this gateway ordered from its CA and got.
    private(set) var ordersPlaced = 0
    /// What the other gateways' claims on a name say, by name.
    private var seen: [String: SeenInMesh] = [:]

    /// Of one name, from the live order claims: who serves the certificate served here, and the
    /// orderer's last failure when the orderer is another gateway.
    struct SeenInMesh {
        var holders: [String] = []
        var ordererError: (text: String, at: Date?, by: String)?
    }

    init(settings: AcmeSettings, stateDirectory: String, gatewayName: String, logger: Logger,
         firstRetry: Duration = .seconds(30), maxRetry: Duration = .seconds(3600), sharing: CertificateSharing? = nil) {
        self.sharing = sharing
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
    func serve(_ names: Set<String>) async {
        let names = Set(names.map(HostName.normalize))
        for name in names where self.tasks[name] == nil {
            self.statuses[name] = self.statuses[name] ?? CertificateStatus(name: name, gateway: self.gatewayName)
            if let sharing {
                self.tasks[name] = Task { await self.keepShared(name, sharing) }
            } else {
                self.tasks[name] = Task { await self.keep(name) }
            }
        }
        var dropped: [String] = []
        for (name, task) in self.tasks where !names.contains(name) {
            task.cancel()
            self.tasks[name] = nil
            self.statuses[name] = nil
            self.seen[name] = nil
            self.current[name] = nil
            self.tls.remove([name])
            dropped.append(name)
        }
        self.updateMetrics()
        // This gateway no longer serves them: it neither orders them nor gets them sealed any more.
        if let sharing, !dropped.isEmpty {
            let me = sharing.local.nodeID.description
            var intents: [EntryIntent] = []
            for name in dropped {
                for token in self.relayed[name] ?? [] { self.tls.withdrawChallenge(token: token) }
                self.relayed[name] = nil
                self.claims[name] = nil
                self.challenges[name] = nil
                let key = CertificateOrderClaim.key(name: name, gateway: me)
                intents += [.delete(.certificateOrder, key), .delete(.certificate, key)]
            }
            do { try await sharing.replica.apply(intents) } catch {
                self.logger.warning("could not withdraw certificate claims", metadata: ["error": "\(error)"])
            }
            // A name served again meanwhile writes its claim anew at its next look.
            for name in dropped where self.tasks[name] != nil { self.claims[name] = nil }
        }
    }

    /// Orders from now on go to the CA `settings` name (the mesh's setting changed); the HTTPS
    /// port stays the one this manager serves.
    func use(_ settings: AcmeSettings) {
        guard settings != self.settings else { return }
        self.settings = settings
        self.client = nil
    }

    var status: [CertificateStatus] {
        self.statuses.values.map { local in
            var status = local
            if status.lastError != nil { status.lastErrorBy = status.gateway }
            if let seen = self.seen[status.name] {
                status.holders = seen.holders
                if let remote = seen.ordererError, (remote.at ?? .distantPast) >= (status.lastErrorAt ?? .distantPast) {
                    status.lastError = remote.text
                    status.lastErrorAt = remote.at
                    status.lastErrorBy = remote.by
                }
            } else {
                // Alone (no mesh sharing): this gateway is the only one that can hold it.
                status.holders = status.notAfter == nil ? [] : [status.gateway]
            }
            return status
        }.sorted { $0.name < $1.name }
    }

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
                try await self.order(name, responder: GatewayChallengeResponder(tls: self.tls))
                failures = 0
            } catch {
                guard !Task.isCancelled else { return }
                failures += 1
                try? await Task.sleep(for: self.failed(name, error, attempt: failures))
            }
        }
    }

    /// Orders `name` from the CA, keeps it on disk and serves it.
    private func order(_ name: String, responder: some AcmeChallengeResponder) async throws {
        let key = try AcmeKey()
        let issued = try await self.acme().issue(names: [name], certificateKey: key, responder: responder)
        self.ordersPlaced += 1
        Counter(label: "warren_certificate_orders_total").increment()
        try self.save(name, issued, keyPEM: key.pem)
        self.installed(name, issued, keyPEM: key.pem)
    }

    /// Records a failed order and says when to try again: doubling from the first wait up to the
    /// last, longer when the CA asks for it.
    private func failed(_ name: String, _ error: any Error, attempt failures: Int) -> Duration {
        let text = "\(error)"
        self.statuses[name]?.lastError = text
        self.statuses[name]?.lastErrorAt = Date()
        var wait = self.firstRetry
        for _ in 1..<max(1, failures) where wait < self.maxRetry { wait *= 2 }
        if let asked = (error as? AcmeError)?.retryAfter, asked > wait { wait = asked }
        wait = min(wait, max(self.maxRetry, (error as? AcmeError)?.retryAfter ?? .zero))
        self.logger.error("certificate order failed", metadata: [
            "tls.name": "\(name)", "error": "\(text)", "retry.in": "\(wait)", "attempt": "\(failures)",
        ])
        return wait
    }

    // MARK: One name, shared with the mesh

    /// Keeps `name` served until cancelled, with the other gateways serving it: claim it, serve the
    /// newest certificate this gateway holds or was given, answer the orderer's challenges; as the
    /// orderer (the earliest live claim), order when there is none or it is due for renewal, and
    /// share it sealed to every gateway that claims the name.
    private func keepShared(_ name: String, _ sharing: CertificateSharing) async {
        let clock = ContinuousClock()
        let started = clock.now
        let me = sharing.local.nodeID.description
        var failures = 0
        var retryAt: ContinuousClock.Instant?
        if let stored = self.load(name), stored.certificate.notAfter > Date() {
            self.installed(name, stored.certificate, keyPEM: stored.keyPEM)
        }
        while !Task.isCancelled {
            await self.claim(name, sharing)
            let snapshots = await sharing.replica.snapshots(kinds: [.certificateOrder, .certificate, .gateway])
            let now = Date()
            let claims = CertificateOrderClaims(snapshots, name: name, now: now)
            self.relay(name, from: claims.orderer, me: me)
            self.takeShared(name, snapshots, sharing)
            self.observe(name, claims, snapshots, me: me)
            if claims.orderer?.gateway == me, clock.now - started >= sharing.settle {
                // What it holds goes to every gateway serving the name, a later one too, even
                // while a renewal fails.
                await self.share(name, to: claims.gateways, snapshots: snapshots, sharing)
                let due = self.current[name].map { $0.certificate.renewalDate <= now } ?? true
                if due, retryAt.map({ clock.now >= $0 }) ?? true {
                    do {
                        try await self.order(name, responder: SharedChallengeResponder(manager: self, tls: self.tls, settle: sharing.settle))
                        failures = 0
                        retryAt = nil
                    } catch {
                        guard !Task.isCancelled else { return }
                        failures += 1
                        retryAt = clock.now + self.failed(name, error, attempt: failures)
                    }
                    continue
                }
            }
            try? await Task.sleep(for: sharing.poll)
        }
    }

    /// Writes this gateway's claim on `name` when it has none, when half its lifetime has passed,
    /// or when what it tells changed (its challenges, the certificate it holds, its last error). A
    /// claim of an earlier run (restored from the replica) keeps its time, so a restarted orderer
    /// stays the orderer.
    private func claim(_ name: String, _ sharing: CertificateSharing, force: Bool = false) async {
        let me = sharing.local.nodeID.description
        let now = Date()
        let lifetime = Double(sharing.claimLifetime.components.seconds) + Double(sharing.claimLifetime.components.attoseconds) / 1e18
        let held = self.current[name].map { DomainClaim.toMillisecond($0.certificate.notAfter) }
        let lastError = self.statuses[name]?.lastError.map { String($0.prefix(CertificateOrderClaim.maxErrorLength)) }
        let lastErrorAt = self.statuses[name]?.lastErrorAt.map(DomainClaim.toMillisecond)
        var claim: CertificateOrderClaim
        if let written = self.claims[name] {
            let changed = written.challenges != (self.challenges[name] ?? [:]) || written.held != held
                || written.lastError != lastError || written.lastErrorAt != lastErrorAt
            guard force || changed || written.expires.timeIntervalSince(now) < lifetime / 2 else { return }
            claim = written
        } else {
            let earlier = await sharing.replica.snapshots(kinds: [.certificateOrder]).lazy.compactMap { CertificateOrderClaim.decode($0.value) }
                .first { $0.name == name && $0.gateway == me && $0.isLive(at: now) }
            claim = CertificateOrderClaim(name: name, gateway: me, claimed: earlier?.claimed ?? now, expires: now)
        }
        claim.expires = now.addingTimeInterval(lifetime)
        claim.challenges = self.challenges[name] ?? [:]
        claim.held = held
        claim.lastError = lastError
        claim.lastErrorAt = lastErrorAt
        self.claims[name] = claim
        do {
            try await sharing.replica.apply([.put(.certificateOrder, claim.key, claim.encoded)])
        } catch {
            self.logger.warning("could not write a certificate claim", metadata: ["tls.name": "\(name)", "error": "\(error)"])
        }
    }

    /// Keeps what the claims on `name` say for `warren certs`: the gateways holding the certificate
    /// served here (or, while this one has none, the newest one held), and the orderer's last
    /// failure when another gateway orders.
    private func observe(_ name: String, _ claims: CertificateOrderClaims, _ snapshots: [EntrySnapshot], me: String) {
        var names: [String: String] = [:]
        for s in snapshots where s.kind == .gateway {
            if let entry = try? JSONDecoder().decode(GatewayEntry.self, from: Data(s.value)) { names[s.key] = entry.name }
        }
        let label = { (id: String) in names[id] ?? "node \(id.prefix(8))…" }
        var seen = SeenInMesh()
        if let held = self.current[name]?.certificate.notAfter ?? claims.claims.compactMap(\.held).max() {
            seen.holders = claims.holders(of: held).subtracting([me]).map(label)
        }
        // Its own claim may lag a poll behind what it serves.
        if self.current[name] != nil { seen.holders.append(self.gatewayName) }
        seen.holders.sort()
        if let orderer = claims.orderer, orderer.gateway != me, let error = orderer.lastError {
            seen.ordererError = (error, orderer.lastErrorAt, label(orderer.gateway))
        }
        self.seen[name] = seen
    }

    /// Answers the challenges another gateway's order asks for under `name`.
    private func relay(_ name: String, from orderer: CertificateOrderClaim?, me: String) {
        let asked = orderer?.gateway == me ? [:] : orderer?.challenges ?? [:]
        for token in self.relayed[name] ?? [] where asked[token] == nil { self.tls.withdrawChallenge(token: token) }
        for (token, answer) in asked { self.tls.publishChallenge(token: token, keyAuthorization: answer) }
        self.relayed[name] = Set(asked.keys)
    }

    /// Serves the newest certificate sealed to this gateway, when it is newer than the one served.
    private func takeShared(_ name: String, _ snapshots: [EntrySnapshot], _ sharing: CertificateSharing) {
        let me = sharing.local.nodeID.description
        let offered = snapshots.compactMap { s -> SharedCertificate? in
            guard s.kind == .certificate, let shared = SharedCertificate.decode(s.value), shared.key == s.key, shared.name == name,
                  shared.gateway == s.author.description, shared.keys[me] != nil
            else { return nil }
            return shared
        }.sorted { $0.notAfter > $1.notAfter }
        guard let newest = offered.first, newest.notAfter > Date(),
              newest.notAfter > (self.current[name]?.certificate.notAfter ?? .distantPast)
        else { return }
        do {
            guard let (certificate, keyPEM) = try newest.open(as: sharing.local) else { return }
            try self.save(name, certificate, keyPEM: keyPEM)
            self.installed(name, certificate, keyPEM: keyPEM, sharedBy: newest.gateway == me ? nil : newest.gateway)
            self.logger.info("installed a certificate shared by the mesh", metadata: [
                "tls.name": "\(name)", "tls.orderer": "\(newest.gateway.prefix(8))", "tls.not_after": "\(certificate.notAfter)",
            ])
        } catch {
            self.statuses[name]?.lastError = "the certificate gateway \(newest.gateway.prefix(8))… shared for \(name) does not open: \(error)"
            self.statuses[name]?.lastErrorAt = Date()
        }
    }

    /// Publishes the certificate served for `name` sealed to `gateways`, unless this gateway's
    /// entry already holds that one for exactly those.
    private func share(_ name: String, to gateways: Set<String>, snapshots: [EntrySnapshot], _ sharing: CertificateSharing) async {
        guard let (certificate, keyPEM) = self.current[name] else { return }
        let me = sharing.local.nodeID.description
        let key = CertificateOrderClaim.key(name: name, gateway: me)
        if let published = snapshots.first(where: { $0.kind == .certificate && $0.key == key }).flatMap({ SharedCertificate.decode($0.value) }),
           published.recipients == gateways, DomainClaim.milliseconds(published.notAfter) == DomainClaim.milliseconds(certificate.notAfter) {
            return
        }
        do {
            let shared = try SharedCertificate.seal(certificate, keyPEM: keyPEM, name: name, by: me, to: gateways)
            try await sharing.replica.apply([.put(.certificate, key, shared.encoded)])
            self.logger.info("shared a certificate with the gateways serving its name", metadata: [
                "tls.name": "\(name)", "tls.gateways": "\(gateways.count)", "tls.not_after": "\(certificate.notAfter)",
            ])
        } catch {
            self.statuses[name]?.lastError = "could not share the certificate for \(name): \(error)"
            self.statuses[name]?.lastErrorAt = Date()
        }
    }

    /// An HTTP-01 answer of this gateway's order, given by every gateway serving the name.
    func shareChallenge(name: String, token: String, answer: String) async {
        self.challenges[name, default: [:]][token] = answer
        if let sharing { await self.claim(name, sharing, force: true) }
    }

    func withdrawSharedChallenge(token: String) async {
        for (name, answers) in self.challenges where answers[token] != nil {
            self.challenges[name]?[token] = nil
            if let sharing { await self.claim(name, sharing, force: true) }
        }
    }

    private func installed(_ name: String, _ certificate: IssuedCertificate, keyPEM: String, sharedBy: String? = nil) {
        do {
            try self.tls.install(chainPEM: certificate.chainPEM, privateKeyPEM: keyPEM, for: [name])
        } catch {
            self.statuses[name]?.lastError = "\(error)"
            self.statuses[name]?.lastErrorAt = Date()
            return
        }
        self.current[name] = (certificate, keyPEM)
        self.statuses[name]?.sharedBy = sharedBy
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

/// The challenges of an order shared with the mesh: answered here and, through this gateway's
/// claim, by every gateway serving the name, given time to spread before the CA is told to look.
struct SharedChallengeResponder: AcmeChallengeResponder {
    let manager: CertificateManager
    let tls: TLSCertificates
    let settle: Duration

    func publish(token: String, keyAuthorization: String, for name: String) async {
        self.tls.publishChallenge(token: token, keyAuthorization: keyAuthorization)
        await self.manager.shareChallenge(name: HostName.normalize(name), token: token, answer: keyAuthorization)
        try? await Task.sleep(for: self.settle)
    }

    func withdraw(token: String) async {
        self.tls.withdrawChallenge(token: token)
        await self.manager.withdrawSharedChallenge(token: token)
    }
}
