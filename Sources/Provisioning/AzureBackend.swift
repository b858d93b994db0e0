public import Curl
import Foundation
import Sodium

/// Gateways on Azure, through Azure Resource Manager's REST API with a service principal: one
/// resource group per gateway (so deleting the group deletes everything), holding a public IP,
/// a network security group, a virtual network, a NIC and a `Standard_B1s` Ubuntu 22.04 VM whose
/// customData is the first-boot script.
public struct AzureBackend: GatewayBackend {
    public struct Configuration: Sendable {
        public var tenantID: String
        public var clientID: String
        public var clientSecret: String
        public var subscriptionID: String
        public var location: String
        public var releaseURL: String
        /// The SHA-256 the first boot checks the download against (WARREN_RELEASE_SHA256,
        /// `gateway create --release-sha256`); a creation without one is refused.
        public var releaseSHA256: String?
        public var vmSize = "Standard_B1s"
        /// Overrides `https://login.microsoftonline.com` (AZURE_AUTHORITY_HOST).
        public var authorityHost = "https://login.microsoftonline.com"
        /// Overrides `https://management.azure.com` (AZURE_RESOURCE_MANAGER_URL).
        public var resourceManager = "https://management.azure.com"
        /// An SSH public key for the `warren` admin user; without one, the VM gets a key made for
        /// it whose private half is dropped, so nobody can log in (the VM needs no one). Password
        /// login is off either way.
        public var sshPublicKey: String?
        public var pollInterval: Duration = .seconds(5)
        /// How calls refused for a passing reason (throttling, a 5xx) are retried.
        var retry = Retrying()
        public var waitTimeout: Duration = .seconds(600)

        public init(tenantID: String, clientID: String, clientSecret: String, subscriptionID: String, location: String, releaseURL: String) {
            self.tenantID = tenantID
            self.clientID = clientID
            self.clientSecret = clientSecret
            self.subscriptionID = subscriptionID
            self.location = location
            self.releaseURL = releaseURL
        }

        /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_SUBSCRIPTION_ID`,
        /// `AZURE_LOCATION` (default eastus), `WARREN_RELEASE_URL`, and the optional
        /// `AZURE_AUTHORITY_HOST`, `AZURE_RESOURCE_MANAGER_URL`, `AZURE_SSH_PUBLIC_KEY`.
        public init(settings: BackendSettings) throws {
            try settings.requireAll([
                (["AZURE_TENANT_ID"], "the Azure tenant"), (["AZURE_CLIENT_ID"], "the Azure service principal's client ID"),
                (["AZURE_CLIENT_SECRET"], "the Azure service principal's secret"), (["AZURE_SUBSCRIPTION_ID"], "the Azure subscription"),
                (["WARREN_RELEASE_URL"], "the URL of the Warren release gateways install"),
            ], backend: "azure")
            self.init(
                tenantID: try settings.required("AZURE_TENANT_ID", purpose: "the Azure tenant"),
                clientID: try settings.required("AZURE_CLIENT_ID", purpose: "the Azure service principal's client ID"),
                clientSecret: try settings.required("AZURE_CLIENT_SECRET", purpose: "the Azure service principal's secret"),
                subscriptionID: try settings.required("AZURE_SUBSCRIPTION_ID", purpose: "the Azure subscription"),
                location: settings["AZURE_LOCATION"] ?? "eastus",
                releaseURL: try settings.required("WARREN_RELEASE_URL", purpose: "the URL of the Warren release gateways install")
            )
            if let host = settings["AZURE_AUTHORITY_HOST"] { authorityHost = host }
            if let arm = settings["AZURE_RESOURCE_MANAGER_URL"] { resourceManager = arm }
            sshPublicKey = settings["AZURE_SSH_PUBLIC_KEY"]
            releaseSHA256 = settings["WARREN_RELEASE_SHA256"]
        }
    }

    public static let resourceGroupAPIVersion = "2021-04-01"
    public static let networkAPIVersion = "2023-09-01"
    public static let computeAPIVersion = "2024-03-01"
    /// The tag on every resource group made here, valued with the gateway's name.
    public static let tagKey = "warren-gateway"

    public let configuration: Configuration
    let client: CloudJSONClient
    public var kind: String { "azure" }

    public init(configuration: Configuration, http: HTTPClient = HTTPClient()) {
        self.configuration = configuration
        self.client = CloudJSONClient(backend: "Azure", http: http, retry: configuration.retry)
    }

    // MARK: - GatewayBackend

    public func create(_ spec: GatewaySpec, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws -> ProvisionedGateway {
        try GatewayName.validate(spec.name)
        let location = spec.region ?? configuration.location
        _ = try FirstBootScript.validSHA256(configuration.releaseSHA256)  // refused before anything is made
        let token = try await accessToken()
        let group = spec.name
        let tags = [Self.tagKey: spec.name]
        // A PUT of an existing group succeeds (it updates it), and the clean-up of a failed creation
        // deletes the whole group: so a group that exists already is refused here, never adopted.
        let existing = try await call("GET", resourceGroupPath(group), apiVersion: Self.resourceGroupAPIVersion, token: token)
        if existing.status != 404 {
            try check(existing, "GET", resourceGroupPath(group))
            throw ProvisioningError.api(backend: "azure", code: "ResourceGroupExists", message:
                "a resource group named \(group) exists already in subscription \(configuration.subscriptionID): a gateway gets a group of its own, deleted with it, so Warren never uses one it did not make. Choose another --name, or delete the old gateway with `warren gateway delete \(group)`")
        }
        let pending = ProvisionedGateway(name: spec.name, backend: kind, region: location, address: nil, status: "Creating", resources: [:])
        return try await creating(pending, progress: progress, cleanUp: { made in try await self.removeRecorded(made, progress: progress) }) { made in
            _ = try await put(resourceGroupPath(group), apiVersion: Self.resourceGroupAPIVersion, token: token,
                              body: ["location": location, "tags": tags])
            // Everything below lives in this group: deleting it removes exactly what was made here.
            made.resources["resourceGroup"] = group
            progress(.created(kind: "resource group", id: group))

            let network = "\(resourceGroupPath(group))/providers/Microsoft.Network"
            let ip = try await put("\(network)/publicIPAddresses/\(spec.name)-ip", apiVersion: Self.networkAPIVersion, token: token, body: [
                "location": location, "tags": tags, "sku": ["name": "Standard"],
                "properties": ["publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"],
            ])
            made.resources["publicIP"] = ip.string("id") ?? "\(spec.name)-ip"
            progress(.created(kind: "public IP", id: "\(spec.name)-ip"))
            // A Standard SKU static address is allocated with the resource, and the instance
            // metadata service does not report it (it reports Basic SKU addresses only:
            // https://learn.microsoft.com/en-us/azure/virtual-machines/instance-metadata-service
            // "Standard SKU public IPs aren't supported"): the script gets it written in.
            guard let address = try await publicAddress(group: group, name: spec.name, token: token) else {
                throw unexpected("the public IP of \(spec.name) has no address")
            }
            made.address = address
            let script = try FirstBootScript(releaseURL: configuration.releaseURL, releaseSHA256: configuration.releaseSHA256, spec: spec,
                                             publicAddress: .literal(address))

            let nsg = try await put("\(network)/networkSecurityGroups/\(spec.name)-nsg", apiVersion: Self.networkAPIVersion, token: token, body: [
                "location": location, "tags": tags, "properties": ["securityRules": Self.securityRules(spec)],
            ])
            made.resources["networkSecurityGroup"] = nsg.string("id") ?? "\(spec.name)-nsg"
            progress(.created(kind: "network security group", id: "\(spec.name)-nsg"))

            let vnet = try await put("\(network)/virtualNetworks/\(spec.name)-vnet", apiVersion: Self.networkAPIVersion, token: token, body: [
                "location": location, "tags": tags,
                "properties": [
                    "addressSpace": ["addressPrefixes": ["10.0.0.0/16"]],
                    "subnets": [["name": "default", "properties": ["addressPrefix": "10.0.0.0/24"]]],
                ],
            ])
            made.resources["virtualNetwork"] = vnet.string("id") ?? "\(spec.name)-vnet"
            let subnetID = vnet.object("properties")?.array("subnets").first?.string("id") ?? "\(vnet.string("id") ?? "")/subnets/default"
            progress(.created(kind: "virtual network", id: "\(spec.name)-vnet"))

            let nic = try await put("\(network)/networkInterfaces/\(spec.name)-nic", apiVersion: Self.networkAPIVersion, token: token, body: [
                "location": location, "tags": tags,
                "properties": [
                    "networkSecurityGroup": ["id": nsg.string("id") ?? ""],
                    "ipConfigurations": [[
                        "name": "ipconfig1",
                        "properties": [
                            "subnet": ["id": subnetID],
                            "publicIPAddress": ["id": ip.string("id") ?? ""],
                            "privateIPAllocationMethod": "Dynamic",
                        ],
                    ]],
                ],
            ])
            made.resources["networkInterface"] = nic.string("id") ?? "\(spec.name)-nic"
            progress(.created(kind: "network interface", id: "\(spec.name)-nic"))

            let vmPath = "\(resourceGroupPath(group))/providers/Microsoft.Compute/virtualMachines/\(spec.name)"
            let answer = try await call("PUT", vmPath, apiVersion: Self.computeAPIVersion, token: token,
                                        body: vmBody(spec, location: location, tags: tags, nicID: nic.string("id") ?? "", customData: script.text))
            try check(answer, "PUT", vmPath)
            made.resources["vm"] = spec.name
            progress(.created(kind: "virtual machine", id: spec.name))
            progress(.booting(instance: spec.name))

            let vm = try await waitForProvisioning(vmPath, apiVersion: Self.computeAPIVersion, token: token)
            made.status = vm.object("properties")?.string("provisioningState") ?? "Succeeded"
            progress(.addressAssigned(address))
        }
    }

    public func delete(_ gateway: ProvisionedGateway, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws {
        var gateway = gateway
        if gateway.resources["resourceGroup"] == nil { gateway.resources["resourceGroup"] = gateway.name }
        guard try await removeRecorded(gateway, progress: progress) else { throw ProvisioningError.notFound(gateway.name) }
    }

    /// Deletes the resource group `gateway` records (which holds everything made for it), if any;
    /// whether there was one to delete.
    @discardableResult
    func removeRecorded(_ gateway: ProvisionedGateway, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws -> Bool {
        guard let group = gateway.resources["resourceGroup"] else { return false }
        let token = try await accessToken()
        let path = resourceGroupPath(group)
        let answer = try await call("DELETE", path, apiVersion: Self.resourceGroupAPIVersion, token: token)
        if answer.status == 404 { return false }
        try check(answer, "DELETE", path)
        // Deletion runs in the background (202); the group is gone when GET answers 404.
        _ = try await waitFor("resource group \(group) to be deleted") {
            let answer = try await self.call("GET", path, apiVersion: Self.resourceGroupAPIVersion, token: token)
            if answer.status == 404 { return true }
            try self.check(answer, "GET", path)
            return nil
        }
        progress(.deleted(kind: "resource group", id: group))
        return true
    }

    public func list() async throws -> [ProvisionedGateway] {
        let token = try await accessToken()
        let filter = "tagName eq '\(Self.tagKey)'".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let groups = try await call("GET", "/subscriptions/\(configuration.subscriptionID)/resourcegroups", apiVersion: Self.resourceGroupAPIVersion,
                                    token: token, query: "&$filter=\(filter)")
        var gateways: [ProvisionedGateway] = []
        for group in groups.json.array("value") {
            guard let groupName = group.string("name"), let name = group.object("tags")?.string(Self.tagKey) else { continue }
            let vm = try await call("GET", "\(resourceGroupPath(groupName))/providers/Microsoft.Compute/virtualMachines/\(name)",
                                    apiVersion: Self.computeAPIVersion, token: token)
            let status = vm.status == 404 ? "missing" : vm.json.object("properties")?.string("provisioningState") ?? "unknown"
            let address = try? await publicAddress(group: groupName, name: name, token: token, wait: false)
            gateways.append(ProvisionedGateway(name: name, backend: kind, region: group.string("location") ?? configuration.location,
                                               address: address, status: status, resources: ["resourceGroup": groupName, "vm": name]))
        }
        return gateways
    }

    // MARK: - Pieces

    static func securityRules(_ spec: GatewaySpec) -> [[String: Any]] {
        var rules: [(String, String, String)] = [("warren-mesh-tcp", "Tcp", "\(spec.meshPort)"), ("warren-mesh-udp", "Udp", "\(spec.meshPort)")]
        rules += spec.servicePorts.enumerated().map { index, range in
            ("warren-service-\(index + 1)", "Tcp", range.count == 1 ? "\(range.lowerBound)" : "\(range.lowerBound)-\(range.upperBound)")
        }
        return rules.enumerated().map { index, rule in
            ["name": rule.0, "properties": [
                "protocol": rule.1, "sourcePortRange": "*", "destinationPortRange": rule.2,
                "sourceAddressPrefix": "*", "destinationAddressPrefix": "*",
                "access": "Allow", "priority": 100 + index * 10, "direction": "Inbound",
            ] as [String: Any]]
        }
    }

    func vmBody(_ spec: GatewaySpec, location: String, tags: [String: String], nicID: String, customData: String) -> [String: Any] {
        var osProfile: [String: Any] = [
            "computerName": spec.name, "adminUsername": Self.adminUser,
            "customData": Data(customData.utf8).base64EncodedString(),
        ]
        // Azure refuses a Linux profile with neither a key nor password login ("Authentication
        // using either SSH or by user name and password must be enabled in Linux profile"); the
        // key's path must be the admin user's authorized_keys (LinuxConfiguration and
        // SshPublicKey in https://learn.microsoft.com/en-us/rest/api/compute/virtual-machines/create-or-update).
        // Password login stays off either way; without a key of the user's, an Ed25519 key pair is
        // made here and its private half dropped, so nobody can log in (the VM needs no one).
        // Azure takes Ed25519 keys beside RSA (https://learn.microsoft.com/en-us/azure/virtual-machines/linux/create-ssh-keys-detailed,
        // "Supported SSH key formats").
        let key = configuration.sshPublicKey ?? Self.ephemeralSSHKey()
        let linux: [String: Any] = [
            "disablePasswordAuthentication": true,
            "ssh": ["publicKeys": [["path": "/home/\(Self.adminUser)/.ssh/authorized_keys", "keyData": key]]],
        ]
        osProfile["linuxConfiguration"] = linux
        return [
            "location": location, "tags": tags,
            "properties": [
                "hardwareProfile": ["vmSize": spec.instanceType ?? configuration.vmSize],
                "storageProfile": [
                    "imageReference": ["publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2", "version": "latest"],
                    "osDisk": ["createOption": "FromImage", "deleteOption": "Delete", "managedDisk": ["storageAccountType": "Standard_LRS"]],
                ],
                "osProfile": osProfile,
                "networkProfile": ["networkInterfaces": [["id": nicID, "properties": ["deleteOption": "Delete"]]]],
            ] as [String: Any],
        ]
    }

    static let adminUser = "warren"

    /// The OpenSSH public key (`ssh-ed25519 AAAA…`) of a fresh Ed25519 key pair whose private
    /// half is dropped at once.
    static func ephemeralSSHKey() -> String {
        func field(_ bytes: [UInt8]) -> [UInt8] {
            let n = UInt32(bytes.count)
            return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + bytes
        }
        let blob = field(Array("ssh-ed25519".utf8)) + field(Ed25519.KeyPair.generate().publicKey)
        return "ssh-ed25519 \(Data(blob).base64EncodedString()) warren-gateway-no-login"
    }

    /// The address of the gateway's public IP; with `wait`, polls until Azure has assigned it.
    func publicAddress(group: String, name: String, token: String, wait: Bool = true) async throws -> String? {
        let path = "\(resourceGroupPath(group))/providers/Microsoft.Network/publicIPAddresses/\(name)-ip"
        let read = { () async throws -> String? in
            let answer = try await self.call("GET", path, apiVersion: Self.networkAPIVersion, token: token)
            // Right after its PUT, a resource may not be readable yet: not found is "not yet" then.
            if answer.status == 404 { if wait { return nil } else { throw ProvisioningError.notFound(name) } }
            try self.check(answer, "GET", path)
            return answer.json.object("properties")?.string("ipAddress")
        }
        return wait ? try await waitFor("the public IP of \(name)", read) : try await read()
    }

    func resourceGroupPath(_ group: String) -> String {
        "/subscriptions/\(configuration.subscriptionID)/resourceGroups/\(group)"
    }

    // MARK: - ARM calls

    /// A client-credentials token for Resource Manager (Microsoft identity platform v2.0).
    func accessToken() async throws -> String {
        let url = "\(configuration.authorityHost)/\(configuration.tenantID)/oauth2/v2.0/token"
        let answer = try await client.send("POST", url, bearer: nil, form: [
            ("grant_type", "client_credentials"),
            ("client_id", configuration.clientID),
            ("client_secret", configuration.clientSecret),
            ("scope", "https://management.azure.com/.default"),
        ])
        guard answer.status == 200, let token = answer.json.string("access_token") else {
            let code = answer.json.string("error") ?? "HTTP\(answer.status)"
            throw ProvisioningError.api(backend: "azure", code: code, message:
                "Azure rejected the service principal (\(code)): check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (is the secret expired?). Azure said: \(answer.json.string("error_description") ?? answer.text)")
        }
        return token
    }

    func call(_ method: String, _ path: String, apiVersion: String, token: String, body: [String: Any]? = nil, query: String = "") async throws -> CloudJSONClient.Answer {
        try await client.send(method, "\(configuration.resourceManager)\(path)?api-version=\(apiVersion)\(query)", bearer: token, json: body)
    }

    /// PUT (create or update), then wait until the resource's provisioning succeeded.
    func put(_ path: String, apiVersion: String, token: String, body: [String: Any]) async throws -> [String: Any] {
        let answer = try await call("PUT", path, apiVersion: apiVersion, token: token, body: body)
        try check(answer, "PUT", path)
        let state = answer.json.object("properties")?.string("provisioningState")
        if state == nil || state == "Succeeded" { return answer.json }
        return try await waitForProvisioning(path, apiVersion: apiVersion, token: token)
    }

    func waitForProvisioning(_ path: String, apiVersion: String, token: String) async throws -> [String: Any] {
        try await waitFor("\(path.split(separator: "/").last ?? "") to be provisioned") {
            let answer = try await self.call("GET", path, apiVersion: apiVersion, token: token)
            if answer.status == 404 { return nil }  // not readable yet right after its PUT
            try self.check(answer, "GET", path)
            switch answer.json.object("properties")?.string("provisioningState") {
            case "Succeeded", nil: return answer.json
            case "Failed", "Canceled":
                throw ProvisioningError.api(backend: "azure", code: "ProvisioningFailed", message: "Azure failed to provision \(path); see the activity log of the resource group in the Azure portal")
            default: return nil
            }
        }
    }

    func check(_ answer: CloudJSONClient.Answer, _ method: String, _ path: String) throws {
        guard !(200..<300).contains(answer.status) else { return }
        let error = answer.json.object("error")
        let code = error?.string("code") ?? "HTTP\(answer.status)"
        var message = error?.string("message") ?? answer.text
        // The cause is often only in `details` (e.g. InvalidTemplateDeployment around the real
        // refusal): https://learn.microsoft.com/en-us/rest/api/compute/virtual-machines/create-or-update, CloudError/ApiError.
        let details = Self.causes(error ?? [:])
        if !details.isEmpty { message += " Cause: " + details.joined(separator: "; ") }
        throw Self.apiError(code: code, message: message, location: configuration.location, vmSize: configuration.vmSize)
    }

    /// The `code: message` of each of an error's `details` (and theirs, nested), and its `innererror`.
    static func causes(_ error: [String: Any]) -> [String] {
        var found: [String] = []
        for detail in error.array("details") {
            let text = [detail.string("code"), detail.string("message")].compactMap { $0 }.joined(separator: ": ")
            if !text.isEmpty { found.append(text) }
            found += causes(detail)
        }
        if let inner = error.object("innererror"), let message = inner.string("message") ?? inner.string("internalErrorMessage") {
            found.append(message)
        }
        return found
    }

    static func apiError(code: String, message: String, location: String, vmSize: String) -> ProvisioningError {
        let advice: String
        switch code {
        case "InvalidAuthenticationToken", "ExpiredAuthenticationToken", "AuthenticationFailed":
            advice = "Azure rejected the token (\(code)): check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
        case "AuthorizationFailed":
            advice = "the service principal may not do this (\(code)): give it the Contributor role on the subscription"
        case "SubscriptionNotFound", "InvalidSubscriptionId":
            advice = "Azure does not know the subscription (\(code)): check AZURE_SUBSCRIPTION_ID"
        case "SkuNotAvailable", "ZonalAllocationFailed", "AllocationFailed", "OverconstrainedAllocationRequest":
            advice = "Azure has no \(vmSize) capacity in \(location) right now (\(code)): try another size with --instance-type or another location with --region"
        case "OperationNotAllowed", "QuotaExceeded":
            advice = "the subscription reached a quota in \(location) (\(code)): delete unused VMs or request more quota"
        default:
            advice = "Azure refused the request (\(code))"
        }
        return .api(backend: "azure", code: code, message: "\(advice). Azure said: \(message)")
    }

    func unexpected(_ message: String) -> ProvisioningError {
        .unexpectedResponse(backend: "Azure", message: message)
    }

    func waitFor<T>(_ what: String, _ poll: () async throws -> T?) async throws -> T {
        try await Polling(interval: configuration.pollInterval, timeout: configuration.waitTimeout).waitFor(what, poll)
    }
}
