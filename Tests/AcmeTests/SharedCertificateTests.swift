// One certificate per name for the whole mesh, against a real pebble: several gateways serving one
// name place one order between them and serve the same certificate, a gateway that comes later
// gets it from the mesh, renewal reaches every gateway before expiry, and a CA that fails
// challenges at random is retried while plain HTTP on the same gateway goes on.

import Acme
import AcmeTestSupport
import Foundation
import Gossip
import Logging
@testable import MeshNode
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Proxy
import ProxyTestSupport
import Sodium
import Testing
import Trust

/// The replicated map of a few in-process gateways: every write goes through the mesh's writer
/// rules (`MeshEntryGate`) as a gossiped entry does, and is seen by all at once.
actor TestMesh {
    private var entries: [String: EntrySnapshot] = [:]
    private var gateways: [NodeID: String] = [:]

    /// A gateway's announcement (entry kind `gateway`), as a gateway node gossips it.
    func announce(_ id: NodeID, name: String, address: String) throws {
        self.gateways[id] = address
        let entry = GatewayEntry(name: name, address: address, domains: [], meshAddress: "\(address):1", backend: "test")
        self.entries["\(EntryKind.gateway.rawValue)/\(id)"] = EntrySnapshot(kind: .gateway, key: id.description,
                                                                            value: Array(try JSONEncoder().encode(entry)), author: id)
    }

    func write(_ intents: [EntryIntent], by author: NodeID) throws {
        for intent in intents {
            try MeshEntryGate.check(kind: intent.kind, key: intent.key, value: intent.value, author: author, roster: nil,
                                    book: ProjectBook(entries: []), gateways: self.gateways)
            let slot = "\(intent.kind.rawValue)/\(intent.key)"
            self.entries[slot] = intent.value.map { EntrySnapshot(kind: intent.kind, key: intent.key, value: $0, author: author) }
        }
    }

    func snapshots(kinds: Set<EntryKind>) -> [EntrySnapshot] {
        self.entries.values.filter { kinds.contains($0.kind) }.sorted { $0.key < $1.key }
    }
}

struct TestMeshReplica: EntryReplica {
    let mesh: TestMesh
    let author: NodeID
    func snapshots(kinds: Set<EntryKind>) async -> [EntrySnapshot] { await self.mesh.snapshots(kinds: kinds) }
    func apply(_ intents: [EntryIntent]) async throws { try await self.mesh.write(intents, by: self.author) }
    func roster() async -> MeshRoster? { nil }
}

/// One in-process gateway: its certificate manager and its public listeners on its own loopback
/// address, with the HTTP and HTTPS port numbers all the test's gateways share.
struct TestGateway {
    let id: NodeID
    let host: String
    let manager: CertificateManager
    let ingress: GatewayIngress

    static func start(
        _ label: String, host: String, settings: AcmeSettings, mesh: TestMesh, state: URL, runner: SocketAddress?, leases: [Lease],
        firstRetry: Duration = .milliseconds(200), maxRetry: Duration = .seconds(1), claimLifetime: Duration = .seconds(30)
    ) async throws -> TestGateway {
        let keys = Ed25519.KeyPair.generate()
        let id = try #require(NodeID(bytes: keys.publicKey))
        try await mesh.announce(id, name: label, address: host)
        let sharing = CertificateSharing(replica: TestMeshReplica(mesh: mesh, author: id), local: try LocalMember(identity: keys),
                                         claimLifetime: claimLifetime, settle: .milliseconds(500), poll: .milliseconds(200))
        let manager = CertificateManager(settings: settings, stateDirectory: state.appendingPathComponent(label).path, gatewayName: label,
                                         logger: Logger(label: "test.\(label)"), firstRetry: firstRetry, maxRetry: maxRetry, sharing: sharing)
        var configuration = ProxyConfiguration()
        configuration.tls = manager.tls
        let ingress = GatewayIngress(group: MultiThreadedEventLoopGroup.singleton,
                                     connector: LoopbackTunnelConnector { _ in runner }, configuration: configuration)
        let failures = await ingress.apply(NodeAgent.routingTable(leases, bindHost: host, acme: settings))
        try #require(failures.isEmpty, "\(label) could not bind: \(failures)")
        await manager.serve(NodeAgent.terminatedNames(leases, acme: settings))
        return TestGateway(id: id, host: host, manager: manager, ingress: ingress)
    }

    func stop() async {
        await self.manager.shutdown()
        await self.ingress.shutdown()
    }

    /// The status of its one name once it serves a certificate issued after `after`; nil after `seconds`.
    func certificate(newerThan after: Date? = nil, within seconds: Int = 60) async throws -> CertificateStatus? {
        for _ in 0..<(seconds * 10) {
            if let status = await self.manager.status.first, let notAfter = status.notAfter, notAfter > (after ?? .distantPast) {
                return status
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    /// The holders its status lists once they are `expected`, or the last seen after 30 s.
    func holders(_ expected: [String]) async throws -> [String] {
        var holders: [String] = []
        for _ in 0..<300 {
            holders = await self.manager.status.first?.holders ?? []
            if holders == expected { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return holders
    }

    /// The SHA-256 fingerprint of the certificate it serves for `name` on `port`, as openssl sees it.
    func servedFingerprint(_ name: String, port: Int) throws -> String {
        let output = try runTool("/bin/sh", ["-c",
            "openssl s_client -connect \(self.host):\(port) -servername \(name) </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"])
        return output.components(separatedBy: "=").dropFirst().joined(separator: "=").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The shared fixture: pebble, an app behind a tunnel runner, and the lease every gateway holds.
struct SharedFixture {
    let hosts: [String]
    let httpPort: Int
    let httpsPort: Int
    let pebble: Pebble
    let settings: AcmeSettings
    let app: ChallengeServer
    let runner: LoopbackTunnelRunner
    let appPort: Int
    let root: String
    let name: String

    /// `challengeGateway`: the gateway (by index) whose address pebble's DNS gives for every name.
    static func make(gateways: Int, challengeGateway: Int, certificateValidity: Int? = nil, environment: [String: String] = [:],
                     challengeHost: String? = nil) async throws -> SharedFixture {
        let hosts = (0..<gateways).map { _ in randomLoopback() }
        let ports = try TestNet.freePort(onAll: hosts + (challengeHost.map { [$0] } ?? []))
        let httpsPort = try TestNet.freePort(onAll: hosts)
        let pebble = try Pebble(challengeHost: challengeHost ?? hosts[challengeGateway], httpPort: ports, environment: environment,
                                certificateValidity: certificateValidity)
        let settings = AcmeSettings(directoryURL: pebble.directoryURL, email: "ops@example.com", caBundlePath: pebble.listenerCA,
                                    httpPort: ports, httpsPort: httpsPort)
        let app = ChallengeServer()
        let appHost = randomLoopback()
        let appPort = try freePort(on: appHost)
        try await app.start(host: appHost, port: appPort)
        let runner = try await LoopbackTunnelRunner.start(group: MultiThreadedEventLoopGroup.singleton, host: randomLoopback(),
                                                          dialer: AppDialer(host: appHost))
        let root = pebble.directory.appendingPathComponent("root.pem").path
        try pebble.rootPEM().write(toFile: root, atomically: true, encoding: .utf8)
        return SharedFixture(hosts: hosts, httpPort: ports, httpsPort: httpsPort, pebble: pebble, settings: settings, app: app,
                             runner: runner, appPort: appPort, root: root, name: "shop.shared.test")
    }

    func leases(on host: String, extra: [Lease] = []) -> [Lease] {
        [Lease(binding: Trust.Binding(address: host, port: self.httpPort, host: self.name), runID: "shop", runName: "shop",
               holder: "runner", appPort: self.appPort, expires: Date().addingTimeInterval(600))] + extra
    }

    func gateway(_ index: Int, mesh: TestMesh, extra: [Lease] = [], firstRetry: Duration = .milliseconds(200),
                 maxRetry: Duration = .seconds(1), claimLifetime: Duration = .seconds(30)) async throws -> TestGateway {
        try await TestGateway.start("gw\(index + 1)", host: self.hosts[index], settings: self.settings, mesh: mesh,
                                    state: self.pebble.directory, runner: self.runner.localAddress, leases: self.leases(on: self.hosts[index], extra: extra),
                                    firstRetry: firstRetry, maxRetry: maxRetry, claimLifetime: claimLifetime)
    }

    /// Starts gateways 0..<count (labelled gw1, gw2, …) into `gateways`, the first alone until its
    /// order claim is in: it is the earliest claim, so it orders.
    func startOrdered(_ count: Int, mesh: TestMesh, into gateways: inout [TestGateway], firstRetry: Duration = .milliseconds(200),
                      maxRetry: Duration = .seconds(1), claimLifetime: Duration = .seconds(30)) async throws {
        for index in 0..<count {
            gateways.append(try await self.gateway(index, mesh: mesh, firstRetry: firstRetry, maxRetry: maxRetry, claimLifetime: claimLifetime))
            if index == 0 {
                for _ in 0..<50 where await mesh.snapshots(kinds: [.certificateOrder]).isEmpty { try await Task.sleep(for: .milliseconds(100)) }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Runs `body` on a new mesh, then stops the gateways it started and the fixture; an error it
    /// throws is recorded with pebble's log.
    func run(_ body: (TestMesh, inout [TestGateway]) async throws -> Void) async {
        let mesh = TestMesh()
        var gateways: [TestGateway] = []
        var failure: String?
        do {
            try await body(mesh, &gateways)
        } catch {
            failure = "\(error)\npebble log:\n\(self.pebble.log)"
        }
        for gateway in gateways { await gateway.stop() }
        await self.stop()
        if let failure { Issue.record(Comment(rawValue: failure)) }
    }

    /// One HTTPS request for the name through the gateway at `host`, checked against pebble's root.
    func request(_ host: String, path: String) throws -> (ok: Bool, output: String) {
        let answer = try curl(["https://\(self.name):\(self.httpsPort)\(path)"], resolve: (self.name, self.httpsPort, host), cacert: self.root)
        return (answer.status == 0 && answer.output.contains("proto=https path=\(path)"), answer.output)
    }

    func stop() async {
        try? await self.runner.close()
        await self.app.stop()
        self.pebble.stop()
    }
}

@Suite(.serialized)
struct SharedCertificateTests {
    /// Sealed for the gateways serving the name and opened only by them; nothing of the key or the
    /// chain is in clear in the entry.
    @Test func aSharedCertificateOpensOnlyForItsRecipients() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("warren-seal-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let key = folder.appendingPathComponent("key.pem").path, chain = folder.appendingPathComponent("chain.pem").path
        _ = try runTool("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                             "-keyout", key, "-out", chain, "-days", "2", "-subj", "/CN=shop.shared.test"])
        let chainPEM = try String(contentsOfFile: chain, encoding: .utf8), keyPEM = try String(contentsOfFile: key, encoding: .utf8)
        let certificate = try IssuedCertificate(names: ["shop.shared.test"], chainPEM: chainPEM)
        let orderer = try LocalMember(identity: .generate()), other = try LocalMember(identity: .generate())
        let outsider = try LocalMember(identity: .generate())
        let shared = try SharedCertificate.seal(certificate, keyPEM: keyPEM, name: "shop.shared.test", by: orderer.nodeID.description,
                                                to: [orderer.nodeID.description, other.nodeID.description])
        let text = String(decoding: shared.encoded, as: UTF8.self)
        #expect(!text.contains("PRIVATE KEY") && !text.contains("CERTIFICATE") && !text.contains(String(keyPEM.split(separator: "\n")[1])))
        let decoded = try #require(SharedCertificate.decode(shared.encoded))
        let opened = try #require(try decoded.open(as: other))
        #expect(opened.keyPEM == keyPEM && opened.certificate.chainPEM == chainPEM)
        #expect(try decoded.open(as: outsider) == nil, "not sealed to a gateway that does not serve the name")
        // Moved under another name, the box no longer opens.
        var moved = decoded
        moved.name = "other.shared.test"
        #expect(throws: (any Error).self) { _ = try moved.open(as: other) }
    }

    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func twoGatewaysOrderOnceAndAThirdGetsTheCertificateFromTheMesh() async throws {
        // Pebble's DNS sends the CA to the second gateway, which does not order: it answers the
        // orderer's challenge from the orderer's claim.
        let fixture = try await SharedFixture.make(gateways: 3, challengeGateway: 1)
        await fixture.run { mesh, gateways in
            try await fixture.startOrdered(2, mesh: mesh, into: &gateways)
            let first = try await gateways[0].certificate(), second = try await gateways[1].certificate()
            guard let first, let second else { throw PebbleError.setup("no certificate within 60 s: \(String(describing: first)) \(String(describing: second))") }
            #expect(fixture.pebble.orderCount == 1, "one order at the CA for two gateways")
            let placed = (await gateways[0].manager.ordersPlaced, await gateways[1].manager.ordersPlaced)
            #expect(placed.0 == 1 && placed.1 == 0, "orders placed by each gateway: \(placed)")
            #expect(first.sharedBy == nil && second.sharedBy == gateways[0].id.description, "\(second)")
            #expect(first.notAfter == second.notAfter && second.issuer?.contains("Pebble") == true)
            let fingerprint = try gateways[0].servedFingerprint(fixture.name, port: fixture.httpsPort)
            #expect(!fingerprint.isEmpty && fingerprint.contains(":"), "\(fingerprint)")
            #expect(try gateways[1].servedFingerprint(fixture.name, port: fixture.httpsPort) == fingerprint)
            let answer = try fixture.request(fixture.hosts[1], path: "/via-second")
            #expect(answer.ok, "\(answer.output)")
            // The shared entry holds nothing in clear.
            for entry in await mesh.snapshots(kinds: [.certificate]) {
                let text = String(decoding: entry.value, as: UTF8.self)
                #expect(!text.contains("PRIVATE KEY") && !text.contains("BEGIN CERTIFICATE"))
            }

            // A third gateway serving the name later: from the mesh, no new order.
            gateways.append(try await fixture.gateway(2, mesh: mesh))
            let third = try await gateways[2].certificate()
            #expect(third?.notAfter == first.notAfter && third?.sharedBy == gateways[0].id.description, "\(String(describing: third))")
            #expect(try gateways[2].servedFingerprint(fixture.name, port: fixture.httpsPort) == fingerprint)
            #expect(fixture.pebble.orderCount == 1, "the third gateway got it from the mesh, not from the CA")
            #expect(await gateways[2].manager.ordersPlaced == 0)
            let third3 = try fixture.request(fixture.hosts[2], path: "/via-third")
            #expect(third3.ok, "\(third3.output)")
            // Every gateway lists all three as holding the one certificate, as their claims say.
            for gateway in gateways {
                let holders = try await gateway.holders(["gw1", "gw2", "gw3"])
                #expect(holders == ["gw1", "gw2", "gw3"], "\(gateway.id): \(holders)")
            }
        }
    }

    /// Certificates of 30 s: the orderer renews at two thirds and every gateway serves the new one
    /// before the old expires, while a client loop through the gateway that does not order sees
    /// every request answered.
    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func renewalReachesEveryGatewayBeforeExpiryWithoutAFailedRequest() async throws {
        let fixture = try await SharedFixture.make(gateways: 2, challengeGateway: 1, certificateValidity: 30)
        await fixture.run { mesh, gateways in
            try await fixture.startOrdered(2, mesh: mesh, into: &gateways)
            guard let first = try await gateways[1].certificate(), let firstExpiry = first.notAfter else {
                throw PebbleError.setup("no first certificate within 60 s")
            }
            let firstFingerprint = try gateways[1].servedFingerprint(fixture.name, port: fixture.httpsPort)
            // Requests until the second gateway serves the renewed certificate, and a few after;
            // at most 400 requests and 45 s.
            var failed: [String] = []
            var requests = 0, after = 0
            var renewedAt: Date?
            let deadline = Date().addingTimeInterval(45)
            while requests < 400, Date() < deadline, after < 5 {
                requests += 1
                let answer = try fixture.request(fixture.hosts[requests % 2], path: "/loop\(requests)")
                if !answer.ok { failed.append(answer.output) }
                if renewedAt == nil, let now = await gateways[1].manager.status.first?.notAfter, now > firstExpiry {
                    renewedAt = Date()
                }
                if renewedAt != nil { after += 1 }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(failed.isEmpty, "\(failed.count) of \(requests) requests failed: \(failed.prefix(3))")
            let renewed = try #require(renewedAt, "the second gateway never got a renewed certificate in 45 s")
            #expect(renewed < firstExpiry, "renewed at \(renewed), the first certificate expired at \(firstExpiry)")
            #expect(fixture.pebble.orderCount == 2, "one order, then one renewal: \(fixture.pebble.orderCount)")
            let fingerprint = try gateways[1].servedFingerprint(fixture.name, port: fixture.httpsPort)
            #expect(fingerprint != firstFingerprint && !fingerprint.isEmpty)
            #expect(try gateways[0].servedFingerprint(fixture.name, port: fixture.httpsPort) == fingerprint)
            #expect(after >= 5, "requests after the renewal: \(after)")
        }
    }

    /// The CA's challenge fetches fail at random (a forwarder in front of the gateway drops some
    /// connections, always the first) and pebble rejects nonces at random
    /// (`PEBBLE_WFE_NONCEREJECT`): the order fails with a clear reason, is retried until it
    /// succeeds, and a plain-HTTP service on the same gateway answers every request meanwhile.
    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func challengesFailingAtRandomAreRetriedAndPlainHTTPIsUnharmed() async throws {
        let flakyHost = randomLoopback()
        let fixture = try await SharedFixture.make(gateways: 1, challengeGateway: 0, environment: ["PEBBLE_WFE_NONCEREJECT": "30"],
                                                   challengeHost: flakyHost)
        let plainPort = try freePort(on: fixture.hosts[0])
        let plain = Lease(binding: Trust.Binding(address: fixture.hosts[0], port: plainPort, host: "plain.shared.test"), runID: "plain",
                          runName: "plain", holder: "runner", appPort: fixture.appPort, expires: Date().addingTimeInterval(600))
        let forwarder = FlakyForwarder(target: try SocketAddress(ipAddress: fixture.hosts[0], port: fixture.httpPort))
        try await forwarder.start(host: flakyHost, port: fixture.httpPort)
        await fixture.run { mesh, gateways in
            gateways.append(try await fixture.gateway(0, mesh: mesh, extra: [plain], firstRetry: .milliseconds(300), maxRetry: .seconds(1)))
            let gateway = gateways.first
            var plainFailures: [String] = [], plainRequests = 0, sawError: String?
            var issued: CertificateStatus?
            let deadline = Date().addingTimeInterval(90)
            while plainRequests < 900, Date() < deadline, issued == nil {
                plainRequests += 1
                let answer = try curl(["http://plain.shared.test:\(plainPort)/p\(plainRequests)"],
                                      resolve: ("plain.shared.test", plainPort, fixture.hosts[0]), cacert: nil)
                if answer.status != 0 || !answer.output.contains("path=/p\(plainRequests)") { plainFailures.append(answer.output) }
                let status = await gateway?.manager.status.first
                if let error = status?.lastError { sawError = error }
                if status?.notAfter != nil { issued = status }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(plainFailures.isEmpty, "\(plainFailures.count) of \(plainRequests) plain requests failed: \(plainFailures.prefix(3))")
            let rejected = forwarder.rejected.withLockedValue { $0 }
            #expect(rejected >= 1, "the forwarder rejected no challenge fetch")
            let error = try #require(sawError, "no failed order was reported")
            #expect(error.contains(fixture.name) && (error.contains("could not fetch") || error.contains("could not validate")), "\(error)")
            let status = try #require(issued, "no certificate within 90 s after \(rejected) rejected fetches; last error: \(error)")
            #expect(status.issuer?.contains("Pebble") == true)
            #expect(fixture.pebble.orderCount >= 2, "a failed order and its retry: \(fixture.pebble.orderCount)")
            let answer = try fixture.request(fixture.hosts[0], path: "/after-retries")
            #expect(answer.ok, "\(answer.output)")
        }
        await forwarder.stop()
    }

    /// Every fetch of the CA's first challenge is dropped, so the orderer's first order fails: the
    /// gateway that does not order shows that failure, named by the orderer, as long as it stands
    /// (the orderer waits 4 s before its retry); once the retry succeeds the error clears on both
    /// and each lists both gateways as holding the certificate.
    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func theOrderersFailureAndTheHoldersReachTheOtherGateway() async throws {
        let flakyHost = randomLoopback()
        let fixture = try await SharedFixture.make(gateways: 2, challengeGateway: 1, challengeHost: flakyHost)
        let forwarder = FlakyForwarder(target: try SocketAddress(ipAddress: fixture.hosts[1], port: fixture.httpPort), dropping: .first)
        try await forwarder.start(host: flakyHost, port: fixture.httpPort)
        await fixture.run { mesh, gateways in
            try await fixture.startOrdered(2, mesh: mesh, into: &gateways, firstRetry: .seconds(4), maxRetry: .seconds(4))
            var seen: CertificateStatus?
            for _ in 0..<600 where seen == nil {
                if let status = await gateways[1].manager.status.first, status.lastError != nil { seen = status }
                if seen == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            let failed = try #require(seen, "the second gateway never showed a failure in 60 s; the forwarder dropped \(forwarder.rejected.withLockedValue { $0 })")
            #expect(failed.lastErrorBy == "gw1", "named by the orderer: \(failed)")
            let error = failed.lastError ?? ""
            #expect(error.contains(fixture.name) && (error.contains("could not fetch") || error.contains("could not validate")), "\(error)")
            #expect(failed.notAfter == nil && failed.lastErrorAt != nil, "\(failed)")
            #expect(await gateways[1].manager.ordersPlaced == 0)

            for gateway in gateways {
                guard let issued = try await gateway.certificate() else { throw PebbleError.setup("\(gateway.id): no certificate in 60 s") }
                #expect(issued.issuer?.contains("Pebble") == true)
                let holders = try await gateway.holders(["gw1", "gw2"])
                #expect(holders == ["gw1", "gw2"], "\(holders)")
                let status = await gateway.manager.status.first
                #expect(status?.lastError == nil && status?.lastErrorBy == nil, "cleared once served: \(String(describing: status))")
            }
            #expect(fixture.pebble.orderCount == 2, "the failed order and its retry: \(fixture.pebble.orderCount)")
        }
        await forwarder.stop()
    }

    /// The orderer dies between two orders (its manager and listeners stop at once, its claim is
    /// left in the mesh unrenewed, as after a SIGKILL). Its claim outlives the renewal date of the
    /// certificate, so the lease is what holds the other gateway back: no order at the CA while
    /// that claim is live, then the other gateway orders the renewal itself and serves it.
    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func whenTheOrdererDiesTheOtherGatewayTakesTheOrderOverAfterItsLeaseLapses() async throws {
        // Certificates of 15 s (renewal due 10 s in), claims of 24 s (rewritten 12 s in at the latest).
        let fixture = try await SharedFixture.make(gateways: 2, challengeGateway: 1, certificateValidity: 15)
        await fixture.run { mesh, gateways in
            try await fixture.startOrdered(2, mesh: mesh, into: &gateways, claimLifetime: .seconds(24))
            guard let first = try await gateways[1].certificate(), let firstExpiry = first.notAfter, let renewAt = first.renewAt else {
                throw PebbleError.setup("no first certificate on the second gateway within 60 s")
            }
            #expect(first.sharedBy == gateways[0].id.description && fixture.pebble.orderCount == 1)
            let orderer = gateways.removeFirst()
            await orderer.stop()
            let claims = await mesh.snapshots(kinds: [.certificateOrder]).compactMap { CertificateOrderClaim.decode($0.value) }
            let lease = try #require(claims.first { $0.gateway == orderer.id.description }, "the dead orderer's claim is gone: \(claims)")
            try #require(lease.expires > renewAt.addingTimeInterval(1),
                         "the test needs the dead orderer's claim (to \(lease.expires)) to outlive the renewal date \(renewAt)")

            // While the dead orderer's claim is live, nobody orders (checked up to 300 ms before it lapses).
            var looks = 0, ordersWhileLive = 1
            while Date() < lease.expires.addingTimeInterval(-0.3), looks < 400, ordersWhileLive == 1 {
                looks += 1
                ordersWhileLive = fixture.pebble.orderCount
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(ordersWhileLive == 1, "orders at pebble while the dead orderer's lease was live: \(ordersWhileLive)")
            let renewed = try #require(try await gateways[0].certificate(newerThan: firstExpiry),
                                       "the second gateway did not take the order over within 60 s of the lease lapsing")
            #expect(await gateways[0].manager.ordersPlaced == 1, "the second gateway ordered the renewal itself")
            #expect(renewed.sharedBy == nil && renewed.issuer?.contains("Pebble") == true, "\(renewed)")
            #expect(fixture.pebble.orderCount == 2, "the first order and the taken-over one: \(fixture.pebble.orderCount)")
            let holders = try await gateways[0].holders(["gw2"])
            #expect(holders == ["gw2"], "the dead orderer no longer counts as holding it: \(holders)")
            let answer = try fixture.request(fixture.hosts[1], path: "/after-takeover")
            #expect(answer.ok, "\(answer.output)")
        }
    }
}

/// A TCP forwarder that drops some connections: always the first, then (`.random`) about half,
/// never more than two in a row (so a bounded number of retries gets through), or (`.first`) none.
final class FlakyForwarder: @unchecked Sendable {
    enum Dropping { case random, first }
    let target: SocketAddress
    let dropping: Dropping
    let rejected = NIOLockedValueBox(0)
    private let pattern = NIOLockedValueBox((count: 0, inARow: 0))
    private var channel: (any Channel)?

    init(target: SocketAddress, dropping: Dropping = .random) {
        self.target = target
        self.dropping = dropping
    }

    /// Whether to drop the next connection.
    private func drop() -> Bool {
        let random = self.dropping == .random
        return self.pattern.withLockedValue { state in
            state.count += 1
            let drop = state.count == 1 || (random && state.inARow < 2 && Bool.random())
            state.inARow = drop ? state.inARow + 1 : 0
            return drop
        }
    }

    func start(host: String, port: Int) async throws {
        let target = self.target
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] inbound in
                if self.drop() {
                    self.rejected.withLockedValue { $0 += 1 }
                    return inbound.close()
                }
                return ClientBootstrap(group: inbound.eventLoop).connect(to: target).flatMap { outbound in
                    let (a, b) = (Glue(), Glue())
                    a.partner = outbound
                    b.partner = inbound
                    // The accepted channel registers, and so starts reading, once this future is done.
                    return inbound.pipeline.addHandler(a).flatMap { outbound.pipeline.addHandler(b) }
                }
            }
            .bind(host: host, port: port).get()
    }

    func stop() async {
        try? await self.channel?.close()
    }

    /// Passes bytes to its partner channel and closes it when its own side closes.
    final class Glue: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var partner: (any Channel)?

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.partner?.writeAndFlush(self.unwrapInboundIn(data), promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.partner?.close(promise: nil)
            context.fireChannelInactive()
        }
    }
}
