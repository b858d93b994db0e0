import Foundation
public import MeshNode

/// Compute Engine's behaviour, as the REST reference shows it: inserts and deletes answer an
/// Operation (RUNNING), which GET .../operations/NAME then reports DONE; GET of a missing
/// resource answers 404 with `errors[].reason` "notFound"; an insert of a name that exists answers
/// 409 with the reason "alreadyExists"; a `requestId` (a UUID, not all zeros) seen before answers
/// the first request's operation without acting again (`requestId` in
/// https://cloud.google.com/compute/docs/reference/rest/v1/instances/insert). `faults` adds rate
/// limits (403 `rateLimitExceeded`: https://cloud.google.com/compute/docs/api/how-tos/api-rate-limits),
/// 503s, and reads of a new instance answering 404.
public final class FakeComputeEngine: @unchecked Sendable {  // all state behind `lock`
    public static let project = "proj-1"
    public static let zone = "europe-west1-b"
    public static let token = "gcp-access-token"
    public static let email = "warren@proj-1.iam.gserviceaccount.com"

    private let lock = NSLock()
    private var firewalls: [String: [String: Any]] = [:]
    private var instances: [String: [String: Any]] = [:]
    private var problems: [String] = []
    private var assertions: [String] = []
    private var operationCount = 0

    private var requestIDs: [String: [String: Any]] = [:]

    /// The mesh port the firewall must open.
    let meshPort: Int
    public let faults: FaultInjection

    public init(meshPort: Int = AgentOptions.defaultPort, faults: FaultInjection = .none) {
        self.meshPort = meshPort
        self.faults = faults
    }

    /// A firewall rule that exists before the test (someone else's).
    public func seedFirewall(_ name: String) {
        lock.withLock { firewalls[name] = ["name": name, "targetTags": ["other"]] }
    }

    /// An instance that exists before the test (someone else's).
    public func seedInstance(_ name: String) {
        lock.withLock { instances[name] = ["name": name, "status": "RUNNING"] }
    }

    public func hasFirewall(_ name: String) -> Bool { lock.withLock { firewalls[name] != nil } }
    public func hasInstance(_ name: String) -> Bool { lock.withLock { instances[name] != nil } }

    static func alreadyExists(_ path: String) -> ProvisioningFakeCloud.Response {
        .json(409, ["error": ["code": 409, "message": "The resource '\(path)' already exists",
                              "errors": [["reason": "alreadyExists", "domain": "global", "message": "The resource '\(path)' already exists"]]]])
    }

    /// What the fake was asked that the documentation does not allow.
    public var violations: [String] { lock.withLock { problems } }
    /// The JWTs presented to the token endpoint.
    public var jwtAssertions: [String] { lock.withLock { assertions } }
    /// Whether no firewall rule or instance is left.
    public var isEmpty: Bool { lock.withLock { firewalls.isEmpty && instances.isEmpty } }
    func note(_ problem: String) { lock.withLock { problems.append(problem) } }

    func operation(zonal: Bool, type: String) -> [String: Any] {
        let name = lock.withLock { operationCount += 1; return "operation-\(operationCount)" }
        var op: [String: Any] = ["kind": "compute#operation", "name": name, "operationType": type, "status": "RUNNING", "progress": 0]
        if zonal { op["zone"] = "https://www.googleapis.com/compute/v1/projects/\(FakeComputeEngine.project)/zones/\(FakeComputeEngine.zone)" }
        return op
    }

    static let notFound: ProvisioningFakeCloud.Response = .json(404, ["error": ["code": 404, "message": "The resource was not found", "errors": [["reason": "notFound", "domain": "global"]]]])

    public func respond(_ request: ProvisioningFakeCloud.Request) -> ProvisioningFakeCloud.Response {
        if request.path == "/token" {
            let form = request.form
            guard request.method == "POST", form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer", let jwt = form["assertion"] else {
                return .json(400, ["error": "invalid_grant", "error_description": "Invalid grant"])
            }
            lock.withLock { assertions.append(jwt) }
            return .json(200, ["access_token": FakeComputeEngine.token, "expires_in": 3599, "token_type": "Bearer"])
        }
        guard request.headers["authorization"] == "Bearer \(FakeComputeEngine.token)" else {
            note("\(request.method) \(request.path) without the bearer token")
            return .json(401, ["error": ["code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"]])
        }
        let base = "/compute/v1/projects/\(FakeComputeEngine.project)"
        let zonal = "\(base)/zones/\(FakeComputeEngine.zone)"
        let path = request.path
        switch faults.nextFault() {
        case .throttle?:
            return .json(403, ["error": ["code": 403, "message": "Rate Limit Exceeded",
                                         "errors": [["reason": "rateLimitExceeded", "domain": "usageLimits", "message": "Rate Limit Exceeded"]]]])
        case .serverError?:
            return .json(503, ["error": ["code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE",
                                         "errors": [["reason": "backendError", "domain": "global", "message": "The service is currently unavailable."]]]])
        case nil:
            break
        }
        // Mutations: a repeated requestId gets the first answer; a malformed one is refused.
        let requestID = request.query["requestId"]
        if request.method != "GET" {
            guard let requestID else { note("\(request.method) \(path) without a requestId: not safe to retry"); return respondOnce(request, zonal: zonal, base: base) }
            guard let uuid = UUID(uuidString: requestID), uuid != UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)) else {
                note("requestId \(requestID) is not a UUID")
                return .json(400, ["error": ["code": 400, "message": "Invalid value for field 'requestId'", "errors": [["reason": "invalid"]]]])
            }
            if let earlier = lock.withLock({ requestIDs[requestID] }) { return .json(200, earlier) }
            let response = respondOnce(request, zonal: zonal, base: base)
            if response.status == 200, let operation = try? JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any] {
                lock.withLock { requestIDs[requestID] = operation }
            }
            return response
        }
        return respondOnce(request, zonal: zonal, base: base)
    }

    func respondOnce(_ request: ProvisioningFakeCloud.Request, zonal: String, base: String) -> ProvisioningFakeCloud.Response {
        let path = request.path
        switch (request.method, path) {
        case ("POST", "\(base)/global/firewalls"):
            guard let body = request.json, let name = body["name"] as? String else { note("firewall without a name"); return .json(400, [:]) }
            let allowed = body["allowed"] as? [[String: Any]] ?? []
            let tcp = allowed.first { $0["IPProtocol"] as? String == "tcp" }?["ports"] as? [String] ?? []
            let udp = allowed.first { $0["IPProtocol"] as? String == "udp" }?["ports"] as? [String] ?? []
            if !tcp.contains("\(meshPort)") || !tcp.contains("1024-65535") || udp != ["\(meshPort)"] { note("firewall ports tcp \(tcp) udp \(udp)") }
            if body["direction"] as? String != "INGRESS" || body["sourceRanges"] as? [String] != ["0.0.0.0/0"] || body["targetTags"] as? [String] != [name] {
                note("firewall shape \(body)")
            }
            let taken = lock.withLock { () -> Bool in
                if firewalls[name] != nil { return true }
                firewalls[name] = body
                return false
            }
            if taken { return Self.alreadyExists("projects/\(FakeComputeEngine.project)/global/firewalls/\(name)") }
            return .json(200, operation(zonal: false, type: "insert"))
        case ("POST", "\(zonal)/instances"):
            guard var body = request.json, let name = body["name"] as? String else { note("instance without a name"); return .json(400, [:]) }
            if body["machineType"] as? String != "zones/\(FakeComputeEngine.zone)/machineTypes/e2-micro" { note("machineType \(body["machineType"] ?? "")") }
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
            let taken = lock.withLock { () -> Bool in
                if instances[name] != nil { return true }
                instances[name] = stored
                return false
            }
            if taken { return Self.alreadyExists("projects/\(FakeComputeEngine.project)/zones/\(FakeComputeEngine.zone)/instances/\(name)") }
            faults.created("instance/\(name)")
            return .json(200, operation(zonal: true, type: "insert"))
        case ("GET", _) where path.hasPrefix("\(base)/global/operations/") || path.hasPrefix("\(zonal)/operations/"):
            return .json(200, ["kind": "compute#operation", "name": String(path.split(separator: "/").last ?? ""), "status": "DONE", "progress": 100])
        case ("GET", "\(zonal)/instances"):
            if request.query["filter"] != "labels.warren-gateway:*" { note("list filter \(request.query)") }
            return .json(200, ["kind": "compute#instanceList", "items": lock.withLock { Array(instances.values) }])
        case ("GET", _) where path.hasPrefix("\(zonal)/instances/"):
            let name = String(path.split(separator: "/").last ?? "")
            guard let instance = lock.withLock({ instances[name] }), !faults.hidesRead(of: "instance/\(name)") else { return Self.notFound }
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

extension FakeComputeEngine {
    /// The settings of the GCP backend for `key` (a service account of this fake's project), its
    /// token endpoint and Compute Engine at `url`.
    public static func environment(url: String, key: ServiceAccountKey) throws -> [String: String] {
        ["GOOGLE_CREDENTIALS_JSON": try key.json(email: email, project: project, tokenURI: "\(url)/token"),
         "GCP_ZONE": zone, "GCP_COMPUTE_ENDPOINT": "\(url)/compute/v1"]
    }

    /// The startup-script of the instance named `name`.
    public func startupScript(ofInstance name: String) -> String? {
        let items = (lock.withLock { instances[name] }?["metadata"] as? [String: Any])?["items"] as? [[String: Any]]
        return items?.first { $0["key"] as? String == "startup-script" }?["value"] as? String
    }
}
