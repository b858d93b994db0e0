import CloudFakes
import Foundation
import Testing

/// `warren gateway create --backend azure|gcp` end to end against the local fakes of Resource
/// Manager and Compute Engine (which check each request against the documentation), with this
/// machine playing the VM as in the AWS test: create completes when the played VM's node joins,
/// and delete leaves nothing in the fake.
@Suite(.serialized) struct GatewayCreateFakeCloudTests {
    static let releaseURL = "https://releases.example.com/warren-linux-x86_64.tar.gz"
    static let release = ["WARREN_RELEASE_URL": releaseURL, "WARREN_RELEASE_SHA256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]

    @Test func azureCreatePlaysCloudInitJoinsAndDeleteLeavesNothing() async throws {
        let arm = FakeResourceManager()
        let fake = try await ProvisioningFakeCloud { arm.respond($0) }
        let environment = FakeResourceManager.environment(url: fake.url).merging(Self.release) { $1 }
        try await Self.offPool {
            let runner = try BackgroundNode(address: "\(gatewayTestNet).70", port: 7425, foundsMesh: true)
            defer { runner.stop() }
            let played = PlayedCloudGateway(runner: runner, backend: "azure", region: FakeResourceManager.location, environment: environment,
                                            name: "gw-azure-a", domain: "azure.example.com", vmListen: "\(gatewayTestNet).70:7426")
            try played.createJoinAndDelete { arm.customData(ofVM: "gw-azure-a") }
        }
        await fake.shutdown()
        #expect(arm.isEmpty, "the resource group and everything in it are gone")
        #expect(arm.violations == [])
    }

    @Test func gcpCreatePlaysTheStartupScriptJoinsAndDeleteLeavesNothing() async throws {
        let key = try ServiceAccountKey()
        defer { key.remove() }
        let compute = FakeComputeEngine()
        let fake = try await ProvisioningFakeCloud { compute.respond($0) }
        let environment = try FakeComputeEngine.environment(url: fake.url, key: key).merging(Self.release) { $1 }
        try await Self.offPool {
            let runner = try BackgroundNode(address: "\(gatewayTestNet).71", port: 7427, foundsMesh: true)
            defer { runner.stop() }
            let played = PlayedCloudGateway(runner: runner, backend: "gcp", region: FakeComputeEngine.zone, environment: environment,
                                            name: "gw-gcp-a", domain: "gcp.example.com", vmListen: "\(gatewayTestNet).71:7428")
            try played.createJoinAndDelete { compute.startupScript(ofInstance: "gw-gcp-a") }
        }
        await fake.shutdown()
        #expect(compute.isEmpty, "the instance and the firewall rule are gone")
        #expect(compute.violations == [])
    }

    /// Blocking work (child processes, polling) on a thread of its own, off the concurrency pool.
    static func offPool(_ body: @escaping @Sendable () throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
        }
    }
}
