import Foundation
public import MeshNode
import Provisioning

/// Resource Manager's behaviour, as the REST reference shows it: PUT answers 201 with a new
/// resource, 200 with an existing one (which it updates: a PUT of an existing resource group
/// succeeds, https://learn.microsoft.com/en-us/rest/api/resources/resource-groups/create-or-update),
/// provisioningState "Updating" for the VM, which must then be polled; GET answers the resource or
/// 404 `ResourceNotFound`; DELETE of a group answers 202 and removes everything in it. `faults`
/// adds throttling (429 with Retry-After), 503s, and reads of a new resource answering 404.
public final class FakeResourceManager: @unchecked Sendable {  // all state behind `lock`
    public static let tenant = "11111111-2222-3333-4444-555555555555"
    public static let subscription = "sub-0001"
    public static let clientID = "client-1"
    public static let clientSecret = "secret-1"
    public static let token = "fake-arm-token"
    /// The only location it takes.
    public static let location = "westeurope"

    private let lock = NSLock()
    private var store: [String: [String: Any]] = [:]  // lower-cased path → resource
    private var problems: [String] = []
    private var polls = 0

    /// The mesh port the firewall must open.
    let meshPort: Int
    public let faults: FaultInjection
    private var vmRefusal: (code: String, message: String, detail: String)?

    public init(meshPort: Int = AgentOptions.defaultPort, faults: FaultInjection = .none) {
        self.meshPort = meshPort
        self.faults = faults
    }

    /// Makes every VM PUT fail as a capacity shortage does: 409 with the cause in `details`.
    public func refuseVMs(code: String = "OperationNotAllowed", message: String = "Operation could not be completed as it results in exceeding approved quota.",
                          detail: String = "Approved Standard BS Family Cores quota: 0, current usage: 0, additional required: 1") {
        lock.withLock { vmRefusal = (code, message, detail) }
    }

    /// A resource group that exists before the test (someone else's), holding a storage account.
    public func seedResourceGroup(_ name: String) {
        let group = "/subscriptions/\(Self.subscription)/resourceGroups/\(name)"
        withResources {
            $0[group.lowercased()] = ["id": group, "name": name, "location": Self.location, "properties": ["provisioningState": "Succeeded"]]
            $0["\(group)/providers/Microsoft.Storage/storageAccounts/keepme".lowercased()] = ["id": "\(group)/providers/Microsoft.Storage/storageAccounts/keepme", "location": Self.location]
        }
    }

    /// Whether a resource (by its path, any case) exists.
    public func exists(_ path: String) -> Bool { withResources { $0[path.lowercased()] != nil } }

    /// What the fake was asked that the documentation does not allow.
    public var violations: [String] { lock.withLock { problems } }
    public var vmPolls: Int { lock.withLock { polls } }
    /// Whether no resource is left.
    public var isEmpty: Bool { lock.withLock { store.isEmpty } }
    func note(_ problem: String) { lock.withLock { problems.append(problem) } }
    func withResources<T>(_ body: (inout [String: [String: Any]]) -> T) -> T { lock.withLock { body(&store) } }

    public func respond(_ request: ProvisioningFakeCloud.Request) -> ProvisioningFakeCloud.Response {
        if request.path == "/\(FakeResourceManager.tenant)/oauth2/v2.0/token" {
            let form = request.form
            guard request.method == "POST", form["grant_type"] == "client_credentials", form["client_id"] == Self.clientID,
                  form["client_secret"] == Self.clientSecret, form["scope"] == "https://management.azure.com/.default" else {
                return .json(401, ["error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."])
            }
            return .json(200, ["token_type": "Bearer", "expires_in": 3599, "access_token": FakeResourceManager.token])
        }
        guard request.headers["authorization"] == "Bearer \(FakeResourceManager.token)" else {
            note("\(request.method) \(request.path) without the bearer token")
            return .json(401, ["error": ["code": "InvalidAuthenticationToken", "message": "The access token is invalid."]])
        }
        let path = request.path.lowercased()
        let expectedVersion: String
        if path.contains("/providers/microsoft.compute/") { expectedVersion = AzureBackend.computeAPIVersion }
        else if path.contains("/providers/microsoft.network/") { expectedVersion = AzureBackend.networkAPIVersion }
        else { expectedVersion = AzureBackend.resourceGroupAPIVersion }
        if request.query["api-version"] != expectedVersion { note("\(request.method) \(request.path) with api-version \(request.query["api-version"] ?? "none")") }
        guard path.hasPrefix("/subscriptions/\(FakeResourceManager.subscription)/") else {
            return .json(404, ["error": ["code": "SubscriptionNotFound", "message": "The subscription could not be found."]])
        }

        switch faults.nextFault() {
        case .throttle?:
            return ProvisioningFakeCloud.Response(status: 429, body: #"{"error":{"code":"TooManyRequests","message":"The request is being throttled."}}"#,
                                                  headers: [("Content-Type", "application/json"), ("Retry-After", "1")])
        case .serverError?:
            return .json(503, ["error": ["code": "ServiceUnavailable", "message": "The service is temporarily unavailable."]])
        case nil:
            break
        }

        switch request.method {
        case "PUT":
            guard var body = request.json, body["location"] as? String == Self.location else {
                note("PUT \(request.path) without a JSON body with the location")
                return .json(400, ["error": ["code": "InvalidRequestContent", "message": "bad body"]])
            }
            if let refusal = checkShape(path, body) { return refusal }
            if path.contains("/virtualmachines/"), let refusal = lock.withLock({ vmRefusal }) {
                return .json(409, ["error": ["code": refusal.code, "message": refusal.message,
                                             "details": [["code": "QuotaExceeded", "message": refusal.detail]]]])
            }
            let existed = withResources { $0[path] != nil }
            body["id"] = request.path
            body["name"] = String(request.path.split(separator: "/").last ?? "")
            var properties = body["properties"] as? [String: Any] ?? [:]
            properties["provisioningState"] = path.contains("/virtualmachines/") ? "Updating" : "Succeeded"
            if path.contains("/publicipaddresses/") { properties["ipAddress"] = "20.1.2.3" }
            if path.contains("/virtualnetworks/"), var subnets = properties["subnets"] as? [[String: Any]] {
                for i in subnets.indices { subnets[i]["id"] = "\(request.path)/subnets/\(subnets[i]["name"] ?? "")" }
                properties["subnets"] = subnets
            }
            body["properties"] = properties
            let stored = body
            withResources { $0[path] = stored }
            if !existed { faults.created(path) }
            return .json(existed ? 200 : 201, stored)
        case "GET" where path.hasSuffix("/resourcegroups"):
            if request.query["$filter"] != "tagName eq 'warren-gateway'" { note("list without the tag filter: \(request.query)") }
            let groups = withResources { all in all.filter { $0.key.split(separator: "/").count == 4 }.map(\.value) }
            return .json(200, ["value": groups])
        case "GET":
            guard var resource = withResources({ $0[path] }), !faults.hidesRead(of: path) else {
                return .json(404, ["error": ["code": "ResourceNotFound", "message": "The Resource '\(request.path)' was not found."]])
            }
            if path.contains("/virtualmachines/") {
                // Updating on the first poll, Succeeded after.
                let polls = lock.withLock { self.polls += 1; return self.polls }
                var properties = resource["properties"] as? [String: Any] ?? [:]
                properties["provisioningState"] = polls >= 2 ? "Succeeded" : "Updating"
                resource["properties"] = properties
            }
            return .json(200, resource)
        case "DELETE":
            guard path.split(separator: "/").count == 4 else { note("DELETE of \(request.path), not of a resource group"); return .json(400, [:]) }
            let existed = withResources { all in
                let keys = all.keys.filter { $0 == path || $0.hasPrefix(path + "/") }
                keys.forEach { all.removeValue(forKey: $0) }
                return !keys.isEmpty
            }
            return existed ? ProvisioningFakeCloud.Response(status: 202, body: "", headers: [("Location", "http://fake/operation")]) : .json(404, ["error": ["code": "ResourceGroupNotFound", "message": "not found"]])
        default:
            note("unexpected method \(request.method)")
            return .json(405, [:])
        }
    }

    /// The body fields the REST reference requires for each kind of resource; an answer as Azure's
    /// when it refuses the request.
    func checkShape(_ path: String, _ body: [String: Any]) -> ProvisioningFakeCloud.Response? {
        let properties = body["properties"] as? [String: Any] ?? [:]
        if path.contains("/publicipaddresses/") {
            if properties["publicIPAllocationMethod"] as? String != "Static" { note("public IP not static") }
        } else if path.contains("/networksecuritygroups/") {
            let rules = properties["securityRules"] as? [[String: Any]] ?? []
            let ports = rules.compactMap { ($0["properties"] as? [String: Any])?["destinationPortRange"] as? String }
            if !ports.contains("\(meshPort)") || !ports.contains("1024-65535") { note("NSG rules miss ports: \(ports)") }
            for rule in rules {
                let p = rule["properties"] as? [String: Any] ?? [:]
                if p["direction"] as? String != "Inbound" || p["access"] as? String != "Allow" || p["priority"] as? Int == nil { note("malformed rule \(rule)") }
            }
        } else if path.contains("/networkinterfaces/") {
            let config = (properties["ipConfigurations"] as? [[String: Any]])?.first?["properties"] as? [String: Any] ?? [:]
            if (config["subnet"] as? [String: Any])?["id"] as? String == nil || (config["publicIPAddress"] as? [String: Any])?["id"] as? String == nil {
                note("NIC without subnet or public IP")
            }
        } else if path.contains("/virtualmachines/") {
            let size = (properties["hardwareProfile"] as? [String: Any])?["vmSize"] as? String
            if size != "Standard_B1s" { note("VM size \(size ?? "none")") }
            let os = properties["osProfile"] as? [String: Any] ?? [:]
            if os["customData"] as? String == nil || os["adminUsername"] as? String == nil { note("VM without customData or admin user") }
            let image = (properties["storageProfile"] as? [String: Any])?["imageReference"] as? [String: Any] ?? [:]
            if image["publisher"] as? String != "Canonical" || (image["sku"] as? String)?.hasPrefix("22_04") != true { note("VM image \(image)") }
            let nics = (properties["networkProfile"] as? [String: Any])?["networkInterfaces"] as? [[String: Any]] ?? []
            if nics.first?["id"] as? String == nil { note("VM without NIC") }
            if let refusal = linuxProfileRefusal(os) { return refusal }
        }
        return nil
    }

    /// Azure's rules for a Linux VM's osProfile, from the Compute REST reference
    /// (https://learn.microsoft.com/en-us/rest/api/compute/virtual-machines/create-or-update:
    /// OSProfile, LinuxConfiguration, SshPublicKey) and its answers when they are broken: some
    /// authentication must be on; a key's path must be the admin's authorized_keys; keys are
    /// OpenSSH RSA or Ed25519 (https://learn.microsoft.com/en-us/azure/virtual-machines/linux/create-ssh-keys-detailed);
    /// a password, when given, 12 to 72 characters; customData at most 65,535 bytes decoded.
    public func linuxProfileRefusal(_ os: [String: Any]) -> ProvisioningFakeCloud.Response? {
        func invalid(_ message: String, target: String) -> ProvisioningFakeCloud.Response {
            note("VM refused: \(message)")
            return .json(400, ["error": ["code": "InvalidParameter", "message": message, "target": target]])
        }
        let user = os["adminUsername"] as? String ?? ""
        let linux = os["linuxConfiguration"] as? [String: Any] ?? [:]
        let passwordOff = linux["disablePasswordAuthentication"] as? Bool ?? false
        let keys = (linux["ssh"] as? [String: Any])?["publicKeys"] as? [[String: Any]] ?? []
        let password = os["adminPassword"] as? String
        if passwordOff && keys.isEmpty {
            return invalid("Authentication using either SSH or by user name and password must be enabled in Linux profile.", target: "linuxConfiguration")
        }
        if !passwordOff && password == nil {
            return invalid("Required parameter 'adminPassword' is missing (null).", target: "adminPassword")
        }
        if let password, !(12...72).contains(password.count) {
            return invalid("The supplied password must be between 12-72 characters long.", target: "adminPassword")
        }
        for key in keys {
            if key["path"] as? String != "/home/\(user)/.ssh/authorized_keys" {
                return invalid("Destination path for SSH public keys is currently limited to its default value /home/\(user)/.ssh/authorized_keys due to a known issue in Linux provisioning agent.", target: "linuxConfiguration.ssh.publicKeys.path")
            }
            let data = key["keyData"] as? String ?? ""
            let parts = data.split(separator: " ")
            guard parts.count >= 2, ["ssh-rsa", "ssh-ed25519"].contains(String(parts[0])), let blob = Data(base64Encoded: String(parts[1])),
                  blob.count > 4, String(decoding: blob.dropFirst(4).prefix(Int(blob[3])), as: UTF8.self) == String(parts[0]) else {
                return invalid("The value of parameter linuxConfiguration.ssh.publicKeys.keyData is invalid.", target: "linuxConfiguration.ssh.publicKeys.keyData")
            }
        }
        if let custom = os["customData"] as? String, (Data(base64Encoded: custom)?.count ?? .max) > 65_535 {
            return invalid("Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380 characters.", target: "customData")
        }
        return nil
    }
}

extension FakeResourceManager {
    /// The settings of the Azure backend (`AZURE_…`) for a service principal this fake accepts,
    /// its endpoints at `url`.
    public static func environment(url: String, clientSecret: String = FakeResourceManager.clientSecret) -> [String: String] {
        [
            "AZURE_TENANT_ID": tenant, "AZURE_CLIENT_ID": clientID, "AZURE_CLIENT_SECRET": clientSecret,
            "AZURE_SUBSCRIPTION_ID": subscription, "AZURE_LOCATION": location,
            "AZURE_AUTHORITY_HOST": url, "AZURE_RESOURCE_MANAGER_URL": url,
        ]
    }

    /// The first-boot script of the VM named `name`, from the customData it was created with.
    public func customData(ofVM name: String) -> String? {
        let vm = withResources { all in all.first { $0.key.hasSuffix("/providers/microsoft.compute/virtualmachines/\(name.lowercased())") }?.value }
        guard let encoded = ((vm?["properties"] as? [String: Any])?["osProfile"] as? [String: Any])?["customData"] as? String,
              let data = Data(base64Encoded: encoded) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
