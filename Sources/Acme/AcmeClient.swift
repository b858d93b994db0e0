// An ACME client (RFC 8555): account, order, HTTP-01 authorization, finalize with a CSR, download.

import Curl
public import Foundation
public import Logging

/// How hard the client tries before it gives up on one exchange.
public struct AcmeRetryPolicy: Sendable {
    /// Attempts for one request when the CA is unreachable or answers 5xx (at least 1).
    public var attempts: Int
    /// The first wait; each later one doubles, up to `maxDelay`.
    public var initialDelay: Duration
    public var maxDelay: Duration
    /// Longest an authorization or order is polled before the client gives up.
    public var pollLimit: Duration

    public init(attempts: Int = 5, initialDelay: Duration = .seconds(1), maxDelay: Duration = .seconds(30), pollLimit: Duration = .seconds(300)) {
        self.attempts = max(1, attempts)
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.pollLimit = pollLimit
    }

    func delay(afterAttempt attempt: Int) -> Duration {
        var delay = self.initialDelay
        for _ in 1..<max(1, attempt) where delay < self.maxDelay { delay *= 2 }
        return min(delay, self.maxDelay)
    }
}

/// A certificate as the CA issued it.
public struct IssuedCertificate: Sendable, Hashable {
    public var names: [String]
    /// The leaf first, then the intermediates, PEM.
    public var chainPEM: String
    /// The leaf's issuer, as its distinguished name reads.
    public var issuer: String
    public var notBefore: Date
    public var notAfter: Date

    public init(names: [String], chainPEM: String, issuer: String, notBefore: Date, notAfter: Date) {
        self.names = names
        self.chainPEM = chainPEM
        self.issuer = issuer
        self.notBefore = notBefore
        self.notAfter = notAfter
    }

    /// Reads a PEM chain; the leaf (first certificate) gives the issuer and validity.
    public init(names: [String], chainPEM: String) throws {
        let leaf = try CertificateSummary(pem: chainPEM)
        self.init(names: names, chainPEM: chainPEM, issuer: leaf.issuer, notBefore: leaf.notBefore, notAfter: leaf.notAfter)
    }

    /// When to renew: two thirds into the validity period.
    public var renewalDate: Date {
        self.notBefore.addingTimeInterval(self.notAfter.timeIntervalSince(self.notBefore) * 2 / 3)
    }
}

/// Talks to one ACME CA with one account key. Serializes nothing itself: orders may run in parallel.
public actor AcmeClient {
    public let directoryURL: String
    public let contact: [String]
    private let jws: AcmeJWS
    private let http: HTTPClient
    private let retry: AcmeRetryPolicy
    private let logger: Logger
    private var directory: AcmeDirectory?
    private var nonces: [String] = []
    private var accountURL: String?

    /// - Parameters:
    ///   - contactEmail: the account's contact, sent as `mailto:`; nil sends none.
    ///   - caBundlePath: the CAs trusted for the directory's https (a private or test CA); nil uses the system's.
    public init(
        directoryURL: String, contactEmail: String?, accountKey: AcmeKey,
        caBundlePath: String? = nil, retry: AcmeRetryPolicy = .init(), logger: Logger = Logger(label: "warren.acme")
    ) {
        self.directoryURL = directoryURL
        self.contact = contactEmail.map { ["mailto:\($0)"] } ?? []
        self.jws = AcmeJWS(key: accountKey)
        self.http = HTTPClient(timeout: .seconds(30), connectTimeout: .seconds(10), maxResponseBytes: 1 << 20, caBundlePath: caBundlePath)
        self.retry = retry
        self.logger = logger
    }

    /// The value an HTTP-01 answer carries for `token`.
    public nonisolated func keyAuthorization(for token: String) -> String {
        "\(token).\(self.jws.thumbprint)"
    }

    /// Orders a certificate for `names` (the first is the subject), answers the HTTP-01 challenges
    /// through `responder`, finalizes with a CSR for `certificateKey` and downloads the chain.
    public func issue(
        names: [String], certificateKey: AcmeKey, responder: any AcmeChallengeResponder
    ) async throws(AcmeError) -> IssuedCertificate {
        guard !names.isEmpty else { throw .localFailure("no names to order a certificate for") }
        let directory = try await self.loadDirectory()
        let kid = try await self.account(directory)

        let identifiers = names.map { AcmeIdentifier(type: "dns", value: $0) }
        let orderPayload = try Self.json(["identifiers": identifiers])
        let created = try await self.post(directory.newOrder, kid: kid, payload: orderPayload)
        guard let orderURL = created.header("Location") else {
            throw .unexpectedResponse(url: directory.newOrder, detail: "the new order has no Location header")
        }
        var order: AcmeOrder = try Self.decode(created, url: directory.newOrder)
        self.logger.info("ACME order created", metadata: ["acme.order": "\(orderURL)", "acme.names": "\(names.joined(separator: ","))"])

        for authorizationURL in order.authorizations {
            try await self.authorize(authorizationURL, kid: kid, responder: responder)
        }

        order = try await self.poll(orderURL, kid: kid, waitingFor: "ready", as: AcmeOrder.self) { (order: AcmeOrder) throws(AcmeError) -> Bool in
            switch order.status {
            case "ready", "valid": return true
            case "pending", "processing": return false
            default: throw .orderFailed(url: orderURL, status: order.status, problem: order.error)
            }
        }
        if order.status == "ready" {
            let csr: [UInt8]
            do { csr = try certificateKey.certificateSigningRequest(names: names) } catch { throw .localFailure("\(error)") }
            let finalized = try await self.post(order.finalize, kid: kid, payload: try Self.json(["csr": Base64URL.encode(csr)]))
            order = try Self.decode(finalized, url: order.finalize)
            order = try await self.poll(orderURL, kid: kid, waitingFor: "valid", as: AcmeOrder.self) { (order: AcmeOrder) throws(AcmeError) -> Bool in
                switch order.status {
                case "valid": return true
                case "processing", "ready": return false
                default: throw .orderFailed(url: orderURL, status: order.status, problem: order.error)
                }
            }
        }
        guard let certificateURL = order.certificate else {
            throw .unexpectedResponse(url: orderURL, detail: "the valid order has no certificate URL")
        }
        let download = try await self.post(certificateURL, kid: kid, payload: nil, accept: "application/pem-certificate-chain")
        do {
            let issued = try IssuedCertificate(names: names, chainPEM: download.text)
            self.logger.info("ACME certificate issued", metadata: [
                "acme.names": "\(names.joined(separator: ","))", "tls.issuer": "\(issued.issuer)", "tls.not_after": "\(issued.notAfter)",
            ])
            return issued
        } catch {
            throw .unexpectedResponse(url: certificateURL, detail: "the certificate chain does not parse: \(error)")
        }
    }

    // MARK: Steps

    private func loadDirectory() async throws(AcmeError) -> AcmeDirectory {
        if let directory { return directory }
        let response = try await self.send(HTTPRequest(method: "GET", url: self.directoryURL))
        guard response.isSuccess else {
            throw .refused(url: self.directoryURL, status: response.status, problem: Self.problem(response))
        }
        let directory: AcmeDirectory = try Self.decode(response, url: self.directoryURL)
        self.directory = directory
        return directory
    }

    /// Registers the account key (or finds its account: newAccount answers 200 for a known key).
    private func account(_ directory: AcmeDirectory) async throws(AcmeError) -> String {
        if let accountURL { return accountURL }
        var payload: [String: AnyEncodable] = ["termsOfServiceAgreed": AnyEncodable(true)]
        if !self.contact.isEmpty { payload["contact"] = AnyEncodable(self.contact) }
        let response = try await self.post(directory.newAccount, kid: nil, payload: try Self.json(payload))
        guard let location = response.header("Location") else {
            throw .unexpectedResponse(url: directory.newAccount, detail: "the account has no Location header")
        }
        self.accountURL = location
        self.logger.debug("ACME account ready", metadata: ["acme.account": "\(location)"])
        return location
    }

    private func authorize(_ url: String, kid: String, responder: any AcmeChallengeResponder) async throws(AcmeError) {
        let authorization: AcmeAuthorization = try Self.decode(try await self.post(url, kid: kid, payload: nil), url: url)
        let name = authorization.identifier.value
        if authorization.status == "valid" { return }
        guard authorization.status == "pending" else {
            throw .challengeFailed(name: name, problem: authorization.challenges.compactMap(\.error).first)
        }
        guard let challenge = authorization.challenges.first(where: { $0.type == "http-01" }), let token = challenge.token else {
            throw .noHTTPChallenge(name: name, offered: authorization.challenges.map(\.type))
        }
        await responder.publish(token: token, keyAuthorization: self.keyAuthorization(for: token), for: name)
        do throws(AcmeError) {
            _ = try await self.post(challenge.url, kid: kid, payload: Array("{}".utf8))
            _ = try await self.poll(url, kid: kid, waitingFor: "valid", as: AcmeAuthorization.self) { (current: AcmeAuthorization) throws(AcmeError) -> Bool in
                switch current.status {
                case "valid": return true
                case "pending": return false
                default:
                    let problem = current.challenges.first(where: { $0.type == "http-01" })?.error
                    throw .challengeFailed(name: name, problem: problem)
                }
            }
            await responder.withdraw(token: token)
        } catch {
            await responder.withdraw(token: token)
            throw error
        }
    }

    /// POST-as-GETs `url` until `done` says so, waiting what Retry-After asks (1 s when it says nothing).
    private func poll<T: Decodable>(
        _ url: String, kid: String, waitingFor what: String, as type: T.Type, done: (T) throws(AcmeError) -> Bool
    ) async throws(AcmeError) -> T {
        let clock = ContinuousClock()
        let deadline = clock.now + self.retry.pollLimit
        while true {
            let response = try await self.post(url, kid: kid, payload: nil)
            let value: T = try Self.decode(response, url: url)
            if try done(value) { return value }
            let wait = min(Self.retryAfter(response) ?? .seconds(1), self.retry.maxDelay)
            guard clock.now + wait < deadline else {
                throw .timedOut(url: url, waitingFor: what, seconds: Int(self.retry.pollLimit.components.seconds))
            }
            try? await Task.sleep(for: wait)
        }
    }

    // MARK: Requests

    /// A signed POST; `payload` nil is a POST-as-GET. Retries a rejected nonce at once, and the CA's
    /// outages (transport errors, 5xx) with backoff.
    private func post(_ url: String, kid: String?, payload: [UInt8]?, accept: String? = nil) async throws(AcmeError) -> HTTPResponse {
        var badNonces = 0
        var attempt = 0
        while true {
            attempt += 1
            let nonce = try await self.takeNonce()
            let body: [UInt8]
            do {
                body = try self.jws.sign(url: url, nonce: nonce, kid: kid, payload: payload)
            } catch {
                throw .localFailure("signing the request to \(url) failed: \(error)")
            }
            var headers = [HTTPHeader("Content-Type", "application/jose+json")]
            if let accept { headers.append(HTTPHeader("Accept", accept)) }
            let response: HTTPResponse
            do {
                response = try await self.http.send(HTTPRequest(method: "POST", url: url, headers: headers, body: body))
            } catch {
                guard attempt < self.retry.attempts else { throw .unreachable(url: url, attempts: attempt, reason: "\(error)") }
                try await self.backoff(attempt, url: url, reason: "\(error)", retryAfter: nil)
                continue
            }
            if let fresh = response.header("Replay-Nonce") { self.nonces.append(fresh) }
            if response.isSuccess { return response }
            let problem = Self.problem(response)
            switch problem.shortType {
            case "badNonce" where badNonces < 10:
                // The CA may reject any nonce (RFC 8555 6.5); the answer carried a fresh one.
                badNonces += 1
                attempt -= 1
                continue
            case "rateLimited":
                throw .rateLimited(url: url, problem: problem, retryAfter: Self.retryAfter(response))
            default:
                if response.status >= 500, attempt < self.retry.attempts {
                    try await self.backoff(attempt, url: url, reason: "status \(response.status): \(problem)", retryAfter: Self.retryAfter(response))
                    continue
                }
                throw .refused(url: url, status: response.status, problem: problem)
            }
        }
    }

    /// An unsigned request (the directory, newNonce), retried like `post`.
    private func send(_ request: HTTPRequest) async throws(AcmeError) -> HTTPResponse {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let response = try await self.http.send(request)
                if response.status >= 500, attempt < self.retry.attempts {
                    try await self.backoff(attempt, url: request.url, reason: "status \(response.status)", retryAfter: Self.retryAfter(response))
                    continue
                }
                return response
            } catch {
                guard attempt < self.retry.attempts else { throw .unreachable(url: request.url, attempts: attempt, reason: "\(error)") }
                try await self.backoff(attempt, url: request.url, reason: "\(error)", retryAfter: nil)
            }
        }
    }

    private func backoff(_ attempt: Int, url: String, reason: String, retryAfter: Duration?) async throws(AcmeError) {
        let delay = max(self.retry.delay(afterAttempt: attempt), min(retryAfter ?? .zero, self.retry.maxDelay))
        self.logger.info("ACME request failed, retrying", metadata: [
            "acme.url": "\(url)", "error": "\(reason)", "attempt": "\(attempt)", "retry.in": "\(delay)",
        ])
        do { try await Task.sleep(for: delay) } catch { throw .localFailure("cancelled while waiting to retry \(url)") }
    }

    private func takeNonce() async throws(AcmeError) -> String {
        if !self.nonces.isEmpty { return self.nonces.removeFirst() }
        let directory = try await self.loadDirectory()
        let response = try await self.send(HTTPRequest(method: "HEAD", url: directory.newNonce))
        guard let nonce = response.header("Replay-Nonce") else {
            throw .unexpectedResponse(url: directory.newNonce, detail: "no Replay-Nonce header (status \(response.status))")
        }
        return nonce
    }

    // MARK: Helpers

    static func problem(_ response: HTTPResponse) -> AcmeProblem {
        (try? JSONDecoder().decode(AcmeProblem.self, from: Data(response.body)))
            ?? AcmeProblem(detail: "status \(response.status): \(String(response.text.prefix(200)))", status: response.status)
    }

    static func decode<T: Decodable>(_ response: HTTPResponse, url: String) throws(AcmeError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(response.body))
        } catch {
            throw .unexpectedResponse(url: url, detail: "\(T.self) does not decode: \(error)")
        }
    }

    static func json(_ value: some Encodable) throws(AcmeError) -> [UInt8] {
        do { return Array(try JSONEncoder().encode(value)) } catch { throw .localFailure("\(error)") }
    }

    /// Retry-After as seconds or as an HTTP date.
    static func retryAfter(_ response: HTTPResponse) -> Duration? {
        guard let value = response.header("Retry-After")?.trimmingCharacters(in: .whitespaces) else { return nil }
        if let seconds = Int(value) { return .seconds(max(0, seconds)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .seconds(max(0, Int(date.timeIntervalSinceNow.rounded(.up))))
    }
}

/// A JSON value of any Encodable type, for small mixed payloads.
struct AnyEncodable: Encodable {
    private let encodeValue: (any Encoder) throws -> Void
    init(_ value: some Encodable) { self.encodeValue = value.encode(to:) }
    func encode(to encoder: any Encoder) throws { try self.encodeValue(encoder) }
}
