import Foundation
@testable import MeshNode
import Testing

/// The Azure backend against a local fake of the documented endpoints: the Microsoft identity
/// platform's client-credentials token endpoint and Resource Manager's PUT/GET/DELETE of resource
/// groups, public IPs, NSGs, virtual networks, NICs and VMs.
@Suite("Azure backend against a fake Resource Manager")
struct ProvisioningAzureTests {
    static let tenant = "11111111-2222-3333-4444-555555555555"
    static let subscription = "sub-0001"
    static let token = "fake-arm-token"

    /// Resource Manager's behaviour, as the REST reference shows it: PUT answers 201 with the
    /// resource (provisioningState "Updating" for the VM, which must then be polled), GET answers
    /// the resource or 404 `ResourceNotFound`, DELETE of a group answers 202 and removes everything in it.
    final class FakeARM: @unchecked Sendable {  // all state behind `lock`
        private let lock = NSLock()
        private var store: [String: [String: Any]] = [:]  // lower-cased path → resource
        private var problems: [String] = []
        private var polls = 0

        var violations: [String] { lock.withLock { problems } }
        var vmPolls: Int { lock.withLock { polls } }
        var isEmpty: Bool { lock.withLock { store.isEmpty } }
        func note(_ problem: String) { lock.withLock { problems.append(problem) } }
        func withResources<T>(_ body: (inout [String: [String: Any]]) -> T) -> T { lock.withLock { body(&store) } }

        func respond(_ request: ProvisioningFakeCloud.Request) -> ProvisioningFakeCloud.Response {
            if request.path == "/\(ProvisioningAzureTests.tenant)/oauth2/v2.0/token" {
                let form = request.form
                guard request.method == "POST", form["grant_type"] == "client_credentials", form["client_id"] == "client-1",
                      form["client_secret"] == "secret-1", form["scope"] == "https://management.azure.com/.default" else {
                    return .json(401, ["error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."])
                }
                return .json(200, ["token_type": "Bearer", "expires_in": 3599, "access_token": ProvisioningAzureTests.token])
            }
            guard request.headers["authorization"] == "Bearer \(ProvisioningAzureTests.token)" else {
                note("\(request.method) \(request.path) without the bearer token")
                return .json(401, ["error": ["code": "InvalidAuthenticationToken", "message": "The access token is invalid."]])
            }
            let path = request.path.lowercased()
            let expectedVersion: String
            if path.contains("/providers/microsoft.compute/") { expectedVersion = AzureBackend.computeAPIVersion }
            else if path.contains("/providers/microsoft.network/") { expectedVersion = AzureBackend.networkAPIVersion }
            else { expectedVersion = AzureBackend.resourceGroupAPIVersion }
            if request.query["api-version"] != expectedVersion { note("\(request.method) \(request.path) with api-version \(request.query["api-version"] ?? "none")") }
            guard path.hasPrefix("/subscriptions/\(ProvisioningAzureTests.subscription)/") else {
                return .json(404, ["error": ["code": "SubscriptionNotFound", "message": "The subscription could not be found."]])
            }

            switch request.method {
            case "PUT":
                guard var body = request.json, body["location"] as? String == "westeurope" else {
                    note("PUT \(request.path) without a JSON body with the location")
                    return .json(400, ["error": ["code": "InvalidRequestContent", "message": "bad body"]])
                }
                checkShape(path, body)
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
                return .json(201, stored)
            case "GET" where path.hasSuffix("/resourcegroups"):
                if request.query["$filter"] != "tagName eq 'warren-gateway'" { note("list without the tag filter: \(request.query)") }
                let groups = withResources { all in all.filter { $0.key.split(separator: "/").count == 4 }.map(\.value) }
                return .json(200, ["value": groups])
            case "GET":
                guard var resource = withResources({ $0[path] }) else {
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

        /// The body fields the REST reference requires for each kind of resource.
        func checkShape(_ path: String, _ body: [String: Any]) {
            let properties = body["properties"] as? [String: Any] ?? [:]
            if path.contains("/publicipaddresses/") {
                if properties["publicIPAllocationMethod"] as? String != "Static" { note("public IP not static") }
            } else if path.contains("/networksecuritygroups/") {
                let rules = properties["securityRules"] as? [[String: Any]] ?? []
                let ports = rules.compactMap { ($0["properties"] as? [String: Any])?["destinationPortRange"] as? String }
                if !ports.contains("7946") || !ports.contains("1024-65535") { note("NSG rules miss ports: \(ports)") }
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
            }
        }
    }

    static func backend(_ fake: ProvisioningFakeCloud, secret: String = "secret-1") -> AzureBackend {
        var configuration = AzureBackend.Configuration(tenantID: tenant, clientID: "client-1", clientSecret: secret, subscriptionID: subscription,
                                                       location: "westeurope", releaseURL: "https://releases.example.com/warren.tar.gz")
        configuration.authorityHost = fake.url
        configuration.resourceManager = fake.url
        configuration.pollInterval = .milliseconds(20)
        configuration.waitTimeout = .seconds(10)
        return AzureBackend(configuration: configuration)
    }

    @Test func createListDelete() async throws {
        let arm = FakeARM()
        let fake = try await ProvisioningFakeCloud { arm.respond($0) }
        defer { Task { await fake.shutdown() } }
        let backend = Self.backend(fake)
        let spec = GatewaySpec(name: "warren-gateway-swift-otter", joinToken: "wrn1-token", meshPort: 7946)

        let gateway = try await backend.create(spec) { _ in }
        #expect(gateway.address == "20.1.2.3")
        #expect(gateway.status == "Succeeded")
        #expect(gateway.resources["resourceGroup"] == spec.name)
        #expect(arm.violations == [])
        #expect(arm.vmPolls >= 2, "the VM's provisioning was polled until it succeeded")

        // The order the REST API needs: group, then what the NIC refers to, then the NIC, then the VM.
        let puts = fake.requests.filter { $0.method == "PUT" }.map { String($0.path.split(separator: "/").dropFirst(5).first ?? "group") }
        #expect(puts == ["group", "Microsoft.Network", "Microsoft.Network", "Microsoft.Network", "Microsoft.Network", "Microsoft.Compute"])

        // The VM's customData is the first-boot script, base64.
        let vm = try #require(fake.requests.first { $0.method == "PUT" && $0.path.contains("virtualMachines") }?.json)
        let customData = try #require(((vm["properties"] as? [String: Any])?["osProfile"] as? [String: Any])?["customData"] as? String)
        let script = String(decoding: try #require(Data(base64Encoded: customData)), as: UTF8.self)
        let expected = try FirstBootScript(releaseURL: "https://releases.example.com/warren.tar.gz", spec: spec, publicAddress: .azureMetadata)
        #expect(script == expected.text)

        let listed = try await backend.list()
        #expect(listed.map(\.name) == [spec.name])
        #expect(listed.first?.address == "20.1.2.3")

        try await backend.delete(gateway) { _ in }
        #expect(arm.isEmpty)
        #expect(try await backend.list().isEmpty)
        #expect(arm.violations == [])
    }

    @Test func badSecretIsAnActionableError() async throws {
        let arm = FakeARM()
        let fake = try await ProvisioningFakeCloud { arm.respond($0) }
        defer { Task { await fake.shutdown() } }
        await #expect {
            _ = try await Self.backend(fake, secret: "wrong").create(GatewaySpec(name: "warren-gateway-a-b", joinToken: "t", meshPort: 7946)) { _ in }
        } throws: { error in
            "\(error)".contains("Azure rejected the service principal (invalid_client): check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET")
                && "\(error)".contains("AADSTS7000215")
        }
        #expect(fake.requests.count == 1)
    }

    @Test func capacityErrorSaysWhatToTry() {
        let error = AzureBackend.apiError(code: "SkuNotAvailable", message: "The requested size is not available", location: "westeurope", vmSize: "Standard_B1s")
        #expect("\(error)".contains("no Standard_B1s capacity in westeurope"))
        #expect("\(error)".contains("--instance-type"))
    }
}
