import Foundation
import Logging
@testable import MeshNode
@testable import Provisioning
@testable import Trust
import TrustTestSupport
@testable import Link
import Testing

/// A gateway (127.0.0.2) that can be made unreachable: while it is, every call fails as a dropped
/// link would; otherwise it answers as `GatewayLeases` does.
private actor SwitchedGateway: LeaseAuthority {
    let leases: GatewayLeases
    private(set) var reachable: Bool
    private(set) var calls = 0

    init(leases: GatewayLeases, reachable: Bool) {
        self.leases = leases
        self.reachable = reachable
    }

    func set(reachable: Bool) { self.reachable = reachable }

    func grant(_ request: LeaseRequest) async throws -> Lease {
        calls += 1
        guard reachable else { throw LeaseUnavailable(address: request.binding.address, reason: "connection refused (link down)") }
        return try await leases.grant(request)
    }

    func release(_ request: LeaseRequest) async {
        if reachable { await leases.release(request) }
    }
}

/// A run manager whose gateway may be down, with real processes.
private struct Rig {
    let dir: StateTestDirectory
    let gateway: SwitchedGateway
    let manager: RunManager
    let watcher: Task<Void, Never>

    init(
        reachable: Bool, listenerFailure: @escaping @Sendable (Binding) async -> String? = { _ in nil }, portTimeout: Duration = .seconds(30),
        departure: @escaping @Sendable (String) async -> String? = { _ in nil },
        renewInterval: Duration = .milliseconds(300), retryCap: Duration = .milliseconds(200)
    ) throws {
        dir = try StateTestDirectory("warren-health")
        let store = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))
        let supervisor = RunSupervisor(stateDirectory: dir.path, configuration: .init(stopGracePeriod: .seconds(3)), logger: .quiet("runs"))
        let leases = GatewayLeases(
            addresses: ["127.0.0.2"], name: "gw1", store: store,
            hooks: .init(changed: { _, _, _ in }, gossiped: { LeaseTable() }, listenerFailure: listenerFailure), logger: .quiet("leases"))
        let gateway = SwitchedGateway(leases: leases, reachable: reachable)
        self.gateway = gateway
        let context = RunManager.Context(
            nodeID: "testnodeabcdefgh",
            secrets: { project in SecretValues(project: project, values: [:]) },
            gateways: { [KnownGateway(name: "gw1", address: "127.0.0.2")] },
            leases: { LeaseTable(leases: await leases.leases) },
            authority: gateway, lookup: { _ in [] }, portTimeout: portTimeout, renewInterval: renewInterval,
            retryInitial: min(.milliseconds(50), retryCap), retryCap: retryCap, departure: departure)
        let manager = RunManager(store: store, supervisor: supervisor, context: context, logger: .quiet("manager"))
        self.manager = manager
        watcher = Task { await manager.watchExits() }
    }

    func request(external: Int, app: Int, name: String, command: String? = nil) -> RunRequest {
        let yaml = """
            type: service
            name: \(name)
            gateway: 127.0.0.2
            port: "\(external):\(app)"
            commands:
              - \(command ?? "exec python3 -m http.server \(app) --bind 127.0.0.1")
            """
        return RunRequest(project: "local", configuration: yaml, configurationPath: "service.yml", directory: dir.path, environment: [:])
    }

    /// Polls the run until `done` holds (bounded); returns the last info.
    func wait(_ id: String, timeout: Duration = .seconds(20), until done: (RunInfo) -> Bool) async throws -> RunInfo {
        let clock = ContinuousClock(), deadline = clock.now + timeout
        while true {
            let info = try await manager.get(id)
            if done(info) || clock.now > deadline { return info }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func cleanUp() async {
        for run in await manager.list() where run.isActive { _ = try? await manager.stop(run.id) }
        await manager.shutdown()
        watcher.cancel()
        dir.remove()
    }
}

@Suite(.serialized) struct RunHealthTests {
    /// A serving run renews its lease once per interval, also after the first: each renewal is a
    /// lease written to disk and gossiped to the whole mesh.
    @Test func aServingRunRenewsOncePerIntervalNotContinuously() async throws {
        let rig = try Rig(reachable: true, renewInterval: .milliseconds(300))
        let run = try await rig.manager.submit(rig.request(external: 5107, app: try await freePort(), name: "steady"))
        let serving = try await rig.wait(run.id) { $0.path?.state == .serving }
        try #require(serving.path?.state == .serving, "\(serving.error ?? "")")
        // Past the first interval, where the storm began, then count for 1.5 s: 5 renewals are due.
        try await Task.sleep(for: .milliseconds(700))
        let before = await rig.gateway.calls
        try await Task.sleep(for: .milliseconds(1500))
        let renewals = await rig.gateway.calls - before
        #expect(renewals >= 1 && renewals <= 8, "\(renewals) renewals in 1.5 s at one per 0.3 s")
        await rig.cleanUp()
    }

    /// A gateway that can't be asked is waited for, however many attempts it takes: the app keeps
    /// running, the run says what it waits for, and serves once the gateway answers.
    @Test func anUnreachableGatewayIsRetriedUntilItAnswers() async throws {
        let rig = try Rig(reachable: false)
        let run = try await rig.manager.submit(rig.request(external: 5101, app: try await freePort(), name: "patient"))
        let waiting = try await rig.wait(run.id) { ($0.waitingFor ?? "").contains("retrying") }
        #expect(waiting.state == .leasing, "\(waiting.error ?? "")")
        #expect(waiting.waitingFor?.contains("gateway 127.0.0.2 (retrying, last error: gateway 127.0.0.2 can't be reached") == true,
                "\(waiting.waitingFor ?? "nil")")
        #expect(waiting.path?.state == .pending && waiting.path?.lastError != nil)
        // Several attempts later it still waits; nothing was stopped (RunLifecycleTests checks
        // the waits between attempts).
        #expect(await eventually(seconds: 20) { await rig.gateway.calls >= 3 })
        #expect(try await rig.manager.get(run.id).state == .leasing)

        await rig.gateway.set(reachable: true)
        let up = try await rig.wait(run.id) { $0.state != .leasing }
        #expect(up.state == .running, "\(up.error ?? "")")
        #expect(up.waitingFor == nil)
        #expect(up.path?.state == .serving)
        #expect(await rig.manager.pathCounts()[.serving] == 1)
        await rig.cleanUp()
    }

    /// A serving run whose renewals fail says since when its gateway is unreachable, with the last
    /// error, and says serving again once a renewal goes through.
    @Test func aServingRunReportsItsPathDownAndBack() async throws {
        let rig = try Rig(reachable: true)
        let run = try await rig.manager.submit(rig.request(external: 5102, app: try await freePort(), name: "watched"))
        #expect(try await rig.wait(run.id) { $0.state == .running }.path?.state == .serving)
        let before = Date()
        await rig.gateway.set(reachable: false)
        let down = try await rig.wait(run.id) { $0.path?.state == .unreachable }
        #expect(down.state == .running)
        #expect(down.path?.state == .unreachable)
        #expect(down.path.map { $0.since >= before.addingTimeInterval(-1) } == true)
        #expect(down.path?.description.hasPrefix("gateway unreachable since ") == true)
        #expect(down.path?.lastError?.contains("link down") == true, "\(down.path?.lastError ?? "nil")")
        #expect(await rig.manager.pathCounts()[.unreachable] == 1)
        await rig.gateway.set(reachable: true)
        let back = try await rig.wait(run.id) { $0.path?.state == .serving }
        #expect(back.path?.state == .serving && back.state == .running)
        await rig.cleanUp()
    }

    /// The node's last link to the gateway closed while the lease still had most of its TTL:
    /// the path says unreachable at once (renewals here come only every 60 s), the gateway is
    /// asked again at once, and a link coming up again makes a run backing off (60 s here) ask
    /// again, and serve, at once.
    @Test func aLostLinkToTheGatewayIsSaidAtOnceAndALinkUpIsTriedAtOnce() async throws {
        let rig = try Rig(reachable: true, renewInterval: .seconds(60), retryCap: .seconds(60))
        let run = try await rig.manager.submit(rig.request(external: 5106, app: try await freePort(), name: "linked"))
        #expect(try await rig.wait(run.id) { $0.state == .running }.path?.state == .serving)
        let asked = await rig.gateway.calls

        // Another gateway's link changes nothing.
        await rig.manager.gatewayLinkLost(address: "127.0.0.9", reason: "no link to gateway gw9")
        #expect(try await rig.manager.get(run.id).path?.state == .serving)

        await rig.gateway.set(reachable: false)
        let before = Date()
        await rig.manager.gatewayLinkLost(address: "127.0.0.2", reason: "no link to gateway gw1: its last link (direct) closed")
        let lost = try await rig.manager.get(run.id)
        #expect(lost.state == .running)
        #expect(lost.path?.state == .unreachable, "\(String(describing: lost.path))")
        #expect(lost.path.map { $0.since >= before } == true)
        #expect(lost.path?.lastError?.contains("no link to gateway gw1") == true, "\(lost.path?.lastError ?? "nil")")
        #expect(lost.gateways?.first?.path?.state == .unreachable)
        // Asked again at once, not at the renewal 60 s away: its failure is the last error now.
        #expect(await eventually(seconds: 5) { await rig.gateway.calls > asked })
        let failed = try await rig.wait(run.id, timeout: .seconds(5)) { $0.path?.lastError?.contains("can't be reached") == true }
        #expect(failed.path?.state == .unreachable, "\(String(describing: failed.path))")
        #expect(await rig.manager.pathCounts()[.unreachable] == 1)

        await rig.gateway.set(reachable: true)
        await rig.manager.gatewayLinkUp(address: "127.0.0.2")
        let back = try await rig.wait(run.id, timeout: .seconds(5)) { $0.path?.state == .serving }
        #expect(back.path?.state == .serving && back.state == .running, "\(String(describing: back.path))")
        await rig.cleanUp()
    }

    /// A serving run whose gateway left the mesh says so, drops its dead URL, keeps its app, and
    /// serves again if the gateway comes back.
    @Test func aRunWhoseGatewayLeftSaysSoAndDropsItsURL() async throws {
        let rig = try Rig(reachable: true, departure: { address in
            address == "127.0.0.2" ? "gateway gw1 left the mesh (deleted, or its node stopped)" : nil
        })
        let run = try await rig.manager.submit(rig.request(external: 5104, app: try await freePort(), name: "orphan"))
        let up = try await rig.wait(run.id) { $0.state == .running }
        #expect(up.url == "http://127.0.0.2:5104" && up.path?.state == .serving)
        await rig.gateway.set(reachable: false)
        let gone = try await rig.wait(run.id) { $0.path?.state == .gone }
        #expect(gone.path?.state == .gone)
        #expect(gone.state == .running && gone.url == nil && gone.waitingFor == nil)
        #expect(gone.path?.description == "gateway gw1 left the mesh (deleted, or its node stopped)")
        #expect(await rig.manager.pathCounts()[.gone] == 1)
        await rig.gateway.set(reachable: true)
        let back = try await rig.wait(run.id) { $0.path?.state == .serving }
        #expect(back.path?.state == .serving && back.url == "http://127.0.0.2:5104")
        await rig.cleanUp()
    }

    /// The node that deleted a gateway tells its runs at once: no renewal has to fail first.
    @Test func aGatewayDeletedByThisNodeIsSaidAtOnce() async throws {
        let rig = try Rig(reachable: true)
        let run = try await rig.manager.submit(rig.request(external: 5105, app: try await freePort(), name: "bereft"))
        #expect(try await rig.wait(run.id) { $0.state == .running }.path?.state == .serving)
        await rig.manager.gatewayDeleted(name: "gw1", address: "127.0.0.2")
        let info = try await rig.manager.get(run.id)
        #expect(info.path?.state == .gone && info.path?.description == "gateway gw1 was deleted", "\(String(describing: info.path))")
        #expect(info.url == nil && info.state == .running)
        // Another gateway's deletion leaves it alone.
        await rig.manager.gatewayDeleted(name: "gw9", address: "127.0.0.9")
        #expect(try await rig.manager.get(run.id).path?.description == "gateway gw1 was deleted")
        await rig.cleanUp()
    }

    /// The gateway could not bind the public port: the grant is refused with the cause, the
    /// lease given back, and the run fails instead of reporting a URL another program answers.
    @Test func aPublicPortTheGatewayCannotBindFailsTheRunWithTheCause() async throws {
        let rig = try Rig(reachable: true, listenerFailure: { binding in
            binding.port == 5006 ? NodeAgent.bindFailureText("bind(descriptor:ptr:bytes:): Address already in use (errno: 98)") : nil
        })
        let run = try await rig.manager.submit(rig.request(external: 5006, app: try await freePort(), name: "squatted"))
        let failed = try await rig.wait(run.id) { !$0.isActive }
        #expect(failed.state == .failed)
        #expect(failed.error?.contains("port 5006 on gateway gw1 is taken by another program") == true, "\(failed.error ?? "nil")")
        #expect(failed.url == nil)
        #expect(failed.path?.state == .refused)
        #expect(await rig.gateway.leases.leases.isEmpty)
        await rig.cleanUp()
    }

    /// A second run with the app port of a live run is refused before it starts, naming the run.
    @Test func aSecondRunOnTheSameAppPortIsRefusedBeforeItStarts() async throws {
        let rig = try Rig(reachable: true)
        let app = try await freePort()
        let first = try await rig.manager.submit(rig.request(external: 5103, app: app, name: "first"))
        #expect(try await rig.wait(first.id) { $0.state == .running }.state == .running)
        do {
            _ = try await rig.manager.submit(rig.request(external: 5104, app: app, name: "second"))
            Issue.record("a second run on app port \(app) was accepted")
        } catch {
            let answer = APIErrorTable.apiError(for: error)
            #expect(answer.status == 409)
            #expect(answer.message.contains("app port \(app) is used by run \"first\""), "\(answer.message)")
            #expect(answer.message.contains("change the app port"))
        }
        #expect(await rig.manager.list().map(\.name) == ["first"])
        await rig.cleanUp()
    }

    /// Another program listens on the app port: the run's app can't bind it and dies, and the run
    /// fails naming that program, instead of taking the stranger's listener for its own.
    @Test func aListenerThatIsNotTheRunsDoesNotMakeItUp() async throws {
        let rig = try Rig(reachable: true)
        let app = try await freePort()
        let stranger = Process()
        stranger.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        stranger.arguments = ["python3", "-m", "http.server", "\(app)", "--bind", "127.0.0.1"]
        stranger.currentDirectoryURL = URL(fileURLWithPath: rig.dir.path)
        stranger.standardOutput = FileHandle.nullDevice
        stranger.standardError = FileHandle.nullDevice
        try stranger.run()
        defer { stranger.terminate() }
        let listening = try await eventually(seconds: 10) { PortOwner.listeningInodes(port: app).isEmpty == false }
        try #require(listening, "the stranger never listened on \(app)")

        let run = try await rig.manager.submit(rig.request(external: 5105, app: app, name: "late",
                                                           command: "sleep 0.5; exec python3 -m http.server \(app) --bind 127.0.0.1"))
        let failed = try await rig.wait(run.id) { !$0.isActive }
        #expect(failed.state == .failed, "\(failed.state)")
        #expect(failed.error?.contains("held by another program, pid \(stranger.processIdentifier)") == true, "\(failed.error ?? "nil")")
        #expect(await rig.gateway.leases.leases.isEmpty)
        await rig.cleanUp()
    }

    @Test func listeningSocketsAreReadFromProcNetTCP() {
        let text = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
               1: 0100007F:1F40 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
               2: 00000000:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
            """
        #expect(PortOwner.parse(text, port: 8000) == [4242])
        #expect(PortOwner.parse(text, port: 8001) == [4444])
        #expect(PortOwner.parse(text, port: 9000).isEmpty)
    }

    @Test func retriesBackOffToTheirCap() {
        let waits = (0..<6).map { RunLifecycle.backoff(attempt: $0, initial: .milliseconds(500), cap: .seconds(5)) }
        #expect(waits == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(5), .seconds(5)])
        #expect(RunManager.Context.retryCap(environment: ["WARREN_RUN_RETRY_MAX_SECONDS": "1.5"]) == .milliseconds(1500))
        #expect(RunManager.Context.retryCap(environment: ["WARREN_RUN_RETRY_MAX_SECONDS": "-1"]) == .seconds(5))
    }
}

private func eventually(seconds: Double, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return try await condition()
}
