// What can go wrong while getting a certificate, worded for the person who reads the log.

/// An RFC 8555 problem document (`application/problem+json`), as the CA sent it.
public struct AcmeProblem: Sendable, Hashable, Codable, CustomStringConvertible {
    public var type: String?
    public var detail: String?
    public var status: Int?
    public var subproblems: [AcmeProblem]?

    public init(type: String? = nil, detail: String? = nil, status: Int? = nil, subproblems: [AcmeProblem]? = nil) {
        self.type = type
        self.detail = detail
        self.status = status
        self.subproblems = subproblems
    }

    /// The error type without the `urn:ietf:params:acme:error:` prefix (`badNonce`, `rateLimited`, ...).
    public var shortType: String {
        guard let type else { return "unknown" }
        let prefix = "urn:ietf:params:acme:error:"
        return type.hasPrefix(prefix) ? String(type.dropFirst(prefix.count)) : type
    }

    public var description: String {
        var text = "\(self.shortType): \(self.detail ?? "(no detail)")"
        for sub in self.subproblems ?? [] { text += "; \(sub.shortType): \(sub.detail ?? "(no detail)")" }
        return text
    }
}

/// Why an ACME exchange failed.
public enum AcmeError: Error, Sendable, CustomStringConvertible {
    /// The CA could not be reached (connection refused, DNS, TLS, timeout) after the retries.
    case unreachable(url: String, attempts: Int, reason: String)
    /// The CA answered with an error problem document.
    case refused(url: String, status: Int, problem: AcmeProblem)
    /// The CA's rate limit was hit; `retryAfter` is what its Retry-After header asked for.
    case rateLimited(url: String, problem: AcmeProblem, retryAfter: Duration?)
    /// The CA could not validate the HTTP-01 challenge for `name`.
    case challengeFailed(name: String, problem: AcmeProblem?)
    /// The CA offered no HTTP-01 challenge for `name` (the only kind a gateway answers).
    case noHTTPChallenge(name: String, offered: [String])
    /// The order ended `invalid` (or another state that cannot progress).
    case orderFailed(url: String, status: String, problem: AcmeProblem?)
    /// An answer that does not follow RFC 8555 (missing header, bad JSON, bad certificate).
    case unexpectedResponse(url: String, detail: String)
    /// An authorization or order stayed pending past the poll limit.
    case timedOut(url: String, waitingFor: String, seconds: Int)
    /// The CSR or the JWS could not be made.
    case localFailure(String)

    public var description: String {
        switch self {
        case .unreachable(let url, let attempts, let reason):
            return "the ACME CA at \(url) could not be reached (\(attempts) attempts, last: \(reason)); "
                + "check the directory URL and that the CA is up, the order is retried later"
        case .refused(let url, let status, let problem):
            return "the ACME CA refused \(url) with status \(status): \(problem)"
        case .rateLimited(let url, let problem, let retryAfter):
            let when = retryAfter.map { "retry after \($0.components.seconds) s" } ?? "retry later"
            return "the ACME CA rate-limited \(url): \(problem); \(when) (the order waits that long, "
                + "or use a staging directory for tests)"
        case .challengeFailed(let name, let problem):
            let said = problem.map { " (the CA said: \($0))" } ?? ""
            switch problem?.shortType {
            case "dns":
                return "the name \(name) does not resolve\(said); point its DNS (A/AAAA) at this gateway's public address"
            case "connection", "unauthorized", "incorrectResponse":
                return "the CA could not fetch http://\(name)/.well-known/acme-challenge/ from this gateway\(said); "
                    + "make \(name) resolve to this gateway and its port 80 reachable from the internet"
            default:
                return "the CA could not validate \(name)\(said)"
            }
        case .noHTTPChallenge(let name, let offered):
            return "the ACME CA offers no http-01 challenge for \(name) (only \(offered.joined(separator: ", "))); "
                + "use a CA that validates over HTTP"
        case .orderFailed(let url, let status, let problem):
            return "the ACME order \(url) ended \(status)" + (problem.map { ": \($0)" } ?? "")
        case .unexpectedResponse(let url, let detail):
            return "the ACME CA's answer to \(url) is not what RFC 8555 says: \(detail)"
        case .timedOut(let url, let what, let seconds):
            return "\(url) was still not \(what) after \(seconds) s; the order is retried later"
        case .localFailure(let detail):
            return "the ACME request could not be made: \(detail)"
        }
    }

    /// How long the CA asked to wait before trying again, when it said.
    public var retryAfter: Duration? {
        if case .rateLimited(_, _, let after) = self { return after }
        return nil
    }
}
