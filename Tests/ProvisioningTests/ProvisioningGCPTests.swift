import CloudFakes
import Foundation
@testable import Provisioning
import Testing

/// The GCP backend against a local fake of the documented endpoints: Google's OAuth 2.0 token
/// endpoint (JWT bearer grant) and Compute Engine v1's firewalls, instances and operations.
@Suite("GCP backend against a fake Compute Engine")
struct ProvisioningGCPTests {
    static func base64URLDecode(_ text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }

    @Test func createListDeleteWithASignedJWT() async throws {
        let key = try ServiceAccountKey()
        defer { key.remove() }
        let directory = key.directory
        let compute = FakeComputeEngine(meshPort: 7946)
        let fake = try await ProvisioningFakeCloud { compute.respond($0) }
        defer { Task { await fake.shutdown() } }
        var environment = try FakeComputeEngine.environment(url: fake.url, key: key)
        environment["WARREN_RELEASE_URL"] = "https://releases.example.com/warren"
        environment["WARREN_RELEASE_SHA256"] = Self.sha256
        let settings = BackendSettings(environment, environment: [:])
        var configuration = try GCPBackend.Configuration(settings: settings)
        configuration.pollInterval = .milliseconds(20)
        configuration.waitTimeout = .seconds(10)
        let backend = GCPBackend(configuration: configuration)
        let spec = GatewaySpec(name: "warren-gateway-keen-lynx", joinToken: "wrn1-gcp", meshPort: 7946)

        let gateway = try await backend.create(spec) { _ in }
        #expect(gateway.address == "34.1.2.3")
        #expect(gateway.status == "RUNNING")
        #expect(compute.violations == [])

        // The JWT: RS256 header, the documented claims, and a signature openssl accepts.
        let jwt = try #require(compute.jwtAssertions.first)
        let parts = jwt.split(separator: ".")
        try #require(parts.count == 3)
        let headerBytes = try #require(Self.base64URLDecode(parts[0]))
        let header = try #require(try JSONSerialization.jsonObject(with: headerBytes) as? [String: Any])
        #expect(header["alg"] as? String == "RS256")
        let claimBytes = try #require(Self.base64URLDecode(parts[1]))
        let claims = try #require(try JSONSerialization.jsonObject(with: claimBytes) as? [String: Any])
        #expect(claims["iss"] as? String == FakeComputeEngine.email)
        #expect(claims["scope"] as? String == "https://www.googleapis.com/auth/compute")
        #expect(claims["aud"] as? String == "\(fake.url)/token")
        let iat = try #require(claims["iat"] as? Int)
        #expect(claims["exp"] as? Int == iat + 3600)
        try Data("\(parts[0]).\(parts[1])".utf8).write(to: directory.appendingPathComponent("input"))
        try #require(Self.base64URLDecode(parts[2])).write(to: directory.appendingPathComponent("sig"))
        #expect(try ServiceAccountKey.openssl(["dgst", "-sha256", "-verify", key.publicKeyPath, "-signature", directory.appendingPathComponent("sig").path,
                                  directory.appendingPathComponent("input").path]) == 0)

        // The startup-script is the first-boot script.
        let insert = try #require(fake.requests.first { $0.method == "POST" && $0.path.hasSuffix("/instances") }?.json)
        let items = try #require((insert["metadata"] as? [String: Any])?["items"] as? [[String: Any]])
        let script = try #require(items.first { $0["key"] as? String == "startup-script" }?["value"] as? String)
        #expect(script == (try FirstBootScript(releaseURL: "https://releases.example.com/warren", releaseSHA256: Self.sha256, spec: spec, publicAddress: .gcpMetadata)).text)
        // Operations were polled until DONE.
        #expect(fake.requests.contains { $0.method == "GET" && $0.path.contains("/operations/") })

        let listed = try await backend.list()
        #expect(listed.map(\.name) == [spec.name])
        #expect(listed.first?.address == "34.1.2.3")

        try await backend.delete(gateway) { _ in }
        #expect(compute.isEmpty)
        #expect(try await backend.list().isEmpty)
        await #expect(throws: ProvisioningError.notFound(spec.name)) { try await backend.delete(gateway) { _ in } }
        #expect(compute.violations == [])
    }

    static let sha256 = String(repeating: "0c", count: 32)

    /// A backend of the fake at `fake`, with fast polling and retries.
    static func backend(_ fake: ProvisioningFakeCloud, key: ServiceAccountKey) throws -> GCPBackend {
        var environment = try FakeComputeEngine.environment(url: fake.url, key: key)
        environment["WARREN_RELEASE_URL"] = "https://releases.example.com/warren"
        environment["WARREN_RELEASE_SHA256"] = sha256
        var configuration = try GCPBackend.Configuration(settings: BackendSettings(environment, environment: [:]))
        configuration.pollInterval = .milliseconds(20)
        configuration.waitTimeout = .seconds(10)
        configuration.retry = Retrying(attempts: 4, initialDelay: .milliseconds(5), maxDelay: .milliseconds(20))
        return GCPBackend(configuration: configuration)
    }

    @Test func createSucceedsThroughRateLimitsServerErrorsAndNotFoundAfterCreate() async throws {
        let key = try ServiceAccountKey()
        defer { key.remove() }
        let faults = FaultInjection(every: 3, limit: 6, notFoundReads: 2)
        let compute = FakeComputeEngine(meshPort: 7946, faults: faults)
        let fake = try await ProvisioningFakeCloud { compute.respond($0) }
        defer { Task { await fake.shutdown() } }
        let backend = try Self.backend(fake, key: key)
        let gateway = try await backend.create(GatewaySpec(name: "warren-gateway-wise-wren", joinToken: "t", meshPort: 7946)) { _ in }
        #expect(gateway.address == "34.1.2.3")
        #expect(Set(faults.faults) == [.throttle, .serverError], "403 rateLimitExceeded and 503 were answered, and retried")
        #expect(faults.notFoundCount == 2, "the new instance's first reads answered 404 and were waited out")
        #expect(compute.violations == [])
        try await backend.delete(gateway) { _ in }
        #expect(compute.isEmpty)
    }

    /// A firewall rule of the gateway's name exists (409 alreadyExists): nothing is made, nothing
    /// deleted, the rule stays.
    @Test func aDuplicateFirewallNameFailsAndLeavesTheRuleAlone() async throws {
        let key = try ServiceAccountKey()
        defer { key.remove() }
        let compute = FakeComputeEngine(meshPort: 7946)
        compute.seedFirewall("warren-gateway-old-bat")
        let fake = try await ProvisioningFakeCloud { compute.respond($0) }
        defer { Task { await fake.shutdown() } }
        await #expect {
            _ = try await Self.backend(fake, key: key).create(GatewaySpec(name: "warren-gateway-old-bat", joinToken: "t", meshPort: 7946)) { _ in }
        } throws: { error in
            guard case ProvisioningError.api(_, let code, let message) = error else { return false }
            return code == "alreadyExists" && message.contains("--name")
        }
        #expect(compute.hasFirewall("warren-gateway-old-bat"))
        #expect(!fake.requests.contains { $0.method == "DELETE" })
    }

    /// The instance's name is taken (409) after the firewall rule was made: the rule made here is
    /// deleted, the other's instance is not touched.
    @Test func aCreateFailingHalfWayRemovesOnlyWhatItMade() async throws {
        let key = try ServiceAccountKey()
        defer { key.remove() }
        let compute = FakeComputeEngine(meshPort: 7946)
        compute.seedInstance("warren-gateway-odd-cod")
        let fake = try await ProvisioningFakeCloud { compute.respond($0) }
        defer { Task { await fake.shutdown() } }
        await #expect {
            _ = try await Self.backend(fake, key: key).create(GatewaySpec(name: "warren-gateway-odd-cod", joinToken: "t", meshPort: 7946)) { _ in }
        } throws: { error in
            guard case ProvisioningError.api(_, let code, _) = error else { return false }
            return code == "alreadyExists"
        }
        #expect(!compute.hasFirewall("warren-gateway-odd-cod"), "the rule this creation made is gone")
        #expect(compute.hasInstance("warren-gateway-odd-cod"), "the instance it did not make is left")
        #expect(fake.requests.filter { $0.method == "DELETE" }.map(\.path) == ["/compute/v1/projects/\(FakeComputeEngine.project)/global/firewalls/warren-gateway-odd-cod"])
    }

    @Test func notAServiceAccountKeyIsAClearError() {
        #expect {
            _ = try GCPBackend.Configuration(serviceAccountJSON: Array(#"{"type":"authorized_user"}"#.utf8), zone: "z", releaseURL: "https://r/w")
        } throws: { error in
            "\(error)".contains("not a service-account JSON key")
        }
        #expect {
            _ = try GCPBackend.Configuration(settings: BackendSettings([:], environment: [:]))
        } throws: { error in
            "\(error)".contains("GOOGLE_APPLICATION_CREDENTIALS")
        }
    }

    @Test func capacityErrorSaysWhatToTry() {
        let error = GCPBackend.apiError(code: "ZONE_RESOURCE_POOL_EXHAUSTED", message: "The zone does not have enough resources", zone: "europe-west1-b", machineType: "e2-micro")
        #expect("\(error)".contains("no e2-micro capacity in europe-west1-b"))
        #expect("\(error)".contains("--region"))
    }
}
