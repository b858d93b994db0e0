// The ACME client against a real pebble: issue, a failed challenge, the CA down.

@testable import Acme
import AcmeTestSupport
import Foundation
import NIOConcurrencyHelpers
import Testing

@Suite(.serialized)
struct AcmeClientTests {
    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func issuesACertificateThatChainsToPebblesRoot() async throws {
        let challengeHost = randomLoopback()
        let httpPort = try freePort(on: challengeHost)
        let pebble = try Pebble(challengeHost: challengeHost, httpPort: httpPort)
        defer { pebble.stop() }
        let server = ChallengeServer()
        try await server.start(host: challengeHost, port: httpPort)
        let client = AcmeClient(
            directoryURL: pebble.directoryURL, contactEmail: "ops@example.com", accountKey: try AcmeKey(),
            caBundlePath: pebble.listenerCA, retry: AcmeRetryPolicy(attempts: 3, initialDelay: .milliseconds(100), pollLimit: .seconds(30))
        )
        let names = ["app.example.test", "www.app.example.test"]
        let issued: IssuedCertificate
        do {
            issued = try await client.issue(names: names, certificateKey: try AcmeKey(), responder: server)
        } catch {
            await server.stop()
            Issue.record("\(error)\npebble log:\n\(pebble.log)")
            return
        }
        await server.stop()
        #expect(server.fetched.withLockedValue { $0 } >= 1, "pebble fetched the HTTP-01 answers from the responder")
        #expect(server.tokens.withLockedValue { $0.isEmpty }, "answers are withdrawn after validation")
        #expect(issued.issuer.contains("Pebble"))
        #expect(issued.notAfter > Date())
        #expect(issued.renewalDate > issued.notBefore && issued.renewalDate < issued.notAfter)

        // openssl checks the chain up to pebble's root, and the names.
        let folder = pebble.directory
        let root = folder.appendingPathComponent("root.pem")
        try pebble.rootPEM().write(to: root, atomically: true, encoding: .utf8)
        let chain = folder.appendingPathComponent("chain.pem")
        try issued.chainPEM.write(to: chain, atomically: true, encoding: .utf8)
        let verify = try runTool("/usr/bin/openssl", ["verify", "-CAfile", root.path, "-untrusted", chain.path, chain.path])
        #expect(verify.contains(": OK"), "openssl verify: \(verify)")
        let text = try runTool("/usr/bin/openssl", ["x509", "-in", chain.path, "-noout", "-ext", "subjectAltName"])
        for name in names { #expect(text.contains("DNS:\(name)"), "SAN: \(text)") }
    }

    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func aChallengeNobodyAnswersFailsNamingTheName() async throws {
        let challengeHost = randomLoopback()
        let httpPort = try freePort(on: challengeHost)
        let pebble = try Pebble(challengeHost: challengeHost, httpPort: httpPort)
        defer { pebble.stop() }
        // Nothing listens on the HTTP-01 port: the CA's fetch is refused.
        let client = AcmeClient(
            directoryURL: pebble.directoryURL, contactEmail: nil, accountKey: try AcmeKey(),
            caBundlePath: pebble.listenerCA, retry: AcmeRetryPolicy(attempts: 2, initialDelay: .milliseconds(50), pollLimit: .seconds(30))
        )
        let key = try AcmeKey()
        do throws(AcmeError) {
            _ = try await client.issue(names: ["nobody.example.test"], certificateKey: key, responder: ChallengeServer())
            Issue.record("an unanswered challenge was accepted")
        } catch {
            guard case .challengeFailed(let name, let problem) = error else {
                Issue.record("expected challengeFailed, got \(error)")
                return
            }
            #expect(name == "nobody.example.test")
            #expect(problem != nil)
            #expect("\(error)".contains("nobody.example.test"))
            #expect("\(error)".contains("port 80"), "the error says what to fix: \(error)")
        }
    }

    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func aCADownIsRetriedThenReported() async throws {
        let challengeHost = randomLoopback()
        let pebble = try Pebble(challengeHost: challengeHost, httpPort: try freePort(on: challengeHost))
        pebble.stopCA()
        defer { pebble.stop() }
        let client = AcmeClient(
            directoryURL: pebble.directoryURL, contactEmail: nil, accountKey: try AcmeKey(),
            caBundlePath: pebble.listenerCA, retry: AcmeRetryPolicy(attempts: 3, initialDelay: .milliseconds(20))
        )
        let key = try AcmeKey()
        do throws(AcmeError) {
            _ = try await client.issue(names: ["down.example.test"], certificateKey: key, responder: ChallengeServer())
            Issue.record("an order succeeded with the CA down")
        } catch {
            guard case .unreachable(let url, let attempts, _) = error else {
                Issue.record("expected unreachable, got \(error)")
                return
            }
            #expect(url == pebble.directoryURL)
            #expect(attempts == 3)
            #expect("\(error)".contains("could not be reached"))
        }
    }

    @Test func renewalIsTwoThirdsIntoTheValidity() {
        let start = Date(timeIntervalSince1970: 1_000_000)
        let issued = IssuedCertificate(names: ["a"], chainPEM: "", issuer: "x", notBefore: start, notAfter: start.addingTimeInterval(90 * 86400))
        #expect(issued.renewalDate == start.addingTimeInterval(60 * 86400))
    }

    @Test func backoffDoublesUpToTheCap() {
        let policy = AcmeRetryPolicy(attempts: 9, initialDelay: .seconds(1), maxDelay: .seconds(5))
        #expect((1...5).map { policy.delay(afterAttempt: $0) } == [.seconds(1), .seconds(2), .seconds(4), .seconds(5), .seconds(5)])
    }

    @Test func theThumbprintIsRFC7638s() throws {
        // RFC 7638 hashes the JWK's required members in lexicographic order, without spaces.
        let jws = AcmeJWS(key: try AcmeKey())
        #expect(jws.jwk.hasPrefix(#"{"crv":"P-256","kty":"EC","x":""#))
        #expect(jws.thumbprint.count == 43)
        #expect(!jws.thumbprint.contains("="))
    }
}

func runTool(_ executable: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}
