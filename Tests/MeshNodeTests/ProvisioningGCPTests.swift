import Foundation
@testable import MeshNode
import Testing

/// The GCP backend against a local fake of the documented endpoints: Google's OAuth 2.0 token
/// endpoint (JWT bearer grant) and Compute Engine v1's firewalls, instances and operations.
@Suite("GCP backend against a fake Compute Engine")
struct ProvisioningGCPTests {
    static let project = "proj-1"
    static let zone = "europe-west1-b"
    static let token = "gcp-access-token"
    static let email = "warren@proj-1.iam.gserviceaccount.com"

    /// Compute Engine's behaviour, as the REST reference shows it: inserts and deletes answer an
    /// Operation (RUNNING), which GET .../operations/NAME then reports DONE; GET of a missing
    /// resource answers 404 with `errors[].reason` "notFound".
    final class FakeCompute: @unchecked Sendable {  // all state behind `lock`
        private let lock = NSLock()
        private var firewalls: [String: [String: Any]] = [:]
        private var instances: [String: [String: Any]] = [:]
        private var problems: [String] = []
        private var assertions: [String] = []
        private var operationCount = 0

        var violations: [String] { lock.withLock { problems } }
        var jwtAssertions: [String] { lock.withLock { assertions } }
        var isEmpty: Bool { lock.withLock { firewalls.isEmpty && instances.isEmpty } }
        func note(_ problem: String) { lock.withLock { problems.append(problem) } }

        func operation(zonal: Bool, type: String) -> [String: Any] {
            let name = lock.withLock { operationCount += 1; return "operation-\(operationCount)" }
            var op: [String: Any] = ["kind": "compute#operation", "name": name, "operationType": type, "status": "RUNNING", "progress": 0]
            if zonal { op["zone"] = "https://www.googleapis.com/compute/v1/projects/\(ProvisioningGCPTests.project)/zones/\(ProvisioningGCPTests.zone)" }
            return op
        }

        static let notFound: ProvisioningFakeCloud.Response = .json(404, ["error": ["code": 404, "message": "The resource was not found", "errors": [["reason": "notFound", "domain": "global"]]]])

        func respond(_ request: ProvisioningFakeCloud.Request) -> ProvisioningFakeCloud.Response {
            if request.path == "/token" {
                let form = request.form
                guard request.method == "POST", form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer", let jwt = form["assertion"] else {
                    return .json(400, ["error": "invalid_grant", "error_description": "Invalid grant"])
                }
                lock.withLock { assertions.append(jwt) }
                return .json(200, ["access_token": ProvisioningGCPTests.token, "expires_in": 3599, "token_type": "Bearer"])
            }
            guard request.headers["authorization"] == "Bearer \(ProvisioningGCPTests.token)" else {
                note("\(request.method) \(request.path) without the bearer token")
                return .json(401, ["error": ["code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"]])
            }
            let base = "/compute/v1/projects/\(ProvisioningGCPTests.project)"
            let zonal = "\(base)/zones/\(ProvisioningGCPTests.zone)"
            let path = request.path
            switch (request.method, path) {
            case ("POST", "\(base)/global/firewalls"):
                guard let body = request.json, let name = body["name"] as? String else { note("firewall without a name"); return .json(400, [:]) }
                let allowed = body["allowed"] as? [[String: Any]] ?? []
                let tcp = allowed.first { $0["IPProtocol"] as? String == "tcp" }?["ports"] as? [String] ?? []
                let udp = allowed.first { $0["IPProtocol"] as? String == "udp" }?["ports"] as? [String] ?? []
                if !tcp.contains("7946") || !tcp.contains("1024-65535") || udp != ["7946"] { note("firewall ports tcp \(tcp) udp \(udp)") }
                if body["direction"] as? String != "INGRESS" || body["sourceRanges"] as? [String] != ["0.0.0.0/0"] || body["targetTags"] as? [String] != [name] {
                    note("firewall shape \(body)")
                }
                lock.withLock { firewalls[name] = body }
                return .json(200, operation(zonal: false, type: "insert"))
            case ("POST", "\(zonal)/instances"):
                guard var body = request.json, let name = body["name"] as? String else { note("instance without a name"); return .json(400, [:]) }
                if body["machineType"] as? String != "zones/\(ProvisioningGCPTests.zone)/machineTypes/e2-micro" { note("machineType \(body["machineType"] ?? "")") }
                let disk = (body["disks"] as? [[String: Any]])?.first
                if disk?["boot"] as? Bool != true || ((disk?["initializeParams"] as? [String: Any])?["sourceImage"] as? String)?.contains("ubuntu-2204") != true { note("boot disk \(disk ?? [:])") }
                let access = ((body["networkInterfaces"] as? [[String: Any]])?.first?["accessConfigs"] as? [[String: Any]])?.first
                if access?["type"] as? String != "ONE_TO_ONE_NAT" { note("no external address requested") }
                let items = (body["metadata"] as? [String: Any])?["items"] as? [[String: Any]] ?? []
                if !items.contains(where: { $0["key"] as? String == "startup-script" }) { note("no startup-script metadata") }
                if (body["tags"] as? [String: Any])?["items"] as? [String] != [name] { note("network tag missing") }
                body["status"] = "RUNNING"
                body["networkInterfaces"] = [["network": "global/networks/default", "accessConfigs": [["type": "ONE_TO_ONE_NAT", "name": "External NAT", "natIP": "34.1.2.3"]]]]
                let stored = body
                lock.withLock { instances[name] = stored }
                return .json(200, operation(zonal: true, type: "insert"))
            case ("GET", _) where path.hasPrefix("\(base)/global/operations/") || path.hasPrefix("\(zonal)/operations/"):
                return .json(200, ["kind": "compute#operation", "name": String(path.split(separator: "/").last ?? ""), "status": "DONE", "progress": 100])
            case ("GET", "\(zonal)/instances"):
                if request.query["filter"] != "labels.warren-gateway:*" { note("list filter \(request.query)") }
                return .json(200, ["kind": "compute#instanceList", "items": lock.withLock { Array(instances.values) }])
            case ("GET", _) where path.hasPrefix("\(zonal)/instances/"):
                let name = String(path.split(separator: "/").last ?? "")
                guard let instance = lock.withLock({ instances[name] }) else { return Self.notFound }
                return .json(200, instance)
            case ("DELETE", _) where path.hasPrefix("\(zonal)/instances/"):
                let name = String(path.split(separator: "/").last ?? "")
                guard lock.withLock({ instances.removeValue(forKey: name) }) != nil else { return Self.notFound }
                return .json(200, operation(zonal: true, type: "delete"))
            case ("DELETE", _) where path.hasPrefix("\(base)/global/firewalls/"):
                let name = String(path.split(separator: "/").last ?? "")
                guard lock.withLock({ firewalls.removeValue(forKey: name) }) != nil else { return Self.notFound }
                return .json(200, operation(zonal: false, type: "delete"))
            default:
                note("unexpected \(request.method) \(path)")
                return Self.notFound
            }
        }
    }

    static func openssl(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    static func base64URLDecode(_ text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }

    @Test func createListDeleteWithASignedJWT() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("warren-gcp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let keyPath = directory.appendingPathComponent("key.pem").path
        let publicPath = directory.appendingPathComponent("pub.pem").path
        #expect(try Self.openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", keyPath]) == 0)
        #expect(try Self.openssl(["pkey", "-in", keyPath, "-pubout", "-out", publicPath]) == 0)

        let compute = FakeCompute()
        let fake = try await ProvisioningFakeCloud { compute.respond($0) }
        defer { Task { await fake.shutdown() } }
        // A service-account key file, as the console downloads it.
        let keyFile: [String: Any] = [
            "type": "service_account", "project_id": Self.project, "private_key_id": "abc",
            "private_key": try String(contentsOfFile: keyPath, encoding: .utf8), "client_email": Self.email,
            "client_id": "123", "token_uri": "\(fake.url)/token",
        ]
        let settings = BackendSettings([
            "GOOGLE_CREDENTIALS_JSON": String(decoding: try JSONSerialization.data(withJSONObject: keyFile), as: UTF8.self),
            "GCP_ZONE": Self.zone, "GCP_COMPUTE_ENDPOINT": "\(fake.url)/compute/v1", "WARREN_RELEASE_URL": "https://releases.example.com/warren",
        ], environment: [:])
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
        #expect(claims["iss"] as? String == Self.email)
        #expect(claims["scope"] as? String == "https://www.googleapis.com/auth/compute")
        #expect(claims["aud"] as? String == "\(fake.url)/token")
        let iat = try #require(claims["iat"] as? Int)
        #expect(claims["exp"] as? Int == iat + 3600)
        try Data("\(parts[0]).\(parts[1])".utf8).write(to: directory.appendingPathComponent("input"))
        try #require(Self.base64URLDecode(parts[2])).write(to: directory.appendingPathComponent("sig"))
        #expect(try Self.openssl(["dgst", "-sha256", "-verify", publicPath, "-signature", directory.appendingPathComponent("sig").path,
                                  directory.appendingPathComponent("input").path]) == 0)

        // The startup-script is the first-boot script.
        let insert = try #require(fake.requests.first { $0.method == "POST" && $0.path.hasSuffix("/instances") }?.json)
        let items = try #require((insert["metadata"] as? [String: Any])?["items"] as? [[String: Any]])
        let script = try #require(items.first { $0["key"] as? String == "startup-script" }?["value"] as? String)
        #expect(script == (try FirstBootScript(releaseURL: "https://releases.example.com/warren", spec: spec, publicAddress: .gcpMetadata)).text)
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
