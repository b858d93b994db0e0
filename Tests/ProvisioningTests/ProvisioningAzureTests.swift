import CloudFakes
import Foundation
@testable import Provisioning
import Testing

/// The Azure backend against a local fake of the documented endpoints: the Microsoft identity
/// platform's client-credentials token endpoint and Resource Manager's PUT/GET/DELETE of resource
/// groups, public IPs, NSGs, virtual networks, NICs and VMs.
@Suite("Azure backend against a fake Resource Manager")
struct ProvisioningAzureTests {
    static func backend(_ fake: ProvisioningFakeCloud, secret: String = FakeResourceManager.clientSecret) throws -> AzureBackend {
        var settings = FakeResourceManager.environment(url: fake.url, clientSecret: secret)
        settings["WARREN_RELEASE_URL"] = "https://releases.example.com/warren.tar.gz"
        var configuration = try AzureBackend.Configuration(settings: BackendSettings(settings, environment: [:]))
        configuration.pollInterval = .milliseconds(20)
        configuration.waitTimeout = .seconds(10)
        return AzureBackend(configuration: configuration)
    }

    @Test func createListDelete() async throws {
        let arm = FakeResourceManager(meshPort: 7946)
        let fake = try await ProvisioningFakeCloud { arm.respond($0) }
        defer { Task { await fake.shutdown() } }
        let backend = try Self.backend(fake)
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
        let arm = FakeResourceManager(meshPort: 7946)
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
