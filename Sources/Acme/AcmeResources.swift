// The ACME resources a client reads (RFC 8555 section 7.1), as far as Warren uses them.

struct AcmeDirectory: Decodable, Sendable {
    var newNonce: String
    var newAccount: String
    var newOrder: String
}

struct AcmeIdentifier: Codable, Sendable {
    var type: String
    var value: String
}

struct AcmeOrder: Decodable, Sendable {
    var status: String
    var authorizations: [String]
    var finalize: String
    var certificate: String?
    var error: AcmeProblem?
}

struct AcmeChallenge: Decodable, Sendable {
    var type: String
    var url: String
    var status: String
    var token: String?
    var error: AcmeProblem?
}

struct AcmeAuthorization: Decodable, Sendable {
    var identifier: AcmeIdentifier
    var status: String
    var challenges: [AcmeChallenge]
}

/// Publishes HTTP-01 answers where the CA will fetch them: `http://NAME/.well-known/acme-challenge/TOKEN`.
public protocol AcmeChallengeResponder: Sendable {
    func publish(token: String, keyAuthorization: String, for name: String) async
    func withdraw(token: String) async
}
