import Foundation
import MeshNode
@testable import Provisioning
@testable import Trust
@testable import Link
import Testing

/// What a new user and a script see: versions, unknown commands, default files, JSON that parses,
/// times a script can read, and a status that says whether the node is up.
@Suite struct CLIUsageTests {
    @Test func versionIsPrintedWithItsCommit() async throws {
        let r = try await WarrenProcess.run(["--version"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "\(WarrenVersion.current) (commit \(WarrenVersion.commit))\n", "\(r.stdout)")
        // A short hex commit, or "unknown" for a build outside git: never anything else (a path).
        let commit = WarrenVersion.commit
        #expect(commit == "unknown" || (commit.count >= 7 && commit.allSatisfy(\.isHexDigit)), "\(commit)")
        // A build told its commit (`make`, scripts/release.sh export WARREN_COMMIT) names that one.
        if let told = ProcessInfo.processInfo.environment["WARREN_COMMIT"], !told.isEmpty {
            #expect(commit == told)
        }
    }

    @Test(arguments: [
        (["aply", "-f", "x.yml"], "unknown command `aply` for `warren`", "Did you mean `warren apply`?"),
        (["secrets", "lst", "--project", "p"], "unknown command `lst` for `warren secrets`", "Did you mean `warren secrets list`?"),
        (["frobnicate"], "unknown command `frobnicate` for `warren`", "The commands are: run, apply"),
    ])
    func unknownCommandsAreCalledThat(arguments: [String], message: String, hint: String) async throws {
        let r = try await WarrenProcess.run(arguments)
        #expect(r.status == 2)
        #expect(r.stderr.contains(message) && r.stderr.contains(hint), "\(r.stderr)")
    }

    @Test(arguments: [["secrets", "ls"], ["secrets", "rm"], ["gateway", "ls"], ["gateway", "rm"], ["project", "ls"], ["apply"], ["status"]])
    func aliasesAndTwinsAreCommands(words: [String]) async throws {
        let r = try await WarrenProcess.run(words + ["--help"])
        #expect(r.status == 0, "\(words): \(r.stderr)")
        #expect(r.stdout.contains("USAGE: warren"), "\(r.stdout)")
    }

    @Test func runWithoutAFileNamesTheDefaultsItLookedFor() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for verb in [["run", dir, "-d"], ["apply", dir]] {
            let r = try await WarrenProcess.run(verb + ["--project", "local", "--state-dir", dir])
            #expect(r.status == 1)
            #expect(r.stderr.contains(".dstack.yml") && r.stderr.contains("service.dstack.yml") && r.stderr.contains(dir), "\(r.stderr)")
        }
    }

    @Test func statusFailsWhenNoNodeRuns() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try await WarrenProcess.run(["status", "--state-dir", dir])
        #expect(r.status == 1)
        #expect(r.stderr.contains("no node is running"), "\(r.stderr)")
    }

    @Test func makeInstallPutsTheBinaryCompletionsAndAUnit() async throws {
        let prefix = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: prefix) }
        let make = try await launch(URL(fileURLWithPath: "/usr/bin/env"), [
            "make", "-s", "install", "PREFIX=\(prefix)", "BIN=\(WarrenProcess.binary.path)",
        ], timeout: .seconds(60))
        #expect(make.status == 0, "\(make.stderr)")
        #expect(FileManager.default.isExecutableFile(atPath: prefix + "/bin/warren"))
        for (file, text) in [
            ("share/bash-completion/completions/warren", "status"), ("share/zsh/site-functions/_warren", "#compdef warren"),
            ("share/fish/vendor_completions.d/warren.fish", "warren"),
            ("lib/systemd/system/warren-node.service", "ExecStart=\(prefix)/bin/warren node start"),
        ] {
            let contents = (try? String(contentsOfFile: prefix + "/" + file, encoding: .utf8)) ?? ""
            #expect(contents.contains(text), "\(file) lacks `\(text)`: \(contents.prefix(300))")
        }
        let unit = (try? String(contentsOfFile: prefix + "/lib/systemd/system/warren-node.service", encoding: .utf8)) ?? ""
        #expect(unit.contains("KillMode=process"), "stopping the node's service must leave its runs running")
    }

    @Test func nodeIDAndConfigCheckTakeJSON() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let id = try await WarrenProcess.run(["node", "id", "--json", "--state-dir", dir])
        #expect(id.status == 0, "\(id.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(id.stdout.utf8)) as? [String: Any])
        #expect((object["id"] as? String)?.isEmpty == false, "\(id.stdout)")

        let check = try await WarrenProcess.run([
            "config", "check", "-f", "examples/service.dstack.yml", "--secret", "GATEWAY_IP=192.0.2.1", "--json", "--state-dir", dir,
        ])
        #expect(check.status == 0, "\(check.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any])
        #expect(summary["gateway"] as? String == "192.0.2.1", "\(check.stdout)")
    }
}

/// One gateway node that also runs services, driven through the CLI as a user would.
@Suite(.serialized) struct CLINodeTests {
    @Test func statusPeersJSONAndAttachedInterrupt() async throws {
        let root = try temporaryDirectory()
        let address = randomLoopback()
        let home = root + "/node"
        let env = ["WARREN_HOME": home]
        let node = try NodeProcess(name: "truth", arguments: [
            "--state-dir", home, "--listen", "\(address):\(try freePort(on: address))",
            "--gateway", "--public-address", address, "--name", "truth-gw", "--domain", "announced.truth.test",
        ], environment: env, logPath: root + "/node.log")
        defer {
            killProcesses(workingUnder: root + "/apps")
            try? FileManager.default.removeItem(atPath: root)
        }
        func warren(_ arguments: [String]) async throws -> WarrenProcess.Result {
            try await WarrenProcess.run(arguments, environment: env)
        }
        let up = try await eventually(within: 30) { try await warren(["status"]).status == 0 }
        #expect(up, "\(node.log)")
        guard up else { await node.stop(); return }

        // status: ID, role, version, uptime; as JSON with RFC 3339 times.
        let id = try await warren(["node", "id"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let status = try await warren(["status"])
        for text in [id, "gateway", WarrenVersion.current, "uptime", address] {
            #expect(status.stdout.contains(text), "`\(text)` missing from status:\n\(status.stdout)")
        }
        let statusJSON = try object(try await warren(["status", "--json"]).stdout)
        let nodeJSON = try #require(statusJSON["node"] as? [String: Any])
        #expect(nodeJSON["id"] as? String == id)
        #expect(rfc3339(nodeJSON["started"]).map { abs($0.timeIntervalSinceNow) < 600 } == true, "\(nodeJSON)")
        #expect(statusJSON["uptimeSeconds"] as? Int != nil, "\(statusJSON)")

        // peers: the node itself is a member of the mesh too.
        let peers = try await warren(["peers"])
        #expect(peers.stdout.contains(String(id.prefix(8))) && peers.stdout.contains("(this node)"), "\(peers.stdout)")
        let peersJSON = try #require(try JSONSerialization.jsonObject(with: Data(try await warren(["peers", "--json"]).stdout.utf8)) as? [[String: Any]])
        #expect(peersJSON.contains { $0["id"] as? String == id && $0["isSelf"] as? Bool == true && $0["state"] as? String == "alive" }, "\(peersJSON)")

        // apply with dstack's default file name, no -f.
        #expect(try await warren(["secrets", "add", "GATEWAY_IP", address, "--project", "local"]).status == 0)
        let external = try freePort(on: address)
        let (app, appPort) = try serviceDirectory(root + "/apps/one", name: ".dstack.yml", external: external)
        let applied = try await warren(["apply", app, "--project", "local"])
        #expect(applied.status == 0, "\(applied.stderr)\n\(node.log)")
        #expect(applied.stdout.contains("is up at http://\(address):\(external)"), "\(applied.stdout)")
        let runName = try #require(applied.stdout.split(whereSeparator: \.isWhitespace).dropFirst().first.map(String.init))

        // ps --json: `created` is an RFC 3339 time of now, not seconds since 2001.
        let ps = try #require(try JSONSerialization.jsonObject(with: Data(try await warren(["ps", "--json"]).stdout.utf8)) as? [[String: Any]])
        let created = try #require(ps.first { $0["name"] as? String == runName }?["created"])
        #expect(rfc3339(created).map { abs($0.timeIntervalSinceNow) < 600 } == true, "created: \(created)")

        // logs --json: one object a line, also for the app's output. The request goes to the app
        // itself: a gateway node does not proxy to its own runs.
        _ = await fetch("http://127.0.0.1:\(appPort)/")
        var logLines: [[String: Any]] = []
        let logged = try await eventually(within: 10) {
            let logs = try await warren(["logs", runName, "--json"])
            logLines = logs.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            return logs.status == 0 && !logLines.isEmpty && logLines.count == logs.stdout.split(separator: "\n").count
        }
        #expect(logged, "logs --json lines that do not parse, or none: \(logLines)")
        #expect(logLines.allSatisfy { $0["run"] as? String == runName && $0["line"] is String }, "\(logLines)")

        // config check asks the running node for the project's secrets, shown masked.
        let secretValue = "s3cr3t-\(UUID().uuidString)"
        #expect(try await warren(["secrets", "add", "API_KEY", secretValue, "--project", "local"]).status == 0)
        let (checked, _) = try serviceDirectory(root + "/apps/checked", name: ".dstack.yml", external: external,
                                                extra: "env:\n  KEY: ${{ secrets.API_KEY }}\n")
        let check = try await warren(["config", "check", "-f", checked + "/.dstack.yml", "--project", "local", "--state-dir", home])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains(address) && check.stdout.contains("KEY=***") && !check.stdout.contains(secretValue), "\(check.stdout)")
        let unknown = try await warren(["config", "check", "-f", checked + "/.dstack.yml", "--project", "nosuch"])
        #expect(unknown.status == 1 && unknown.stderr.contains("no project named `nosuch`"), "\(unknown.stderr)")

        // A domain the gateway announces needs no resolver; another one says where the node looked.
        let (announcedApp, _) = try serviceDirectory(root + "/apps/announced", name: ".dstack.yml", external: try freePort(on: address),
                                                  gateway: "announced.truth.test")
        let byDomain = try await warren(["run", announcedApp, "-d", "--project", "local"])
        #expect(byDomain.status == 0 && byDomain.stdout.contains("announced.truth.test"), "\(byDomain.stderr)")
        let (unknownDomain, _) = try serviceDirectory(root + "/apps/unknown", name: ".dstack.yml", external: try freePort(on: address),
                                                      gateway: "nowhere.truth.invalid")
        let notResolved = try await warren(["run", unknownDomain, "-d", "--project", "local"])
        #expect(notResolved.status == 1)
        #expect(notResolved.stderr.contains("resolved on the node") && notResolved.stderr.contains("WARREN_HOSTS"), "\(notResolved.stderr)")

        // A healthy lease is held, not counting down.
        let leases = try await warren(["leases"])
        #expect(leases.stdout.contains("held (renewed every 10s)") && !leases.stdout.contains("in 2"), "\(leases.stdout)")

        // A project that does not exist is an error that lists the projects there are.
        for command in [["run", app, "-d", "--project", "nosuch"], ["secrets", "list", "--project", "nosuch"],
                        ["gateway", "create", "--project", "azure", "--address", address]] {
            let refused = try await warren(command)
            #expect(refused.status == 1, "\(command): \(refused.stdout)")
            #expect(refused.stderr.contains("no project named `\(command.last == address ? "azure" : "nosuch")`")
                    && refused.stderr.contains("local"), "\(refused.stderr)")
        }
        #expect(!((try? FileManager.default.contentsOfDirectory(atPath: home + "/gateways")) ?? []).contains { !$0.hasPrefix(".") },
                "a gateway was made for a project that does not exist")

        // dstack fields Warren ignores are said once; a mistyped command is named.
        let (ignoring, _) = try serviceDirectory(root + "/apps/ignoring", name: ".dstack.yml", external: try freePort(on: address),
                                                 extra: "resources:\n  cpu: 2\nreplicas: 1\n")
        let noted = try await warren(["run", ignoring, "-d", "--project", "local"])
        #expect(noted.status == 0, "\(noted.stderr)")
        #expect(noted.stderr.components(separatedBy: "ignored").count == 2 && noted.stderr.contains("replicas, resources"), "\(noted.stderr)")
        let (typo, _) = try serviceDirectory(root + "/apps/typo", name: ".dstack.yml", external: try freePort(on: address), command: "pyhton -m http.server")
        let notFound = try await warren(["run", typo, "-d", "--project", "local"])
        #expect(notFound.status == 1)
        #expect(notFound.stderr.contains("command not found: pyhton"), "\(notFound.stderr)")

        let withRun = try await warren(["status"])
        #expect(withRun.stdout.contains(runName) && withRun.stdout.contains("\(external)"), "\(withRun.stdout)")

        // Attached run: the URL on stdout, Ctrl-C stops the run, says so, exits 130.
        let second = try freePort(on: address)
        let (attachedApp, _) = try serviceDirectory(root + "/apps/two", name: "service.dstack.yml", external: second)
        let attached = try AttachedWarren(["run", attachedApp, "--project", "local"], environment: env, output: root + "/attached.out")
        let announced = await eventually(within: 30) { attached.stdout.contains("is up at http://\(address):\(second)") }
        #expect(announced, "no URL on stdout: \(attached.stdout)\n\(attached.stderr)")
        attached.interrupt()
        let status130 = await attached.waitForExit(seconds: 20)
        #expect(status130 == 130, "exit status \(String(describing: status130)): \(attached.stderr)")
        #expect(attached.stdout.contains("stopped (interrupted)"), "\(attached.stdout)")
        let after = try await warren(["ps", "-a", "--json"])
        #expect(after.stdout.contains("\"stopped\""), "\(after.stdout)")

        #expect(try await warren(["stop", runName]).status == 0)
        await node.stop()
        let down = try await warren(["status"])
        #expect(down.status == 1, "\(down.stdout)")
    }

    private func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
    }

    private func serviceDirectory(
        _ directory: String, name: String, external: Int, command: String = "python3 -m http.server", extra: String = "",
        gateway: String = "${{ secrets.GATEWAY_IP }}"
    ) throws -> (String, Int) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let appPort = try freePort(on: "0.0.0.0")
        try """
            type: service
            gateway: \(gateway)
            port: "\(external):\(appPort)"
            commands:
              - \(command) \(appPort)

            """.appending(extra).write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        return (directory, appPort)
    }
}

/// A `warren` command left running (an attached `run`), its output in files to read as it goes.
final class AttachedWarren: @unchecked Sendable {
    private let process = Process()
    private let outPath: String
    private let errPath: String

    init(_ arguments: [String], environment: [String: String], output: String) throws {
        outPath = output
        errPath = output + ".err"
        for path in [outPath, errPath] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        process.executableURL = WarrenProcess.binary
        process.arguments = arguments
        process.currentDirectoryURL = WarrenProcess.packageRoot
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var stdout: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

    /// Ctrl-C, as a terminal sends it.
    func interrupt() { kill(process.processIdentifier, SIGINT) }

    /// The exit status, or nil (and SIGKILL) if it had not exited after `seconds`.
    func waitForExit(seconds: TimeInterval) async -> Int32? {
        let exited = await eventually(within: seconds) { !process.isRunning }
        if !exited { kill(process.processIdentifier, SIGKILL); return nil }
        return process.terminationStatus
    }
}

func temporaryDirectory() throws -> String {
    // Short: a node's Unix socket path must fit in 108 bytes.
    var bytes = Array("/tmp/warren-cli-XXXXXX".utf8CString)
    guard let made = mkdtemp(&bytes) else { throw POSIXError(.EIO) }
    return String(cString: made)
}

/// A loopback address of this test's own, so tests and a user's nodes never collide.
func randomLoopback() -> String {
    "127.\(Int.random(in: 100...250)).\(Int.random(in: 0...255)).\(Int.random(in: 2...254))"
}

/// An RFC 3339 time as `--json` prints it.
func rfc3339(_ value: Any?) -> Date? {
    guard let text = value as? String else { return nil }
    return ISO8601DateFormatter().date(from: text)
}

/// Deleting a gateway that serves runs, and deleting it again; removing ended runs.
@Suite(.serialized) struct CLIGatewayDeleteTests {
    @Test func deletingAGatewayThatServesRunsNeedsYesAndNamesThem() async throws {
        let runnerAddress = randomLoopback(), gatewayAddress = randomLoopback()
        let runner = try BackgroundNode(address: runnerAddress, port: try freePort(on: runnerAddress))
        let apps = try temporaryDirectory()
        defer {
            killProcesses(workingUnder: apps)
            runner.stop()
            try? FileManager.default.removeItem(atPath: apps)
        }
        let name = "gw-truth-\(UUID().uuidString.prefix(6).lowercased())"
        let created = try runner.warren(["gateway", "create", "--project", "local", "--backend", "local", "--name", name, "--address", gatewayAddress])
        try #require(created.status == 0, "\(created.stderr)")
        #expect(try runner.warren(["secrets", "add", "GATEWAY_IP", gatewayAddress, "--project", "local"]).status == 0)

        let external = try freePort(on: gatewayAddress), appPort = try freePort(on: "0.0.0.0")
        try """
            type: service
            gateway: ${{ secrets.GATEWAY_IP }}
            port: "\(external):\(appPort)"
            commands:
              - python3 -m http.server \(appPort)

            """.write(toFile: apps + "/.dstack.yml", atomically: true, encoding: .utf8)
        let run = try runner.warren(["run", apps, "-d", "--project", "local"])
        try #require(run.status == 0, "\(run.stderr)")
        let runName = try #require(run.stdout.split(whereSeparator: \.isWhitespace).dropFirst().first.map(String.init))

        // stdin is not a terminal here: without --yes nothing is deleted, and the run is named.
        let refused = try runner.warren(["gateway", "delete", name])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains(runName) && refused.stderr.contains("--yes"), "\(refused.stderr)")
        #expect(try runner.gateways().contains { $0["name"] as? String == name && $0["status"] as? String == "alive" })

        // An active run is not removed; stopped, it is.
        let active = try runner.warren(["rm", runName])
        #expect(active.status == 1 && active.stderr.contains("stop it first"), "\(active.stderr)")

        let deleted = try runner.warren(["gateway", "delete", name, "--yes"])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(deleted.stdout.contains("These runs have no gateway now: \(runName)"), "\(deleted.stdout)")

        // The run says what became of its gateway, and shows no dead URL.
        let ps = try runner.warren(["ps", "--json"])
        let runs = try JSONSerialization.jsonObject(with: Data(ps.stdout.utf8)) as? [[String: Any]] ?? []
        let orphan = try #require(runs.first { $0["name"] as? String == runName }, "\(ps.stdout)")
        let path = orphan["path"] as? [String: Any]
        #expect(path?["state"] as? String == "gone" && path?["lastError"] as? String == "gateway \(name) was deleted", "\(ps.stdout)")
        #expect(orphan["url"] == nil && orphan["state"] as? String == "running", "\(ps.stdout)")
        let table = try runner.warren(["ps"]).stdout
        #expect(table.contains("gateway \(name) was deleted") && !table.contains("http://\(gatewayAddress)"), "\(table)")

        // Again: not "was not created by this node".
        let again = try runner.warren(["gateway", "delete", name, "--yes"])
        #expect(again.status == 1)
        #expect(!again.stderr.contains("not created by this node")
                && (again.stderr.contains("deleted already") || again.stderr.contains("no gateway named")), "\(again.stderr)")

        #expect(try runner.warren(["stop", runName]).status == 0)
        let pruned = try runner.warren(["rm", "--prune"])
        #expect(pruned.status == 0 && pruned.stdout.contains("Removed run \(runName)"), "\(pruned.stderr)")
        let all = try runner.warren(["ps", "-a", "--json"])
        #expect(all.status == 0 && !all.stdout.contains(runName), "\(all.stdout)")
    }

    /// `gateway delete` right after `warren stop` of the only run it served: the stop waited for
    /// the gateway to release the binding, so nothing is bound and no --yes is needed.
    @Test func deletingRightAfterStoppingItsRunNeedsNoYes() async throws {
        let runnerAddress = randomLoopback(), gatewayAddress = randomLoopback()
        let runner = try BackgroundNode(address: runnerAddress, port: try freePort(on: runnerAddress))
        let apps = try temporaryDirectory()
        defer {
            killProcesses(workingUnder: apps)
            runner.stop()
            try? FileManager.default.removeItem(atPath: apps)
        }
        let name = "gw-stop-\(UUID().uuidString.prefix(6).lowercased())"
        let created = try runner.warren(["gateway", "create", "--project", "local", "--backend", "local", "--name", name, "--address", gatewayAddress])
        try #require(created.status == 0, "\(created.stderr)")
        let external = try freePort(on: gatewayAddress), appPort = try freePort(on: "0.0.0.0")
        try """
            type: service
            gateway: \(gatewayAddress)
            port: "\(external):\(appPort)"
            commands:
              - python3 -m http.server \(appPort)

            """.write(toFile: apps + "/.dstack.yml", atomically: true, encoding: .utf8)
        let run = try runner.warren(["run", apps, "-d", "--project", "local"])
        try #require(run.status == 0, "\(run.stderr)")
        let runName = try #require(run.stdout.split(whereSeparator: \.isWhitespace).dropFirst().first.map(String.init))
        #expect(try runner.warren(["stop", runName]).status == 0)
        let deleted = try runner.warren(["gateway", "delete", name])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(!deleted.stderr.contains(runName) && !deleted.stdout.contains(runName), "\(deleted.stderr)\n\(deleted.stdout)")
    }
}
