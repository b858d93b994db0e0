public import Curl
import Foundation
import LibCrypto

/// Gateways on Google Compute Engine, through its REST API with a service-account key (OAuth 2.0
/// JWT bearer grant, RS256): a firewall rule for the gateway's network tag, and an `e2-micro`
/// Ubuntu 22.04 instance with the first-boot script as its `startup-script`.
public struct GCPBackend: GatewayBackend {
    public struct Configuration: Sendable {
        /// The service-account key file's fields.
        public var clientEmail: String
        public var privateKeyPEM: String
        public var tokenURI: String
        public var project: String
        public var zone: String
        public var releaseURL: String
        /// The SHA-256 the first boot checks the download against (WARREN_RELEASE_SHA256,
        /// `gateway create --release-sha256`); a creation without one is refused.
        public var releaseSHA256: String?
        public var machineType = "e2-micro"
        public var imageFamily = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"
        /// Overrides `https://compute.googleapis.com/compute/v1` (GCP_COMPUTE_ENDPOINT).
        public var computeEndpoint = "https://compute.googleapis.com/compute/v1"
        public var pollInterval: Duration = .seconds(3)
        /// How calls refused for a passing reason (throttling, a 5xx) are retried.
        var retry = Retrying()
        public var waitTimeout: Duration = .seconds(300)

        public init(clientEmail: String, privateKeyPEM: String, tokenURI: String = "https://oauth2.googleapis.com/token",
                    project: String, zone: String, releaseURL: String) {
            self.clientEmail = clientEmail
            self.privateKeyPEM = privateKeyPEM
            self.tokenURI = tokenURI
            self.project = project
            self.zone = zone
            self.releaseURL = releaseURL
        }

        /// From a service-account JSON key (`client_email`, `private_key`, `token_uri`, `project_id`).
        public init(serviceAccountJSON: [UInt8], zone: String, releaseURL: String, project: String? = nil) throws {
            guard let key = try? JSONSerialization.jsonObject(with: Data(serviceAccountJSON)) as? [String: Any],
                  let email = key.string("client_email"), let pem = key.string("private_key") else {
                throw ProvisioningError.invalidConfiguration("the GCP credentials are not a service-account JSON key (no client_email or private_key): create one with `gcloud iam service-accounts keys create`")
            }
            guard let projectID = project ?? key.string("project_id") else {
                throw ProvisioningError.invalidConfiguration("the GCP project is not set: set GOOGLE_CLOUD_PROJECT")
            }
            self.init(clientEmail: email, privateKeyPEM: pem, tokenURI: key.string("token_uri") ?? "https://oauth2.googleapis.com/token",
                      project: projectID, zone: zone, releaseURL: releaseURL)
        }

        /// From `GOOGLE_APPLICATION_CREDENTIALS` (a key file's path) or `GOOGLE_CREDENTIALS_JSON`
        /// (the key itself), `GOOGLE_CLOUD_PROJECT` (default: the key's project), `GCP_ZONE`
        /// (default us-central1-a), `WARREN_RELEASE_URL`, and the optional `GCP_COMPUTE_ENDPOINT`.
        public init(settings: BackendSettings) throws {
            try settings.requireAll([
                (["GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CREDENTIALS_JSON"], "the GCP service-account key"),
                (["WARREN_RELEASE_URL"], "the URL of the Warren release gateways install"),
            ], backend: "gcp")
            let json: [UInt8]
            if let inline = settings["GOOGLE_CREDENTIALS_JSON"] {
                json = Array(inline.utf8)
            } else {
                let path = try settings.required("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CREDENTIALS_JSON", purpose: "the GCP service-account key")
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw ProvisioningError.invalidConfiguration("cannot read the GCP key file \(path) named by GOOGLE_APPLICATION_CREDENTIALS")
                }
                json = Array(data)
            }
            try self.init(serviceAccountJSON: json, zone: settings["GCP_ZONE"] ?? "us-central1-a",
                          releaseURL: try settings.required("WARREN_RELEASE_URL", purpose: "the URL of the Warren release gateways install"),
                          project: settings["GOOGLE_CLOUD_PROJECT"])
            if let endpoint = settings["GCP_COMPUTE_ENDPOINT"] { computeEndpoint = endpoint }
            releaseSHA256 = settings["WARREN_RELEASE_SHA256"]
        }
    }

    public static let scope = "https://www.googleapis.com/auth/compute"
    /// The label on every instance made here, valued with the gateway's name.
    public static let labelKey = "warren-gateway"

    public let configuration: Configuration
    let client: CloudJSONClient
    public var kind: String { "gcp" }

    public init(configuration: Configuration, http: HTTPClient = HTTPClient()) {
        self.configuration = configuration
        self.client = CloudJSONClient(backend: "Google Compute Engine", http: http, retry: configuration.retry)
    }

    // MARK: - GatewayBackend

    public func create(_ spec: GatewaySpec, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws -> ProvisionedGateway {
        try GatewayName.validate(spec.name)
        let zone = spec.region ?? configuration.zone
        let script = try FirstBootScript(releaseURL: configuration.releaseURL, releaseSHA256: configuration.releaseSHA256, spec: spec, publicAddress: .gcpMetadata)
        let token = try await accessToken()
        let pending = ProvisionedGateway(name: spec.name, backend: kind, region: zone, address: nil, status: "PROVISIONING", resources: [:])
        return try await creating(pending, progress: progress, cleanUp: { made in _ = try await self.removeRecorded(made, progress: progress) }) { made in
            // An insert of a name that exists answers 409 alreadyExists, and throws here before
            // anything is recorded: the clean-up never deletes a rule or VM it did not make.
            let firewall = try await call("POST", "\(projectPath)/global/firewalls", token: token, body: Self.firewallBody(spec), idempotent: true)
            made.resources["firewall"] = spec.name
            try await waitForOperation(firewall, token: token)
            progress(.created(kind: "firewall rule", id: spec.name))

            let insert = try await call("POST", "\(projectPath)/zones/\(zone)/instances", token: token, body: instanceBody(spec, zone: zone, script: script.text), idempotent: true)
            made.resources["instance"] = spec.name
            try await waitForOperation(insert, token: token)
            progress(.created(kind: "instance", id: spec.name))
            progress(.booting(instance: spec.name))

            let address: String = try await Polling(interval: configuration.pollInterval, timeout: configuration.waitTimeout).waitFor("instance \(spec.name) to get an external address") {
                // Right after its insert is DONE, an instance may not be readable yet: not found is "not yet".
                guard let instance = try await self.callAllowingNotFound("GET", "\(self.projectPath)/zones/\(zone)/instances/\(spec.name)", token: token) else { return nil }
                made.status = instance.string("status") ?? made.status
                return instance.array("networkInterfaces").first?.array("accessConfigs").first?.string("natIP")
            }
            made.address = address
            progress(.addressAssigned(address))
        }
    }

    public func delete(_ gateway: ProvisionedGateway, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws {
        var gateway = gateway
        if gateway.resources["instance"] == nil { gateway.resources["instance"] = gateway.name }
        if gateway.resources["firewall"] == nil { gateway.resources["firewall"] = gateway.name }
        guard try await removeRecorded(gateway, progress: progress) else { throw ProvisioningError.notFound(gateway.name) }
    }

    /// Deletes the instance and firewall rule `gateway` records, and nothing else; whether either
    /// existed.
    func removeRecorded(_ gateway: ProvisionedGateway, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws -> Bool {
        guard gateway.resources["instance"] != nil || gateway.resources["firewall"] != nil else { return false }
        let token = try await accessToken()
        let zone = gateway.region
        var found = false
        if let instance = gateway.resources["instance"],
           let operation = try await callAllowingNotFound("DELETE", "\(projectPath)/zones/\(zone)/instances/\(instance)", token: token, idempotent: true) {
            try await waitForOperation(operation, token: token)
            progress(.deleted(kind: "instance", id: instance))
            found = true
        }
        if let firewall = gateway.resources["firewall"],
           let operation = try await callAllowingNotFound("DELETE", "\(projectPath)/global/firewalls/\(firewall)", token: token, idempotent: true) {
            try await waitForOperation(operation, token: token)
            progress(.deleted(kind: "firewall rule", id: firewall))
            found = true
        }
        return found
    }

    public func list() async throws -> [ProvisionedGateway] {
        let token = try await accessToken()
        let filter = "labels.\(Self.labelKey):*".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let answer = try await call("GET", "\(projectPath)/zones/\(configuration.zone)/instances?filter=\(filter)", token: token)
        return answer.array("items").compactMap { item in
            guard let name = item.string("name") else { return nil }
            let address = item.array("networkInterfaces").first?.array("accessConfigs").first?.string("natIP")
            return ProvisionedGateway(name: item.object("labels")?.string(Self.labelKey) ?? name, backend: kind, region: configuration.zone,
                                      address: address, status: item.string("status") ?? "unknown",
                                      resources: ["instance": name, "firewall": name])
        }
    }

    // MARK: - Pieces

    var projectPath: String { "/projects/\(configuration.project)" }

    static func firewallBody(_ spec: GatewaySpec) -> [String: Any] {
        let tcp = ["\(spec.meshPort)"] + spec.servicePorts.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
        return [
            "name": spec.name,
            "description": "Warren gateway \(spec.name)",
            "network": "global/networks/default",
            "direction": "INGRESS",
            "sourceRanges": ["0.0.0.0/0"],
            "targetTags": [spec.name],
            "allowed": [["IPProtocol": "tcp", "ports": tcp], ["IPProtocol": "udp", "ports": ["\(spec.meshPort)"]]],
        ]
    }

    func instanceBody(_ spec: GatewaySpec, zone: String, script: String) -> [String: Any] {
        [
            "name": spec.name,
            "machineType": "zones/\(zone)/machineTypes/\(spec.instanceType ?? configuration.machineType)",
            "labels": [Self.labelKey: spec.name],
            "tags": ["items": [spec.name]],
            "disks": [["boot": true, "autoDelete": true, "initializeParams": ["sourceImage": configuration.imageFamily]] as [String: Any]],
            "networkInterfaces": [["network": "global/networks/default", "accessConfigs": [["name": "External NAT", "type": "ONE_TO_ONE_NAT"]]] as [String: Any]],
            "metadata": ["items": [["key": "startup-script", "value": script]]],
        ]
    }

    // MARK: - OAuth and Compute calls

    /// The signed JWT of the OAuth 2.0 JWT bearer grant (RFC 7523), valid one hour from `now`.
    func assertion(now: Date) throws -> String {
        let issued = Int(now.timeIntervalSince1970)
        let header = #"{"alg":"RS256","typ":"JWT"}"#
        let claims = try JSONSerialization.data(withJSONObject: [
            "iss": configuration.clientEmail, "scope": Self.scope, "aud": configuration.tokenURI,
            "iat": issued, "exp": issued + 3600,
        ] as [String: Any], options: [.sortedKeys])
        let signingInput = Self.base64URL(Array(header.utf8)) + "." + Self.base64URL(Array(claims))
        let signer: RSASigner
        do { signer = try RSASigner(pem: configuration.privateKeyPEM) } catch {
            throw ProvisioningError.invalidConfiguration("the private_key of the GCP service-account key is unusable: \(error)")
        }
        return signingInput + "." + Self.base64URL(try signer.sign(Array(signingInput.utf8)))
    }

    func accessToken() async throws -> String {
        let answer = try await client.send("POST", configuration.tokenURI, bearer: nil, form: [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", try assertion(now: Date())),
        ])
        guard answer.status == 200, let token = answer.json.string("access_token") else {
            let code = answer.json.string("error") ?? "HTTP\(answer.status)"
            throw ProvisioningError.api(backend: "gcp", code: code, message:
                "Google rejected the service-account key (\(code)): check GOOGLE_APPLICATION_CREDENTIALS (is the key deleted or disabled?). Google said: \(answer.json.string("error_description") ?? answer.text)")
        }
        return token
    }

    /// A Compute call. `idempotent` adds a fresh `requestId`, which the client's retries repeat:
    /// "if you make the request again with the same request ID, the server can check if original
    /// operation with the same request ID was received, and if so, will ignore the second request"
    /// (`requestId` of instances.insert, firewalls.insert and the deletes:
    /// https://cloud.google.com/compute/docs/reference/rest/v1/instances/insert).
    func call(_ method: String, _ path: String, token: String, body: [String: Any]? = nil, idempotent: Bool = false) async throws -> [String: Any] {
        let answer = try await client.send(method, url(path, idempotent: idempotent), bearer: token, json: body)
        try check(answer)
        return answer.json
    }

    func url(_ path: String, idempotent: Bool) -> String {
        guard idempotent else { return configuration.computeEndpoint + path }
        return configuration.computeEndpoint + path + (path.contains("?") ? "&" : "?") + "requestId=\(UUID().uuidString.lowercased())"
    }

    func callAllowingNotFound(_ method: String, _ path: String, token: String, idempotent: Bool = false) async throws -> [String: Any]? {
        let answer = try await client.send(method, url(path, idempotent: idempotent), bearer: token)
        if answer.status == 404 { return nil }
        try check(answer)
        return answer.json
    }

    /// Waits for a Compute operation (global or zonal) to be DONE; its error, if any, is thrown.
    func waitForOperation(_ operation: [String: Any], token: String) async throws {
        var current = operation
        _ = try await Polling(interval: configuration.pollInterval, timeout: configuration.waitTimeout).waitFor("operation \(operation.string("name") ?? "")") { () -> Bool? in
            if let error = current.object("error")?.array("errors").first {
                throw Self.apiError(code: error.string("code") ?? "OperationFailed", message: error.string("message") ?? "", zone: self.configuration.zone, machineType: self.configuration.machineType)
            }
            if current.string("status") == "DONE" { return true }
            guard let name = current.string("name") else { return true }
            let scope = current.string("zone").map { "zones/\($0.split(separator: "/").last ?? "")" } ?? "global"
            current = try await self.call("GET", "\(self.projectPath)/\(scope)/operations/\(name)", token: token)
            return nil
        }
    }

    func check(_ answer: CloudJSONClient.Answer) throws {
        guard !(200..<300).contains(answer.status) else { return }
        let error = answer.json.object("error")
        let code = error?.array("errors").first?.string("reason") ?? error?.string("status") ?? "HTTP\(answer.status)"
        throw Self.apiError(code: code, message: error?.string("message") ?? answer.text, zone: configuration.zone, machineType: configuration.machineType)
    }

    static func apiError(code: String, message: String, zone: String, machineType: String) -> ProvisioningError {
        let advice: String
        switch code {
        case "authError", "UNAUTHENTICATED", "invalid_grant":
            advice = "Google rejected the credentials (\(code)): check GOOGLE_APPLICATION_CREDENTIALS"
        case "forbidden", "PERMISSION_DENIED", "accessNotConfigured":
            advice = "the service account may not do this (\(code)): give it the Compute Admin role, and enable the Compute Engine API for the project"
        case "ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "resourceExhausted":
            advice = "Google has no \(machineType) capacity in \(zone) right now (\(code)): try another machine type with --instance-type or another zone with --region"
        case "QUOTA_EXCEEDED", "quotaExceeded":
            advice = "the project reached a quota (\(code)): delete unused instances or request more quota"
        case "alreadyExists":
            advice = "a resource of that name already exists (\(code)): delete the old gateway with `warren gateway delete` or choose another --name"
        default:
            advice = "Google refused the request (\(code))"
        }
        return .api(backend: "gcp", code: code, message: "\(advice). Google said: \(message)")
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
