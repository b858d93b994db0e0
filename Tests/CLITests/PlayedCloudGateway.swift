import Foundation
import Testing

/// `warren gateway create` with a cloud backend end to end, this machine playing the VM: the node
/// (a mesh's admin) makes the cloud resources; the test reads the first-boot script the cloud was
/// given and runs its systemd unit's start command as a gateway node on loopback; create completes
/// when that node joins; `gateway list` and the roster show it; delete removes it.
struct PlayedCloudGateway {
    let runner: BackgroundNode
    /// aws, azure or gcp.
    let backend: String
    /// The region, location or zone the cloud reports.
    let region: String
    /// The backend's settings (credentials, endpoints, WARREN_RELEASE_URL), as the caller's environment.
    let environment: [String: String]
    let name: String
    let domain: String
    /// Where the played VM's node listens ("127.0.0.x:port"), beside the runner.
    let vmListen: String
    /// Passed as `--release-sha256` when set; else the environment's WARREN_RELEASE_SHA256 is the hash.
    var releaseSHA256Flag: String? = nil

    /// Create, play the first boot with the script `firstBootScript` reads from the cloud, check
    /// the gateway in the mesh, then delete it; returns what create printed on stderr. What the
    /// cloud still holds is the caller's check.
    @discardableResult
    func createJoinAndDelete(firstBootScript: () throws -> String?) throws -> String {
        let project = try runner.warren(["project", "create", "cloudy"], environment: environment)
        #expect(project.status == 0, "\(project.stderr)")
        let create = try RunningWarren(
            ["gateway", "create", "--project", "cloudy", "--backend", backend, "--name", name, "--domain", domain,
             "--timeout", "90", "--state-dir", runner.directory] + (releaseSHA256Flag.map { ["--release-sha256", $0] } ?? []),
            environment: environment)
        defer { if create.process.isRunning { create.process.terminate() } }
        try #require(create.waitForStderr(containing: "booting: public address ", seconds: 60), "\(create.stderr)")
        let publicAddress = try #require(create.stderr.components(separatedBy: "booting: public address ").last?
            .split(separator: "\n").first.map(String.init))

        // What cloud-init (or GCP's startup agent) would run: the script's systemd unit.
        let script = try #require(try firstBootScript(), "the cloud was given no first-boot script")
        #expect(script.contains(environment["WARREN_RELEASE_URL"] ?? "-"), "installs the configured release")
        let sha256 = releaseSHA256Flag ?? environment["WARREN_RELEASE_SHA256"] ?? "-"
        #expect(script.contains("RELEASE_SHA256='\(sha256)'"), "checks the download against the release's SHA-256")
        let execStart = try #require(script.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        var arguments = execStart.dropFirst("ExecStart=".count).split(separator: " ").map(String.init)
        #expect(arguments.starts(with: ["/usr/local/bin/warren", "node", "start", "--gateway", "--public-address", "${PUBLIC_ADDRESS}",
                                        "--name", name, "--domain", domain, "--serve-release", "0.0.0.0:7421", "--join-file", "/var/lib/warren/join-token"]), "\(arguments)")
        #expect(!execStart.contains("warren1."), "the token is not in the unit's command line: \(execStart)")
        // The token the script writes to that file (mode 0600) is a single-use invite.
        let tokenLine = try #require(script.split(separator: "\n").first { $0.hasSuffix("> /var/lib/warren/join-token)") })
        let quoted = try #require(tokenLine.range(of: "'warren1."), "joins with a single-use invite: \(tokenLine)")
        let token = String(tokenLine[tokenLine.index(after: quoted.lowerBound)...].prefix { $0 != "'" })
        let tokenFile = runner.directory + "/played-join-token"
        #expect(FileManager.default.createFile(atPath: tokenFile, contents: Data(token.utf8), attributes: [.posixPermissions: 0o600]))
        arguments[arguments.count - 1] = tokenFile
        #expect(!script.contains("\(runner.address):\(runner.port)"), "not through the creating node's address alone")
        arguments = arguments.dropFirst().map { $0 == "${PUBLIC_ADDRESS}" ? publicAddress : $0 }
        // This machine stands in for the VM: its own state directory, and loopback for the mesh.
        let vmState = runner.directory + "/played-vm"
        let vm = Process()
        vm.executableURL = WarrenProcess.binary
        vm.arguments = arguments + ["--state-dir", vmState, "--listen", vmListen]
        vm.environment = BackgroundNode.cleanEnvironment
        vm.standardOutput = FileHandle.nullDevice
        vm.standardError = FileHandle.nullDevice
        try vm.run()
        defer { if vm.isRunning { vm.terminate(); vm.waitUntilExit() } }

        let (status, stdout) = create.finish(seconds: 90)
        #expect(status == 0, "\(create.stderr)")
        let table = stdout.split(separator: "\n").dropFirst().map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(table == [["NAME", "ADDRESS"], [name, publicAddress]], "\(stdout)")
        #expect(create.stderr.contains("resources created: created "), "\(create.stderr)")
        #expect(create.stderr.contains("joins the mesh with a single-use invite through \(runner.address):\(runner.port) (a loopback address a cloud VM cannot reach"),
                "\(create.stderr)")

        let listed = try runner.gateways().first { $0["address"] as? String == publicAddress }
        #expect(listed?["status"] as? String == "alive")
        #expect(listed?["name"] as? String == name)
        #expect(listed?["backend"] as? String == backend)
        #expect(listed?["region"] as? String == region)
        #expect(listed?["domains"] as? [String] == [domain], "the VM's node gossips its domains")
        // The VM's node knows its own name (this node knows the backend and region it chose).
        let own = try WarrenProcess.runBlocking(["gateway", "list", "--json", "--state-dir", vmState])
        #expect(own.stdout.contains("\"\(name)\""), "\(own.stdout)")
        let node = try #require(listed?["node"] as? String)
        let roster = try runner.roster()
        #expect(roster.members.contains { $0.id == node && $0.role == "gateway" }, "\(roster)")

        let deleted = try runner.warren(["gateway", "delete", name, "-y"], environment: environment)
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(!FileManager.default.fileExists(atPath: runner.directory + "/gateways/" + name))
        #expect(try runner.roster().removed.contains(node), "the VM's node is removed from the mesh")
        #expect(try runner.gateways().isEmpty)
        return create.stderr
    }
}
