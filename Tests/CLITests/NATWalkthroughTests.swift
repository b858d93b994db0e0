import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Real NAT: a runner behind a masquerading router serves a client through a gateway.
/// Real `warren` nodes run in the namespaces of `scripts/netns.sh`: the gateway in `public`, the
/// runner and its app in `site` (behind the NAT), curl in `client`. The client reaches the app
/// through the gateway, and can't reach the runner's site directly.
///
/// Needs root and a kernel that lets us make namespaces; skips with a message otherwise.
@Suite(.serialized) struct NATWalkthroughTests {
    /// This run's own namespace prefix (at most 6 characters), so it never meets another run's.
    static let prefix = "n" + String(getpid() % 1_679_616, radix: 36) + "-"
    static let gatewayAddress = "198.18.0.10"
    static let siteAddress = "10.213.0.2"

    static let unavailableReason: String? = {
        guard getuid() == 0 else { return "not root" }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { return "no curl" }
        let probe = "wnatprobe\(getpid())"
        guard let made = try? WarrenProcess.runTool(["ip", "netns", "add", probe]), made.status == 0 else {
            return "`ip netns add` does not work here"
        }
        _ = try? WarrenProcess.runTool(["ip", "netns", "del", probe])
        return nil
    }()

    @Test func aRunnerBehindNATServesTheClientThroughTheGateway() async throws {
        if let reason = Self.unavailableReason {
            print("skipping the real-NAT walkthrough: \(reason); it runs as root where `ip netns` works (CI)")
            return
        }
        let lab = try NATLab(prefix: Self.prefix)
        do {
            try await walkThrough(lab)
        } catch {
            await lab.tearDown()
            throw error
        }
        await lab.tearDown()
        let left = try await launch(URL(fileURLWithPath: "/usr/bin/env"), ["ip", "netns", "list"], timeout: .seconds(10))
        #expect(!left.stdout.contains(Self.prefix), "namespaces left behind:\n\(left.stdout)")
    }

    private func walkThrough(_ lab: NATLab) async throws {
        let gw = Self.gatewayAddress
        let up = try await lab.script(["up"])
        try #require(up.status == 0, "netns.sh up failed: \(up.stdout)\(up.stderr)")

        // The gateway on the public side, the runner behind the NAT joining it (outbound only).
        let gateway = try lab.startNode("gateway", in: "public", [
            "--state-dir", lab.gatewayHome, "--listen", "\(gw):7420",
            "--gateway", "--public-address", gw, "--name", "nat-gw",
        ])
        let runner = try lab.startNode("runner", in: "site", [
            "--state-dir", lab.runnerHome, "--listen", "\(Self.siteAddress):7420", "--join", "\(gw):7420",
        ])
        // The CLI talks to the node over its Unix socket, a file: it works from the root namespace.
        let seesGateway = try await eventually(within: 20) {
            let list = try await lab.warren(["gateway", "list"])
            return list.status == 0 && list.stdout.contains("nat-gw") && list.stdout.contains(gw)
        }
        #expect(seesGateway, "the runner never listed the gateway\n--- gateway\n\(gateway.log)\n--- runner\n\(runner.log)")
        try #require(seesGateway)

        let secret = try await lab.warren(["secrets", "add", "GATEWAY_IP", gw, "--project", "local"])
        #expect(secret.status == 0, "\(secret.stderr)")

        // The app listens on the site's loopback; the runner (in the site) dials it there.
        let started = try await lab.runService()
        #expect(started.status == 0, "warren run failed: \(started.stderr)\n\(started.stdout)\n--- runner\n\(runner.log)")
        try #require(started.status == 0)
        #expect(started.stdout.contains("is up at http://\(gw):5001"), "\(started.stdout)")
        let words = started.stdout.split(whereSeparator: \.isWhitespace)
        let runName = try #require(words.firstIndex(of: "Run").map { String(words[$0 + 1]) }, "no run name in \(started.stdout)")

        // The client gets the listing through the gateway ...
        var listing = ""
        let served = try await eventually(within: 10) {
            let fetched = try await lab.script(["exec", "client", "curl", "-s", "-m", "5", "http://\(gw):5001/"])
            listing = fetched.stdout
            return fetched.status == 0 && listing.contains("Directory listing") && listing.contains("served-from-site.txt")
        }
        #expect(served, "no listing through the gateway: \(listing)\n--- gateway\n\(gateway.log)\n--- runner\n\(runner.log)")

        // The gateway can't send the runner datagrams (the NAT drops them), yet it must not take the
        // runner for failed while the runner's link is up: their gossip travels over the link. A
        // probe per second, suspicion after one failed probe and death some seconds later, so ten
        // seconds of "alive" in every sample would not happen over UDP alone.
        var views: [String] = []
        for _ in 0..<20 {
            views.append(try await lab.peerState(seenBy: lab.gatewayHome))
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(views.allSatisfy { $0 == "alive" }, "the gateway's view of the runner over 10 s: \(views)\n--- gateway\n\(gateway.log)")

        // ... but can't reach the site directly, though it has a route there: the NAT drops the
        // connection attempt, so curl times out (28) rather than being refused (7).
        let direct = try await lab.script(["exec", "client", "curl", "-s", "-m", "3", "http://\(Self.siteAddress):8000/"])
        #expect(direct.status == 28, "the client's direct attempt did not time out in the NAT (curl exit \(direct.status)): \(direct.stdout)")
        #expect(!direct.stdout.contains("Directory listing"))

        let stop = try await lab.warren(["stop", runName])
        #expect(stop.status == 0, "warren stop failed (\(stop.status)): \(stop.stderr)\n--- runner\n\(runner.log)\n--- gateway\n\(gateway.log)")
    }
}

/// The lab's temporary world: namespaces, state directories, the nodes it started, and the
/// cleanup that runs however the test ends.
final class NATLab: @unchecked Sendable {
    let prefix: String
    let root: String
    var gatewayHome: String { root + "/gw" }
    var runnerHome: String { root + "/rn" }
    var appDirectory: String { root + "/app" }
    private let scriptPath = WarrenProcess.packageRoot.appendingPathComponent("scripts/netns.sh").path
    private var nodes: [NamespacedNode] = []

    init(prefix: String) throws {
        self.prefix = prefix
        // Short: the local API's Unix socket path must fit in 108 bytes.
        var bytes = Array("/tmp/warren-nat-XXXXXX".utf8CString)
        guard let made = mkdtemp(&bytes) else { throw POSIXError(.EIO) }
        root = String(cString: made)
    }

    /// `scripts/netns.sh ARGS` with this lab's prefix (bounded).
    func script(_ arguments: [String]) async throws -> WarrenProcess.Result {
        try await launch(URL(fileURLWithPath: scriptPath), arguments, environment: ["WARREN_NETNS_PREFIX": prefix], timeout: .seconds(20))
    }

    func startNode(_ name: String, in node: String, _ arguments: [String]) throws -> NamespacedNode {
        let started = try NamespacedNode(namespace: prefix + node, arguments: arguments, logPath: "\(root)/\(name).log")
        nodes.append(started)
        return started
    }

    /// A `warren` command against the runner (`WARREN_HOME`), from the root namespace. The bound
    /// only guards against a hang: `stop` alone may take 20 s (10 s of grace for the app, then a
    /// lease release of up to 10 s), more on a loaded machine.
    func warren(_ arguments: [String]) async throws -> WarrenProcess.Result {
        try await WarrenProcess.run(arguments, environment: ["WARREN_HOME": runnerHome], timeout: 60)
    }

    /// How the node at `home` sees the other node of the lab (`warren peers --json`): its state,
    /// or what went wrong.
    func peerState(seenBy home: String) async throws -> String {
        let peers = try await WarrenProcess.run(["peers", "--json"], environment: ["WARREN_HOME": home], timeout: 20)
        guard peers.status == 0 else { return "peers failed: \(peers.stderr)" }
        guard let list = try? JSONSerialization.jsonObject(with: Data(peers.stdout.utf8)) as? [[String: Any]] else {
            return "unreadable: \(peers.stdout)"
        }
        return list.filter { $0["isSelf"] as? Bool != true }.compactMap { $0["state"] as? String }.joined(separator: ",")
    }

    /// `warren run DIR -f service.yml --project local -d`: `python3 -m http.server` on the site's
    /// loopback, published on the gateway's port 5001.
    func runService() async throws -> WarrenProcess.Result {
        try FileManager.default.createDirectory(atPath: appDirectory, withIntermediateDirectories: true)
        try "served from the site\n".write(toFile: "\(appDirectory)/served-from-site.txt", atomically: true, encoding: .utf8)
        let file = "\(root)/service.yml"
        try """
            type: service
            gateway: ${{ secrets.GATEWAY_IP }}
            port: "5001:8000"
            commands:
              - python3 -m http.server 8000 --bind 127.0.0.1

            """.write(toFile: file, atomically: true, encoding: .utf8)
        return try await warren(["run", appDirectory, "-f", file, "--project", "local", "-d"])
    }

    func tearDown() async {
        for node in nodes.reversed() { await node.stop() }
        // An app outlives a node that had to be SIGKILLed, and would keep its namespace alive.
        killProcesses(workingUnder: appDirectory)
        _ = try? await script(["down"])
        try? FileManager.default.removeItem(atPath: root)
    }
}

extension WarrenProcess {
    /// Runs a system tool to its end (for the synchronous availability probe only).
    static func runTool(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: "", stderr: "")
    }
}
