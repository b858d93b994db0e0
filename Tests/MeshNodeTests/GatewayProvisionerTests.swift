import Foundation
@testable import MeshNode
@testable import Link
import Gossip
import Provisioning
import NIOConcurrencyHelpers
import Testing
import Trust
import TrustTestSupport

/// The provisioner's choices and its cleanup, with a fake cloud backend and a fake mesh view.
@Suite struct GatewayProvisionerTests {
    /// A backend that makes nothing, remembering what it was asked.
    final class FakeCloud: GatewayBackend, @unchecked Sendable {
        let kind: String
        private let lock = NSLock()
        private var _created: [GatewaySpec] = []
        private var _deleted: [String] = []
        init(kind: String) { self.kind = kind }

        var created: [GatewaySpec] { lock.withLock { _created } }
        var deleted: [String] { lock.withLock { _deleted } }

        func create(_ spec: GatewaySpec, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws -> ProvisionedGateway {
            lock.withLock { _created.append(spec) }
            progress(.created(kind: "security group", id: "sg-1"))
            progress(.booting(instance: "i-1"))
            progress(.addressAssigned("203.0.113.7"))
            return ProvisionedGateway(name: spec.name, backend: kind, region: spec.region ?? "r1", address: "203.0.113.7", status: "running",
                                      resources: ["instance": "i-1", "securityGroup": "sg-1"])
        }

        func delete(_ gateway: ProvisionedGateway, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws {
            lock.withLock { _deleted.append(gateway.name) }
            progress(.deleted(kind: "instance", id: "i-1"))
        }

        func list() async throws -> [ProvisionedGateway] { [] }
    }

    /// What the fake mesh shows.
    final class FakeMesh: @unchecked Sendable {
        private let lock = NSLock()
        private var _gateways: [MeshGateway] = []
        var gateways: [MeshGateway] {
            get { lock.withLock { _gateways } }
            set { lock.withLock { _gateways = newValue } }
        }
    }

    final class Progress: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [GatewayProgress] = []
        func append(_ p: GatewayProgress) { lock.withLock { list.append(p) } }
        var steps: [GatewayProgress.Step] { lock.withLock { list.map(\.step) } }
        var messages: [String] { lock.withLock { list.map(\.message) } }
    }

    struct Setup {
        let provisioner: GatewayProvisioner
        let cloud: FakeCloud
        let mesh: FakeMesh
        let directory: String
    }

    static func setup(
        secrets: [String: String] = [:], realBackends: Bool = false,
        invite: @escaping @Sendable (TimeInterval) async throws -> String? = { _ in nil },
        removeMember: @escaping @Sendable (String) async throws -> Bool = { _ in false }
    ) throws -> Setup {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wgp-\(UUID().uuidString.prefix(8))").path
        let cloud = FakeCloud(kind: "aws")
        let mesh = FakeMesh()
        let fake: @Sendable (String, BackendSettings, LocalBackend.Configuration) throws -> any GatewayBackend = { kind, _, _ in
            guard kind == "aws" else { throw ProvisioningError.invalidConfiguration("only aws in this test") }
            return cloud
        }
        let context = GatewayProvisioner.Context(
            stateDirectory: directory, localJoin: "127.0.0.1:7420", cloudJoin: "198.51.100.1:7420",
            invite: invite, removeMember: removeMember, projectSettings: { _ in secrets }, members: { [:] }, gateways: { mesh.gateways }, environment: [:],
            makeBackend: realBackends ? GatewayProvisioner.defaultBackend : fake,
            pollInterval: .milliseconds(20))
        return Setup(provisioner: GatewayProvisioner(context: context), cloud: cloud, mesh: mesh, directory: directory)
    }

    static func alive(_ name: String, address: String, node: String = "NODE") -> MeshGateway {
        MeshGateway(name: name, node: node, address: address, state: .alive)
    }

    @Test func aCloudGatewayIsReadyWhenItsAddressIsAliveInGossipAndIsRecordedForDelete() async throws {
        let s = try Self.setup(secrets: ["WARREN_BACKEND": "aws"])
        defer { try? FileManager.default.removeItem(atPath: s.directory) }
        let creation = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", name: "gw-p-a", region: "eu-west-1"))
        #expect(creation.backendKind == "aws")
        #expect(creation.spec.joinToken == "198.51.100.1:7420")
        let progress = Progress()
        let mesh = s.mesh
        // The VM's node joins a little later, named by default after its ID.
        Task {
            try await Task.sleep(for: .milliseconds(100))
            mesh.gateways = [Self.alive("warren-gateway-abc", address: "203.0.113.7", node: "NODEABC")]
        }
        let record = try await s.provisioner.create(creation, progress: progress.append)
        #expect(record.gateway.address == "203.0.113.7")
        #expect(record.gateway.resources["node"] == "NODEABC")
        #expect(record.project == "p")
        #expect(progress.steps == [.accepted, .resources, .booting, .booting, .joined, .ready])
        #expect(await s.provisioner.records().map(\.name) == ["gw-p-a"])

        let deletion = Progress()
        try await s.provisioner.delete(name: "gw-p-a", environment: [:], progress: deletion.append)
        #expect(s.cloud.deleted == ["gw-p-a"])
        #expect(deletion.steps.last == .deleted)
        #expect(await s.provisioner.records().isEmpty)
    }

    @Test func gatewayCreatesACMEFlagsBecomeTheMeshsSettingAndNotTheNewGatewaysFlags() async throws {
        let kept = NIOLockedValueBox<GatewayACME?>(nil)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wgp-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var context = GatewayProvisioner.Context(
            stateDirectory: directory, localJoin: "127.0.0.1:7420", cloudJoin: "198.51.100.1:7420",
            projectSettings: { _ in ["WARREN_BACKEND": "aws"] }, members: { [:] }, gateways: { [] }, environment: [:],
            makeBackend: { _, _, _ in FakeCloud(kind: "aws") })
        context.acme = { kept.withLockedValue { $0 } }
        context.setACME = { acme in kept.withLockedValue { $0 = acme } }
        let provisioner = GatewayProvisioner(context: context)

        // None given yet: no setting written.
        _ = try await provisioner.prepare(GatewayCreateRequest(project: "p", name: "gw-a"))
        #expect(kept.withLockedValue { $0 } == nil)
        let bundle = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        let given = try await provisioner.prepare(GatewayCreateRequest(project: "p", name: "gw-b", acmeEmail: "ops@example.com", acmeCaBundle: bundle))
        #expect(kept.withLockedValue { $0 } == (try GatewayACME(directory: nil, email: "ops@example.com", caBundlePEM: bundle)))
        // A flag alone keeps the others.
        let staging = "https://acme-staging-v02.api.letsencrypt.org/directory"
        _ = try await provisioner.prepare(GatewayCreateRequest(project: "p", name: "gw-d", acmeDirectory: staging))
        let moved = kept.withLockedValue { $0 }
        #expect(moved?.directory == staging && moved?.email == "ops@example.com" && moved?.caBundlePEM == bundle)
        await #expect(throws: ProvisioningError.self) {
            _ = try await provisioner.prepare(GatewayCreateRequest(project: "p", name: "gw-e", acmeDirectory: "ftp://x"))
        }
        await #expect(throws: ProvisioningError.self) {
            _ = try await provisioner.prepare(GatewayCreateRequest(project: "p", name: "gw-g", acmeCaBundle: "-----BEGIN PRIVATE KEY-----\nMIIB\n"))
        }
        #expect(kept.withLockedValue { $0 } == moved, "a refused value is not kept")

        // The new gateway starts without ACME flags: it follows the mesh's setting.
        let script = try FirstBootScript(releaseURL: "https://r/w", releaseSHA256: String(repeating: "a", count: 64), spec: given.spec, publicAddress: .awsMetadata)
        let arguments = script.startArguments(publicAddress: "203.0.113.7")
        #expect(!arguments.contains { $0.hasPrefix("--acme") }, "\(arguments)")
    }

    /// A gateway without ACME flags takes the mesh's setting: its CA, e-mail and CA bundle (from
    /// the file it wrote the setting's PEM to), on its own HTTP and HTTPS ports; none without one.
    @Test func aGatewayWithoutFlagsFollowsTheMeshsACMESetting() {
        #expect(NodeAgent.meshACME(nil, caBundlePath: "/s/ca.pem", httpPort: 8080, httpsPort: 8443) == nil)
        let setting = MeshACME(directory: "https://ca.example.test/dir", email: "ops@example.com", caBundlePEM: "-----BEGIN CERTIFICATE-----\n")
        #expect(NodeAgent.meshACME(setting, caBundlePath: "/s/ca.pem", httpPort: 8080, httpsPort: 8443)
                == AcmeSettings(directoryURL: "https://ca.example.test/dir", email: "ops@example.com", caBundlePath: "/s/ca.pem", httpPort: 8080, httpsPort: 8443))
        #expect(NodeAgent.meshACME(MeshACME(), caBundlePath: "/s/ca.pem", httpPort: 80, httpsPort: 443)
                == AcmeSettings(directoryURL: MeshACME.letsEncrypt, httpPort: 80, httpsPort: 443))
    }

    /// Times to live asked of `invite`, in order.
    final class Asked: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [Double] = []
        func append(_ value: Double) { lock.withLock { list.append(value) } }
        var values: [Double] { lock.withLock { list } }
    }

    @Test func inAMeshWithAdmissionTheFirstBootScriptJoinsWithASingleUseGatewayInvite() async throws {
        let admin = TestNode()
        let (roster, _) = try MeshRoster.found(addresses: ["198.51.100.1:7420"], at: Date(), keys: admin.keys)
        let asked = Asked()
        let s = try Self.setup(secrets: ["WARREN_BACKEND": "aws"]) { ttl in
            asked.append(ttl)
            return try roster.issueInvite(role: .gateway, ttl: ttl, now: Date(), inviterKeys: admin.keys).encoded
        }
        defer { try? FileManager.default.removeItem(atPath: s.directory) }
        let creation = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", name: "gw-p-t", timeoutSeconds: 120))
        let token = try InviteToken(encoded: creation.spec.joinToken)
        #expect(token.role == .gateway)
        #expect(token.isSignatureValid)
        // Valid for the creation's timeout plus the margin.
        #expect(asked.values == [120 + 300])
        #expect(creation.invited)
        #expect(creation.joinsThrough == "198.51.100.1:7420")

        let script = try FirstBootScript(releaseURL: "https://r.example/w", releaseSHA256: String(repeating: "a", count: 64), joinToken: creation.spec.joinToken, publicAddress: .awsMetadata, meshPort: 7420)
        #expect(script.text.contains("--join-file /var/lib/warren/join-token\n"))
        #expect(script.text.contains("printf '%s\\n' '\(creation.spec.joinToken)' > /var/lib/warren/join-token"))
        #expect(!script.text.contains("--join 198.51.100.1:7420"))
    }

    @Test func aNodeThatMayNotInviteIsRefusedBeforeAnythingIsMade() async throws {
        let runner = TestNode()
        let s = try Self.setup(secrets: ["WARREN_BACKEND": "aws"]) { _ in
            throw MeshAdminRefusal.admission(.notAnAdmin(runner.id))
        }
        defer { try? FileManager.default.removeItem(atPath: s.directory) }
        await #expect {
            _ = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", name: "gw-p-u"))
        } throws: { error in
            "\(error)".contains("is not an admin of this mesh") && "\(error)".contains("Run `warren gateway create` on an admin's node")
        }
        #expect(s.cloud.created.isEmpty)
    }

    struct StoreFailure: Error, CustomStringConvertible {
        var description: String { "the store is read-only" }
    }

    @Test func deleteRemovesTheGatewayFromTheMeshAfterItsMachine() async throws {
        let asked = Asked()
        let failing = Asked()
        let s = try Self.setup(secrets: ["WARREN_BACKEND": "aws"]) { _ in nil } removeMember: { node in
            asked.append(Double(node == "NODEABC" ? 1 : 0))
            if !failing.values.isEmpty { throw StoreFailure() }
            return true
        }
        defer { try? FileManager.default.removeItem(atPath: s.directory) }
        for name in ["gw-p-r", "gw-p-s"] {
            let creation = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", name: name))
            s.mesh.gateways = [Self.alive(name, address: "203.0.113.7", node: "NODEABC")]
            _ = try await s.provisioner.create(creation) { _ in }
            s.mesh.gateways = []
        }
        let progress = Progress()
        try await s.provisioner.delete(name: "gw-p-r", environment: [:], progress: progress.append)
        #expect(asked.values == [1], "the gateway's node is removed")
        #expect(s.cloud.deleted == ["gw-p-r"])
        #expect(progress.messages.contains("removed node NODEABC from the mesh"))

        // A removal that fails says what to run; the machine and the record are gone all the same.
        failing.append(1)
        await #expect {
            try await s.provisioner.delete(name: "gw-p-s", environment: [:]) { _ in }
        } throws: { error in
            "\(error)".contains("its node could not be removed from the mesh: the store is read-only; remove it with `warren mesh remove NODEABC`")
        }
        #expect(s.cloud.deleted == ["gw-p-r", "gw-p-s"])
        #expect(await s.provisioner.records().isEmpty)
    }

    @Test func aTimeoutDeletesWhatWasMade() async throws {
        let s = try Self.setup()
        defer { try? FileManager.default.removeItem(atPath: s.directory) }
        let creation = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", backend: "aws", name: "gw-p-b", timeoutSeconds: 0.1))
        let progress = Progress()
        await #expect {
            _ = try await s.provisioner.create(creation, progress: progress.append)
        } throws: { error in
            let text = "\(error)"
            return text.contains("did not join the mesh within") && text.contains("removed what was made for gw-p-b")
        }
        #expect(s.cloud.deleted == ["gw-p-b"])
        #expect(progress.steps.contains(.cleanup))
        #expect(await s.provisioner.records().isEmpty)
    }

    @Test func cancellingTheCallerDeletesWhatWasMade() async throws {
        let s = try Self.setup()
        defer { try? FileManager.default.removeItem(atPath: s.directory) }
        let creation = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", backend: "aws", name: "gw-p-c"))
        let progress = Progress()
        let provisioner = s.provisioner
        let task = Task { try await provisioner.create(creation, progress: progress.append) }
        for _ in 0..<200 where !progress.steps.contains(.booting) { try await Task.sleep(for: .milliseconds(10)) }
        task.cancel()
        await #expect(throws: GatewayCreationError.self) { _ = try await task.value }
        #expect(s.cloud.deleted == ["gw-p-c"])
    }

    @Test func twoCreationsOfOneNameDoNotBothRun() async throws {
        let s = try Self.setup()
        defer { try? FileManager.default.removeItem(atPath: s.directory) }
        let request = GatewayCreateRequest(project: "p", backend: "aws", name: "gw-p-d", timeoutSeconds: 30)
        let first = try await s.provisioner.prepare(request)
        let second = try await s.provisioner.prepare(request)
        let provisioner = s.provisioner
        let running = Task { try await provisioner.create(first) { _ in } }
        for _ in 0..<200 where s.cloud.created.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        await #expect(throws: GatewayCreationError.self) { _ = try await provisioner.create(second) { _ in } }
        s.mesh.gateways = [Self.alive("warren-gateway-x", address: "203.0.113.7")]
        _ = try await running.value
        #expect(s.cloud.created.count == 1)
    }

    @Test func badRequestsAreRefusedBeforeAnythingIsMade() async throws {
        let s = try Self.setup(realBackends: true)
        defer { try? FileManager.default.removeItem(atPath: s.directory) }
        s.mesh.gateways = [Self.alive("gw-taken", address: "127.0.0.9")]
        let cases: [(GatewayCreateRequest, String)] = [
            (GatewayCreateRequest(project: "p", backend: "openstack"), "unknown gateway backend \"openstack\""),
            (GatewayCreateRequest(project: "p", backend: "aws"), "AWS_ACCESS_KEY_ID"),
            (GatewayCreateRequest(project: "p", backend: "azure"), "AZURE_TENANT_ID"),
            (GatewayCreateRequest(project: "p", name: "gw-taken"), "a gateway named gw-taken exists already"),
            (GatewayCreateRequest(project: "p", name: "Not_A_Name"), "invalid gateway name"),
            (GatewayCreateRequest(project: "p", backend: "aws", address: "127.0.0.9"), "--address is for the local backend"),
        ]
        for (request, wording) in cases {
            await #expect {
                _ = try await s.provisioner.prepare(request)
            } throws: { error in
                "\(error)".contains(wording)
            }
        }
        // Credentials from the caller's environment are enough.
        let withKeys = GatewayCreateRequest(project: "p", backend: "aws", environment: [
            "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1", "WARREN_RELEASE_URL": "https://example.com/w",
        ])
        let creation = try await s.provisioner.prepare(withKeys)
        #expect(creation.backendKind == "aws")
        #expect(creation.spec.name.hasPrefix("warren-gateway-"))
    }

    /// A node a first boot installed records its release (URL and SHA-256) in its state
    /// directory; the gateways it creates install the same one, unless the caller says otherwise.
    @Test func aCloudGatewayInstallsTheReleaseOfItsCreatorUnlessTold() async throws {
        let s = try Self.setup(realBackends: true)
        defer { try? FileManager.default.removeItem(atPath: s.directory) }
        try FileManager.default.createDirectory(atPath: s.directory, withIntermediateDirectories: true)
        let sha256 = String(repeating: "c3", count: 32)
        try "https://releases.example.com/warren-0.1.0-linux-x86_64.tar.gz\n".write(toFile: s.directory + "/release.url", atomically: true, encoding: .utf8)
        try "\(sha256)\n".write(toFile: s.directory + "/release.sha256", atomically: true, encoding: .utf8)
        let credentials = ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1"]

        let inherited = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", backend: "aws", environment: credentials))
        let configuration = try #require(inherited.backend as? AWSBackend).configuration
        #expect(configuration.releaseURL == "https://releases.example.com/warren-0.1.0-linux-x86_64.tar.gz")
        #expect(configuration.releaseSHA256 == sha256)

        let told = String(repeating: "d4", count: 32)
        let flagged = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", backend: "aws",
                                                                           environment: credentials.merging(["WARREN_RELEASE_SHA256": told]) { $1 }))
        #expect(try #require(flagged.backend as? AWSBackend).configuration.releaseSHA256 == told)
    }

    /// A gateway of the mesh that serves the wanted release (by SHA-256) is where a new gateway
    /// downloads it, so the user's URL is not needed; a URL the caller gives still wins, and a
    /// gateway serving another release is not used.
    @Test func aNewGatewayDownloadsTheReleaseFromAGatewayThatServesIt() async throws {
        let s = try Self.setup(realBackends: true)
        defer { try? FileManager.default.removeItem(atPath: s.directory) }
        let sha256 = String(repeating: "e5", count: 32)
        let served = "http://203.0.113.20:7421/release/\(sha256)"
        var serving = Self.alive("gw-first", address: "203.0.113.20")
        serving.releaseSHA256 = sha256
        serving.releaseURL = served
        var other = Self.alive("gw-other", address: "203.0.113.21")
        other.releaseSHA256 = String(repeating: "f6", count: 32)
        other.releaseURL = "http://203.0.113.21:7421/release/\(other.releaseSHA256!)"
        s.mesh.gateways = [other, serving]
        let credentials = ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1", "WARREN_RELEASE_SHA256": sha256]

        let fromMesh = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", backend: "aws", environment: credentials))
        let configuration = try #require(fromMesh.backend as? AWSBackend).configuration
        #expect(configuration.releaseURL == served)
        #expect(configuration.releaseSHA256 == sha256)
        #expect(fromMesh.releaseSource?.contains("from gateway gw-first at \(served)") == true, "\(fromMesh.releaseSource ?? "nil")")

        let given = "https://releases.example.com/warren.tar.gz"
        let told = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", backend: "aws",
                                                                        environment: credentials.merging(["WARREN_RELEASE_URL": given]) { $1 }))
        #expect(try #require(told.backend as? AWSBackend).configuration.releaseURL == given)
        #expect(told.releaseSource == nil)

        // Nobody serves this one, and no URL is given: the missing setting is reported.
        let unserved = credentials.merging(["WARREN_RELEASE_SHA256": String(repeating: "07", count: 32)]) { $1 }
        await #expect(throws: ProvisioningError.self) {
            _ = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", backend: "aws", environment: unserved))
        }
        // A gateway that is not alive is not asked.
        serving.state = .left
        s.mesh.gateways = [serving]
        await #expect(throws: ProvisioningError.self) {
            _ = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", backend: "aws", environment: credentials))
        }
    }

    /// The creation says where the release comes from in its one `accepted` step, the one that
    /// names the gateway (the CLI cancels a creation by that name).
    @Test func theCreationSaysWhichGatewayServesTheRelease() async throws {
        let s = try Self.setup(secrets: ["WARREN_BACKEND": "aws"])
        defer { try? FileManager.default.removeItem(atPath: s.directory) }
        let sha256 = String(repeating: "e5", count: 32)
        var serving = Self.alive("gw-first", address: "203.0.113.20", node: "NODEFIRST")
        serving.releaseSHA256 = sha256
        serving.releaseURL = "http://203.0.113.20:7421/release/\(sha256)"
        s.mesh.gateways = [serving]
        let creation = try await s.provisioner.prepare(GatewayCreateRequest(project: "p", name: "gw-second", environment: ["WARREN_RELEASE_SHA256": sha256]))
        let progress = Progress()
        let mesh = s.mesh
        Task {
            try await Task.sleep(for: .milliseconds(100))
            mesh.gateways = [serving, Self.alive("warren-gateway-new", address: "203.0.113.7", node: "NODENEW")]
        }
        _ = try await s.provisioner.create(creation, progress: progress.append)
        let accepted = zip(progress.steps, progress.messages).filter { $0.0 == .accepted }.map(\.1)
        #expect(accepted.count == 1, "\(progress.messages)")
        #expect(accepted.first?.contains("comes from gateway gw-first at http://203.0.113.20:7421/release/\(sha256)") == true, "\(accepted)")
    }

    @Test func deleteRefusesUnknownGatewaysAndThoseMadeElsewhere() async throws {
        let s = try Self.setup()
        defer { try? FileManager.default.removeItem(atPath: s.directory) }
        s.mesh.gateways = [Self.alive("gw-elsewhere", address: "127.0.0.9", node: "KQ2XYZABCDEF")]
        await #expect(throws: ProvisioningError.notFound("gw-nowhere")) {
            try await s.provisioner.delete(name: "gw-nowhere", environment: [:]) { _ in }
        }
        await #expect {
            try await s.provisioner.delete(name: "gw-elsewhere", environment: [:]) { _ in }
        } throws: { error in
            "\(error)".contains("was not created by this node (it runs as node KQ2XYZAB at 127.0.0.9)")
        }
    }
}
