import Foundation
import Testing

/// GUIDE.md, literally: a gateway node and a runner node on loopback, real `warren` processes,
/// every step of the walkthrough but gateway creation (its own issue) asserted as a user sees it.
///
/// Addresses are this test's own (127.0.0.21 gateway, 127.0.0.22 runner); every port is one the
/// kernel says is free, so the test runs beside other tests and a user's nodes. The guide's
/// external ports 5001/5002 are therefore free ports here too: same steps, other numbers.
@Suite(.serialized) struct WalkthroughTests {
    static let gatewayAddress = "127.0.0.21"
    static let runnerAddress = "127.0.0.22"
    /// Short leases, so the SIGKILLed runner's lease expires in seconds instead of 30
    /// (`WARREN_LEASE_TTL_SECONDS`, read by every node; runners renew every third of it).
    static let leaseTTL = 5

    @Test func theGuideOnOneMachine() async throws {
        let lab = try Lab()
        do {
            try await walkThrough(lab)
        } catch {
            await lab.tearDown()
            throw error
        }
        await lab.tearDown()
    }

    private func walkThrough(_ lab: Lab) async throws {
        let gw = Self.gatewayAddress

        // 1. A gateway and a runner that joins it; the runner sees the gateway.
        let gatewayPort = try freePort(on: gw), runnerPort = try freePort(on: Self.runnerAddress)
        let gateway = try lab.startNode("gateway", [
            "--state-dir", lab.gatewayHome, "--listen", "\(gw):\(gatewayPort)",
            "--gateway", "--public-address", gw, "--name", "e2e-gw",
        ])
        let runner = try lab.startNode("runner", [
            "--state-dir", lab.runnerHome, "--listen", "\(Self.runnerAddress):\(runnerPort)", "--join", "\(gw):\(gatewayPort)",
        ])
        let seesGateway = try await eventually(within: 20) {
            let list = try await lab.warren(["gateway", "list"])
            return list.status == 0 && list.stdout.contains("e2e-gw") && list.stdout.contains(gw)
        }
        #expect(seesGateway, "the runner never listed the gateway\n\(gateway.log)\n\(runner.log)")
        try #require(seesGateway)

        // 2. The gateway's address as a project secret.
        let secret = try await lab.warren(["secrets", "add", "GATEWAY_IP", gw, "--project", "local"])
        #expect(secret.status == 0, "\(secret.stderr)")

        // 3. `gateway: ${{ secrets.GATEWAY_IP }}`, `port: "EXT:APP"`; the listing at the gateway.
        let port1 = try freePort(on: gw), port2 = try freePort(on: gw), shared = try freePort(on: gw)
        let first = try await lab.run("first", gateway: "${{ secrets.GATEWAY_IP }}", external: port1)
        #expect(first.output.contains("is up at http://\(gw):\(port1)"), "\(first.output)")
        let listing = await fetch("http://\(gw):\(port1)/")
        #expect(listing?.contains("Directory listing") == true && listing?.contains("first.txt") == true,
                "no listing at the gateway: \(listing ?? "nothing")\n\(gateway.log)")

        // 4. A second service on the same port is refused, naming the run that holds it.
        let refused = try await lab.runRaw("second", gateway: "${{ secrets.GATEWAY_IP }}", external: port1)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains(first.name), "the refusal does not name \(first.name): \(refused.stderr)")
        #expect(refused.stderr.contains("\(port1)"), "\(refused.stderr)")

        // ... so it runs on another port instead.
        let second = try await lab.run("second-elsewhere", gateway: "${{ secrets.GATEWAY_IP }}", external: port2)
        #expect(await fetch("http://\(gw):\(port2)/")?.contains("second-elsewhere.txt") == true)

        // 5. Two services on one port, told apart by host name (both names resolve to the gateway
        // through the runner's WARREN_HOSTS).
        let api = try await lab.run("api", gateway: "api.e2e.test", external: shared)
        let web = try await lab.run("web", gateway: "web.e2e.test", external: shared)
        #expect(api.output.contains("api.e2e.test"), "\(api.output)")
        let viaAPI = await fetch("http://\(gw):\(shared)/", host: "api.e2e.test:\(shared)")
        let viaWeb = await fetch("http://\(gw):\(shared)/", host: "web.e2e.test:\(shared)")
        #expect(viaAPI?.contains("api.txt") == true && viaAPI?.contains("web.txt") == false, "\(viaAPI ?? "nothing")")
        #expect(viaWeb?.contains("web.txt") == true && viaWeb?.contains("api.txt") == false, "\(viaWeb ?? "nothing")")

        // Every node shows the leases.
        let leases = try await lab.warren(["leases"], home: lab.gatewayHome)
        for name in [first.name, second.name, api.name, web.name] {
            #expect(leases.stdout.contains(name), "\(name) missing from the gateway's leases:\n\(leases.stdout)")
        }

        // 6. Stop the first; its port is free again for another service.
        let stop = try await lab.warren(["stop", first.name])
        #expect(stop.status == 0, "\(stop.stderr)")
        let third = try await lab.run("third", gateway: "${{ secrets.GATEWAY_IP }}", external: port1)
        #expect(await fetch("http://\(gw):\(port1)/")?.contains("third.txt") == true, "\(third.output)")

        // 7. The runner dies (SIGKILL): nobody renews, the gateway lets its leases go after the TTL.
        let before = try await lab.warren(["leases"], home: lab.gatewayHome)
        #expect(before.stdout.contains(third.name), "\(before.stdout)")
        await runner.kill()
        let expired = try await eventually(within: Double(Self.leaseTTL) + 10) {
            try await lab.warren(["leases"], home: lab.gatewayHome).stdout.contains("No leases")
        }
        let left = try await lab.warren(["leases"], home: lab.gatewayHome).stdout
        #expect(expired, "the dead runner's leases never expired:\n\(left)")
        #expect(await fetch("http://\(gw):\(port1)/") == nil, "the gateway still serves a dead runner's port")
    }
}

/// The test's temporary world: state directories, service files, the nodes it started, and the
/// cleanup that runs however the test ends.
final class Lab: @unchecked Sendable {
    let root: String
    var gatewayHome: String { root + "/gw" }
    var runnerHome: String { root + "/rn" }
    let hostsFile: String
    let leaseTTL: Int
    private var nodes: [NodeProcess] = []

    struct Started {
        var name: String
        var output: String
    }

    init(leaseTTL: Int = WalkthroughTests.leaseTTL) throws {
        self.leaseTTL = leaseTTL
        // Short: the local API's Unix socket path must fit in 108 bytes.
        let template = "/tmp/warren-e2e-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let made = mkdtemp(&bytes) else { throw POSIXError(.EIO) }
        root = String(cString: made)
        hostsFile = root + "/hosts"
        try "\(WalkthroughTests.gatewayAddress) api.e2e.test web.e2e.test\n".write(toFile: hostsFile, atomically: true, encoding: .utf8)
    }

    /// More variables for every node and command (e.g. shorter retries).
    var extraEnvironment: [String: String] = [:]

    var environment: [String: String] {
        ["WARREN_HOSTS": hostsFile, "WARREN_LEASE_TTL_SECONDS": "\(leaseTTL)", "WARREN_HOME": runnerHome].merging(extraEnvironment) { $1 }
    }

    func startNode(_ name: String, _ arguments: [String]) throws -> NodeProcess {
        let node = try NodeProcess(name: name, arguments: arguments, environment: environment, logPath: "\(root)/\(name).log")
        nodes.append(node)
        return node
    }

    /// A `warren` command, by default against the runner (`WARREN_HOME`).
    func warren(_ arguments: [String], home: String? = nil) async throws -> WarrenProcess.Result {
        var env = environment
        if let home { env["WARREN_HOME"] = home }
        return try await WarrenProcess.run(arguments, environment: env)
    }

    /// `warren run DIR -f FILE --project local -d` of a service serving DIR (which holds NAME.txt)
    /// with `python3 -m http.server` on a free app port, published on `external`; on the runner
    /// unless `home` names another node's state directory.
    func runRaw(_ name: String, gateway: String, external: Int, home: String? = nil) async throws -> WarrenProcess.Result {
        let directory = "\(root)/apps/\(name)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "\(name)\n".write(toFile: "\(directory)/\(name).txt", atomically: true, encoding: .utf8)
        let app = try freePort(on: "0.0.0.0")
        let file = "\(root)/\(name).dstack.yml"
        try """
            type: service
            gateway: \(gateway)
            port: "\(external):\(app)"
            commands:
              - python3 -m http.server \(app)

            """.write(toFile: file, atomically: true, encoding: .utf8)
        return try await warren(["run", directory, "-f", file, "--project", "local", "-d"], home: home)
    }

    /// `runRaw` that must succeed; returns the run's name (from "Run NAME started…").
    func run(_ name: String, gateway: String, external: Int, home: String? = nil) async throws -> Started {
        let result = try await runRaw(name, gateway: gateway, external: external, home: home)
        #expect(result.status == 0, "warren run (\(name)) failed: \(result.stderr)\n\(result.stdout)")
        try #require(result.status == 0)
        let words = result.stdout.split(whereSeparator: \.isWhitespace)
        let runName = try #require(words.firstIndex(of: "Run").map { String(words[$0 + 1]) }, "no run name in \(result.stdout)")
        return Started(name: runName, output: result.stdout)
    }

    func tearDown() async {
        for node in nodes.reversed() { await node.stop() }
        // Apps of a node that was SIGKILLed outlive it; they all work under root/apps.
        killProcesses(workingUnder: root + "/apps")
        try? FileManager.default.removeItem(atPath: root)
    }
}
