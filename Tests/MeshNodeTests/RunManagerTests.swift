import Foundation
import Logging
@testable import MeshNode
@testable import Provisioning
@testable import Trust
import TrustTestSupport
@testable import Link
import Testing

/// A run manager on a node that is its own gateway (127.0.0.2), with real processes.
private struct Harness {
    let dir: StateTestDirectory
    let store: StateStore
    let supervisor: RunSupervisor
    let gateway: GatewayLeases
    let manager: RunManager

    /// - Parameter localView: whether the runner sees the gateway's leases (as gossip would show
    ///   them); without it, only the gateway can refuse.
    /// - Parameter view: the runner's view instead (e.g. one that gossip has not updated yet).
    init(localView: Bool = true, view: (@Sendable (GatewayLeases) async -> LeaseTable)? = nil, portTimeout: Duration = .seconds(30)) throws {
        dir = try StateTestDirectory("warren-runs")
        store = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))
        supervisor = RunSupervisor(stateDirectory: dir.path, configuration: .init(stopGracePeriod: .seconds(3)), logger: .quiet("runs"))
        let gateway = GatewayLeases(addresses: ["127.0.0.2"], store: store, hooks: .init(changed: { _, _, _ in }, gossiped: { LeaseTable() }), logger: .quiet("leases"))
        self.gateway = gateway
        let context = RunManager.Context(
            nodeID: "testnodeabcdefgh",
            secrets: { project in SecretValues(project: project, values: ["GATEWAY_IP": "127.0.0.2"]) },
            gateways: { [KnownGateway(name: "gw", address: "127.0.0.2")] },
            leases: {
                if let view { return await view(gateway) }
                return localView ? LeaseTable(leases: await gateway.leases) : LeaseTable()
            },
            authority: gateway, lookup: { _ in [] }, portTimeout: portTimeout, renewInterval: .seconds(1))
        manager = RunManager(store: store, supervisor: supervisor, context: context, logger: .quiet("manager"))
    }

    func request(external: Int, app: Int, name: String? = nil, command: String? = nil) -> RunRequest {
        let yaml = """
            type: service
            \(name.map { "name: \($0)" } ?? "")
            gateway: ${{ secrets.GATEWAY_IP }}
            port: "\(external):\(app)"
            commands:
              - \(command ?? "exec python3 -m http.server \(app) --bind 127.0.0.1")
            """
        return RunRequest(project: "local", configuration: yaml, configurationPath: "service.yml", directory: dir.path, environment: [:])
    }

    func waitWhile(_ id: String, in states: Set<RunState>, timeout: Duration = .seconds(30)) async throws -> RunInfo {
        let clock = ContinuousClock(), deadline = clock.now + timeout
        while true {
            let info = try await manager.get(id)
            if !states.contains(info.state) || clock.now > deadline { return info }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func cleanUp() async {
        for run in await manager.list() where run.isActive { _ = try? await manager.stop(run.id) }
        await manager.shutdown()
        dir.remove()
    }
}

@Suite(.serialized) struct RunManagerTests {
    @Test func serviceRunsLeasesAndFreesItsPort() async throws {
        let h = try Harness()
        let watcher = Task { await h.manager.watchExits() }
        defer { watcher.cancel() }
        let app = try await freePort()
        let first = try await h.manager.submit(h.request(external: 5001, app: app, name: "web-1"))
        #expect(first.state == .starting)
        let up = try await h.waitWhile(first.id, in: [.starting, .leasing])
        #expect(up.state == .running, "\(up.error ?? "")")
        #expect(up.url == "http://127.0.0.2:5001")
        #expect(await h.gateway.leases.map(\.runName) == ["web-1"])

        // The same public port is refused before anything starts, naming the holder.
        await #expect(throws: RunRefusal.self) { _ = try await h.manager.submit(h.request(external: 5001, app: app + 1)) }
        do {
            _ = try await h.manager.submit(h.request(external: 5001, app: app + 1))
        } catch {
            let answer = APIErrorTable.apiError(for: error)
            #expect(answer.status == 409)
            #expect(answer.message.contains("port 5001 on gateway 127.0.0.2 is held by run \"web-1\""))
        }

        // Once stopped, the port is free again.
        let stopped = try await h.manager.stop("web-1")
        #expect(stopped.state == .stopped)
        #expect(await h.gateway.leases.isEmpty)
        let app2 = try await freePort()
        let second = try await h.manager.submit(h.request(external: 5001, app: app2, name: "web-2"))
        #expect(try await h.waitWhile(second.id, in: [.starting, .leasing]).state == .running)
        await h.cleanUp()
    }

    /// The gateway forgets a stopped run's lease at once, but the runner's gossiped copy lags:
    /// the run's own node knows it stopped, so that copy must not refuse the next service.
    @Test func aStoppedRunsLeaseNotYetGossipedAwayDoesNotBlockItsPort() async throws {
        let lagging = LaggingView()
        let h = try Harness(view: { gateway in await lagging.sees(await gateway.leases) })
        let watcher = Task { await h.manager.watchExits() }
        defer { watcher.cancel() }
        let first = try await h.manager.submit(h.request(external: 5003, app: try await freePort(), name: "first"))
        #expect(try await h.waitWhile(first.id, in: [.starting, .leasing]).state == .running)
        _ = await lagging.sees(await h.gateway.leases)  // gossip brought the grant
        _ = try await h.manager.stop("first")
        #expect(await lagging.sees([]).leases.map(\.runName) == ["first"])
        let next = try await h.manager.submit(h.request(external: 5003, app: try await freePort(), name: "next"))
        #expect(try await h.waitWhile(next.id, in: [.starting, .leasing]).state == .running)
        await h.cleanUp()
    }

    @Test func theGatewayRefusesWhenTheRunnerDidNotKnow() async throws {
        let h = try Harness(localView: false)
        let watcher = Task { await h.manager.watchExits() }
        defer { watcher.cancel() }
        let a = try await h.manager.submit(h.request(external: 6001, app: try await freePort(), name: "holder"))
        #expect(try await h.waitWhile(a.id, in: [.starting, .leasing]).state == .running)
        let b = try await h.manager.submit(h.request(external: 6001, app: try await freePort(), name: "late"))
        let refused = try await h.waitWhile(b.id, in: [.starting, .leasing])
        #expect(refused.state == .failed)
        #expect(refused.error?.contains("held by run \"holder\"") == true)
        await h.cleanUp()
    }

    @Test func anAppThatNeverListensFailsWithItsLog() async throws {
        let h = try Harness(portTimeout: .seconds(2))
        let watcher = Task { await h.manager.watchExits() }
        defer { watcher.cancel() }
        let run = try await h.manager.submit(h.request(external: 7001, app: try await freePort(), command: "echo booting-but-never-listening; sleep 30"))
        let failed = try await h.waitWhile(run.id, in: [.starting, .leasing])
        #expect(failed.state == .failed)
        #expect(failed.error?.contains("booting-but-never-listening") == true)
        #expect(await h.gateway.leases.isEmpty)
        await h.cleanUp()
    }

    @Test func invalidConfigurationIsRefusedWithIssues() async throws {
        let h = try Harness()
        var req = h.request(external: 80, app: 8000)
        req.configuration = "type: service\nport: 99999\ncommands: [x]\n"
        do {
            _ = try await h.manager.submit(req)
            Issue.record("accepted an invalid configuration")
        } catch {
            let answer = APIErrorTable.apiError(for: error)
            #expect(answer.status == 400)
            #expect(answer.issues == ["service.yml:2:7: port 99999 is outside 1–65535"])
        }
        #expect(await h.manager.list().isEmpty)
        await h.cleanUp()
    }

    @Test func leasesExpireWithoutRenewalAndSurviveARestart() async throws {
        let dir = try StateTestDirectory("warren-leases")
        defer { dir.remove() }
        let store = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))
        let leases = GatewayLeases(addresses: ["127.0.0.2"], store: store, hooks: .init(changed: { _, _, _ in }, gossiped: { LeaseTable() }), ttl: 30, logger: .quiet("l"))
        let req = LeaseRequest(binding: Binding(address: "127.0.0.2", port: 5001), runID: "r1", runName: "web", holder: "n", appPort: 8000)
        let t0 = Date()
        _ = try await leases.grant(req, now: t0)
        // A gateway restarted from the same state serves the same binding.
        let again = GatewayLeases(addresses: ["127.0.0.2"], store: try StateStore(stateDirectory: dir.path, logger: .quiet("s2")),
                                  hooks: .init(changed: { _, _, _ in }, gossiped: { LeaseTable() }), logger: .quiet("l2"))
        try await again.load(now: t0)
        #expect(await again.leases.map(\.runName) == ["web"])
        #expect(await again.leases.first?.appPort == 8000)
        // Not renewed: expired, and the port is free for another run.
        await again.expire(now: t0.addingTimeInterval(31))
        #expect(await again.leases.isEmpty)
        _ = try await again.grant(LeaseRequest(binding: req.binding, runID: "r2", runName: "other", holder: "n", appPort: 1), now: t0.addingTimeInterval(31))
        // And an address this gateway does not serve is not its to grant: a refusal, not a
        // gateway that can't be asked (a run would retry that forever).
        await #expect(throws: LeaseRefused.self) {
            _ = try await again.grant(LeaseRequest(binding: Binding(address: "127.0.0.9", port: 1), runID: "r3", runName: "x", holder: "n", appPort: 1))
        }
    }
}

/// A replica that learns grants but never hears of releases (gossip that has not caught up).
private actor LaggingView {
    private var table = LeaseTable()

    func sees(_ leases: [Lease]) -> LeaseTable {
        for lease in leases { table.merge(lease) }
        return table
    }
}
