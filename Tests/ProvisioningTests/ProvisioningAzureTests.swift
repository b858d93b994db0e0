import CloudFakes
import Foundation
@testable import Provisioning
import Testing

/// The Azure backend against a local fake of the documented endpoints: the Microsoft identity
/// platform's client-credentials token endpoint and Resource Manager's PUT/GET/DELETE of resource
/// groups, public IPs, NSGs, virtual networks, NICs and VMs.
@Suite("Azure backend against a fake Resource Manager")
struct ProvisioningAzureTests {
    static let sha256 = String(repeating: "5e", count: 32)

    static func backend(_ fake: ProvisioningFakeCloud, secret: String = FakeResourceManager.clientSecret, sshKey: String? = nil) throws -> AzureBackend {
        var settings = FakeResourceManager.environment(url: fake.url, clientSecret: secret)
        settings["WARREN_RELEASE_URL"] = "https://releases.example.com/warren.tar.gz"
        settings["WARREN_RELEASE_SHA256"] = sha256
        if let sshKey { settings["AZURE_SSH_PUBLIC_KEY"] = sshKey }
        var configuration = try AzureBackend.Configuration(settings: BackendSettings(settings, environment: [:]))
        configuration.pollInterval = .milliseconds(20)
        configuration.waitTimeout = .seconds(10)
        configuration.retry = Retrying(attempts: 4, initialDelay: .milliseconds(5), maxDelay: .milliseconds(20))
        return AzureBackend(configuration: configuration)
    }

    static func linuxConfiguration(_ request: ProvisioningFakeCloud.Request?) -> [String: Any] {
        let os = (request?.json?["properties"] as? [String: Any])?["osProfile"] as? [String: Any]
        return os?["linuxConfiguration"] as? [String: Any] ?? [:]
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
        // The static address, known once the public IP exists, is written into the script: the
        // metadata service does not report a Standard SKU address.
        let expected = try FirstBootScript(releaseURL: "https://releases.example.com/warren.tar.gz", releaseSHA256: Self.sha256, spec: spec,
                                           publicAddress: .literal("20.1.2.3"))
        #expect(script == expected.text)
        #expect(!script.contains("169.254.169.254"))

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

    /// Without a key of the user's, the VM still carries a key (an Ed25519 one nobody holds the
    /// private half of) and password login off: a profile Azure accepts (the fake refuses one
    /// with neither, as Azure does). With one, that key.
    @Test(arguments: [nil, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@laptop"])
    func theVMCarriesAValidLinuxProfile(sshKey: String?) async throws {
        let arm = FakeResourceManager(meshPort: 7946)
        let fake = try await ProvisioningFakeCloud { arm.respond($0) }
        defer { Task { await fake.shutdown() } }
        let backend = try Self.backend(fake, sshKey: sshKey)
        _ = try await backend.create(GatewaySpec(name: "warren-gateway-keen-newt", joinToken: "t", meshPort: 7946)) { _ in }
        #expect(arm.violations == [])
        let linux = Self.linuxConfiguration(fake.requests.first { $0.method == "PUT" && $0.path.contains("virtualMachines") })
        #expect(linux["disablePasswordAuthentication"] as? Bool == true)
        let keys = (linux["ssh"] as? [String: Any])?["publicKeys"] as? [[String: Any]] ?? []
        #expect(keys.count == 1)
        #expect(keys.first?["path"] as? String == "/home/warren/.ssh/authorized_keys")
        let keyData = try #require(keys.first?["keyData"] as? String)
        if let sshKey { #expect(keyData == sshKey) } else { #expect(keyData.hasPrefix("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI")) }
        // Two creations without a key get two different keys: nothing is reused or kept.
        if sshKey == nil { #expect(AzureBackend.ephemeralSSHKey() != AzureBackend.ephemeralSSHKey()) }
    }

    /// The fake refuses what Azure refuses: a Linux profile with no key and password login off, a
    /// key at another path than the admin's authorized_keys.
    @Test func theFakeRefusesAProfileWithoutAnyAuthentication() async throws {
        let arm = FakeResourceManager(meshPort: 7946)
        let refusal = arm.linuxProfileRefusal(["adminUsername": "warren", "linuxConfiguration": ["disablePasswordAuthentication": true]])
        #expect(refusal?.status == 400)
        #expect(refusal?.body.contains("Authentication using either SSH or by user name and password must be enabled") == true)
        #expect(arm.linuxProfileRefusal(["adminUsername": "warren", "linuxConfiguration": ["disablePasswordAuthentication": true,
            "ssh": ["publicKeys": [["path": "/root/.ssh/authorized_keys", "keyData": AzureBackend.ephemeralSSHKey()]]]]])?.status == 400)
        #expect(arm.linuxProfileRefusal(["adminUsername": "warren", "linuxConfiguration": ["disablePasswordAuthentication": true,
            "ssh": ["publicKeys": [["path": "/home/warren/.ssh/authorized_keys", "keyData": AzureBackend.ephemeralSSHKey()]]]]]) == nil)
    }

    @Test func createSucceedsThroughThrottlingServerErrorsAndNotFoundAfterCreate() async throws {
        let faults = FaultInjection(every: 3, limit: 6, notFoundReads: 1)
        let arm = FakeResourceManager(meshPort: 7946, faults: faults)
        let fake = try await ProvisioningFakeCloud { arm.respond($0) }
        defer { Task { await fake.shutdown() } }
        let backend = try Self.backend(fake)
        let gateway = try await backend.create(GatewaySpec(name: "warren-gateway-calm-hare", joinToken: "t", meshPort: 7946)) { _ in }
        #expect(gateway.address == "20.1.2.3")
        #expect(Set(faults.faults) == [.throttle, .serverError], "429s with Retry-After and 503s were answered, and retried")
        #expect(faults.notFoundCount >= 2, "reads of new resources answered 404 and were waited out")
        #expect(arm.violations == [])
        try await backend.delete(gateway) { _ in }
        #expect(arm.isEmpty)
    }

    /// A resource group of the gateway's name exists: the creation is refused before anything is
    /// made, and the group (with what it holds) is left alone: no PUT, no DELETE.
    @Test func anExistingResourceGroupIsRefusedNotAdopted() async throws {
        let arm = FakeResourceManager(meshPort: 7946)
        arm.seedResourceGroup("warren-gateway-old-owl")
        let fake = try await ProvisioningFakeCloud { arm.respond($0) }
        defer { Task { await fake.shutdown() } }
        await #expect {
            _ = try await Self.backend(fake).create(GatewaySpec(name: "warren-gateway-old-owl", joinToken: "t", meshPort: 7946)) { _ in }
        } throws: { error in
            "\(error)".contains("a resource group named warren-gateway-old-owl exists already") && "\(error)".contains("--name")
        }
        #expect(!fake.requests.contains { $0.method == "PUT" || $0.method == "DELETE" })
        #expect(arm.exists("/subscriptions/\(FakeResourceManager.subscription)/resourceGroups/warren-gateway-old-owl/providers/Microsoft.Storage/storageAccounts/keepme"))
    }

    /// The VM is refused half-way (a quota): everything made before goes (the group), the cause in
    /// Azure's `details` is in the message, and another group is untouched.
    @Test func aCreateFailingHalfWayLeavesNothingAndNamesTheCause() async throws {
        let arm = FakeResourceManager(meshPort: 7946)
        arm.seedResourceGroup("someone-elses-group")
        arm.refuseVMs()
        let fake = try await ProvisioningFakeCloud { arm.respond($0) }
        defer { Task { await fake.shutdown() } }
        let events = ProvisioningAWSTests.Events()
        await #expect {
            _ = try await Self.backend(fake).create(GatewaySpec(name: "warren-gateway-lost-elk", joinToken: "t", meshPort: 7946)) { events.append($0) }
        } throws: { error in
            let text = "\(error)"
            return text.contains("quota") && text.contains("Cause: QuotaExceeded: Approved Standard BS Family Cores quota: 0")
        }
        #expect(events.all.contains(.deleted(kind: "resource group", id: "warren-gateway-lost-elk")))
        #expect(!arm.exists("/subscriptions/\(FakeResourceManager.subscription)/resourceGroups/warren-gateway-lost-elk"))
        #expect(arm.exists("/subscriptions/\(FakeResourceManager.subscription)/resourceGroups/someone-elses-group/providers/Microsoft.Storage/storageAccounts/keepme"))
        #expect(fake.requests.filter { $0.method == "DELETE" }.map(\.path) == ["/subscriptions/\(FakeResourceManager.subscription)/resourceGroups/warren-gateway-lost-elk"])
    }

    /// A clean-up that fails is reported with what may be left, not swallowed.
    @Test func aFailedCleanUpIsReported() async throws {
        let arm = FakeResourceManager(meshPort: 7946)
        arm.refuseVMs()
        let fake = try await ProvisioningFakeCloud { request in
            request.method == "DELETE" ? .json(409, ["error": ["code": "ScopeLocked", "message": "The scope is locked."]]) : arm.respond(request)
        }
        defer { Task { await fake.shutdown() } }
        await #expect {
            _ = try await Self.backend(fake).create(GatewaySpec(name: "warren-gateway-stuck-yak", joinToken: "t", meshPort: 7946)) { _ in }
        } throws: { error in
            guard case ProvisioningError.cleanUpFailed(let cause, let cleanUp, let left) = error else { return false }
            return cause.contains("quota") && cleanUp.contains("ScopeLocked") && left.contains("resourceGroup warren-gateway-stuck-yak")
        }
    }

    @Test func capacityErrorSaysWhatToTry() {
        let error = AzureBackend.apiError(code: "SkuNotAvailable", message: "The requested size is not available", location: "westeurope", vmSize: "Standard_B1s")
        #expect("\(error)".contains("no Standard_B1s capacity in westeurope"))
        #expect("\(error)".contains("--instance-type"))
    }
}
