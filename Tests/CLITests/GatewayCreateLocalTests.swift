import AcmeTestSupport
import Foundation
import Testing

/// `warren gateway create/delete` with the local backend, end to end: a runner node, and gateway
/// nodes started by it as real processes on loopback addresses .60–76 of a /24 of 127/8 that each
/// test process picks at random (`gatewayTestNet`), so two runs on one machine do not meet.
@Suite(.serialized) struct GatewayCreateLocalTests {
    /// A node that never ran `mesh init` (the default mesh): the gateway joins by address.
    @Test func createWaitsUntilTheGatewayJoinsListShowsItAndDeleteStopsIt() throws {
        let runner = try BackgroundNode(address: "\(gatewayTestNet).60")
        defer { runner.stop() }

        let created = try runner.warren(["gateway", "create", "--project", "local", "--backend", "local", "--name", "gw-cli-a", "--address", "\(gatewayTestNet).61"])
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.stdout.hasPrefix("Creating gateway, it may take some time...\n"))
        let table = created.stdout.split(separator: "\n").dropFirst().map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(table == [["NAME", "ADDRESS"], ["gw-cli-a", "\(gatewayTestNet).61"]], "\(created.stdout)")
        #expect(created.stderr.contains("Using the local backend (--backend)."), "\(created.stderr)")
        // Not a terminal: one plain line a step, in order.
        let steps = ["resources created:", "booting:", "joined the mesh:", "ready:"].map { created.stderr.range(of: $0)?.lowerBound }
        #expect(steps.allSatisfy { $0 != nil }, "\(created.stderr)")
        #expect(steps.compactMap { $0 } == steps.compactMap { $0 }.sorted())

        let pidText = try String(contentsOfFile: runner.directory + "/gateways/gw-cli-a/gateway.pid", encoding: .utf8)
        let pid = try #require(pid_t(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        let listed = try runner.gateways().first { $0["name"] as? String == "gw-cli-a" }
        #expect(listed?["address"] as? String == "\(gatewayTestNet).61")
        #expect(listed?["status"] as? String == "alive")
        #expect(listed?["backend"] as? String == "local")
        let table2 = try runner.warren(["gateway", "list"])
        #expect(table2.stdout.contains("gw-cli-a") && table2.stdout.contains("alive"), "\(table2.stdout)")

        // The gateway is a node of its own: its API answers in its state directory.
        let own = try WarrenProcess.runBlocking(["peers", "--json", "--state-dir", runner.directory + "/gateways/gw-cli-a"])
        #expect(own.status == 0, "\(own.stderr)")

        let deleted = try runner.warren(["gateway", "delete", "gw-cli-a", "-y"])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(deleted.stdout.contains("Gateway gw-cli-a deleted."))
        #expect(kill(pid, 0) != 0, "the gateway process still runs")
        #expect(!FileManager.default.fileExists(atPath: runner.directory + "/gateways/gw-cli-a"))
        // It left the mesh gracefully, or is gone from the list.
        let gone = try BackgroundNode.eventually(15) {
            let entry = try runner.gateways().first { $0["name"] as? String == "gw-cli-a" }
            return entry == nil || ["left", "dead"].contains(entry?["status"] as? String ?? "")
        }
        #expect(gone)

        let again = try runner.warren(["gateway", "delete", "gw-cli-a", "-y"])
        #expect(again.status == 1)
        #expect(again.stderr.contains("gw-cli-a"), "\(again.stderr)")
    }

    @Test func inAMeshWithAdmissionTheGatewayJoinsWithAnInviteAsAGatewayAndDeleteRemovesIt() throws {
        let admin = try BackgroundNode(address: "\(gatewayTestNet).60", port: 7422, foundsMesh: true)
        defer { admin.stop() }
        let created = try admin.warren(["gateway", "create", "--project", "local", "--name", "gw-cli-m", "--address", "\(gatewayTestNet).61"])
        #expect(created.status == 0, "\(created.stderr)")

        // The gateway node was started with a single-use invite, not the admin's address; the token
        // is in its environment, not in its command line (/proc/PID/cmdline, what `ps` shows).
        let pidText = try String(contentsOfFile: admin.directory + "/gateways/gw-cli-m/gateway.pid", encoding: .utf8)
        let pid = try #require(pid_t(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        let arguments = BackgroundNode.commandLine(of: pid)
        #expect(arguments.contains("gw-cli-m") && !arguments.contains("--join"), "\(arguments)")
        #expect(!arguments.joined(separator: " ").contains("warren1."), "\(arguments)")
        let environment = String(decoding: try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ")), as: UTF8.self).split(separator: "\0")
        let join = try #require(environment.first { $0.hasPrefix("WARREN_JOIN_TOKEN=") }, "no WARREN_JOIN_TOKEN in the gateway's environment")
        #expect(join.dropFirst("WARREN_JOIN_TOKEN=".count).hasPrefix("warren1."), "\(join.prefix(30))")
        let node = try #require(try admin.gateways().first { $0["name"] as? String == "gw-cli-m" }?["node"] as? String)
        let roster = try admin.roster()
        #expect(roster.members.contains { $0.id == node && $0.role == "gateway" }, "\(roster)")

        // The gateway is no admin: it may not invite, so it may not make gateways either.
        let refused = try WarrenProcess.runBlocking(
            ["gateway", "create", "--project", "local", "--name", "gw-cli-n", "--state-dir", admin.directory + "/gateways/gw-cli-m"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("is not an admin of this mesh"), "\(refused.stderr)")
        #expect(refused.stderr.contains("Run `warren gateway create` on an admin's node"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: admin.directory + "/gateways/gw-cli-m/gateways/gw-cli-n"))

        // Deleted, it is out of the mesh for good: no longer a gateway of it, nor a member.
        let deleted = try admin.warren(["gateway", "delete", "gw-cli-m", "-y"])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(deleted.stderr.contains("removed node \(node.prefix(8)) from the mesh"), "\(deleted.stderr)")
        #expect(try admin.gateways().isEmpty)
        let after = try admin.roster()
        #expect(after.removed.contains(node), "\(after)")
        #expect(!after.members.contains { $0.id == node }, "\(after)")
        let peers = try admin.warren(["peers", "--json"])
        let listed = (try JSONSerialization.jsonObject(with: Data(peers.stdout.utf8)) as? [[String: Any]]) ?? []
        let entry = listed.first { $0["id"] as? String == node }
        #expect(entry == nil || entry?["state"] as? String == "removed", "\(peers.stdout)")
    }

    /// After a reboot (the node and its gateway's process gone), the node starts its local
    /// gateway again, with its identity and membership: no invite needed.
    @Test func aLocalGatewayStartsAgainWithTheNodeThatMadeIt() throws {
        let first = try BackgroundNode(address: "\(gatewayTestNet).72", foundsMesh: true)
        let created = try first.warren(["gateway", "create", "--project", "local", "--name", "gw-cli-boot", "--address", "\(gatewayTestNet).73", "--domain", "boot.example.com"])
        try #require(created.status == 0, "\(created.stderr)")
        let pidFile = first.directory + "/gateways/gw-cli-boot/gateway.pid"
        let oldPID = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let node = try #require(try first.gateways().first { $0["name"] as? String == "gw-cli-boot" }?["node"] as? String)
        first.stop(keepingState: true)
        // Killed; reaped by whoever inherits it once the node is gone.
        #expect(BackgroundNode.eventually(10) { kill(oldPID, 0) != 0 }, "the gateway process outlived the 'reboot'")

        let again = try BackgroundNode(address: "\(gatewayTestNet).72", reusing: first.directory)
        defer { again.stop() }
        // Running again: its own API answers (a restored member list alone could still say alive).
        let back = try BackgroundNode.eventually(30) {
            let own = try WarrenProcess.runBlocking(["peers", "--json", "--state-dir", again.directory + "/gateways/gw-cli-boot"], timeout: 10)
            return own.status == 0 && own.stdout.contains("alive")
        }
        let listed = try again.gateways().first { $0["name"] as? String == "gw-cli-boot" }
        #expect(back, "gateway list: \(String(describing: listed))")
        #expect(listed?["node"] as? String == node, "the same node, not a new one")
        #expect(listed?["domains"] as? [String] == ["boot.example.com"])
        let newPID = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(newPID != oldPID && kill(newPID, 0) == 0)
        let deleted = try again.warren(["gateway", "delete", "gw-cli-boot", "-y"])
        #expect(deleted.status == 0, "\(deleted.stderr)")
    }

    /// `--acme-email/--acme-directory/--acme-ca-bundle` become the mesh's ACME setting: the new
    /// gateway starts without ACME flags and follows it, ordering from a real pebble that it
    /// trusts only through the setting's CA bundle, and serves a run named under its domain over
    /// HTTPS. Root (the local gateway serves HTTP on 80 and HTTPS on 443, the defaults).
    @Test(.enabled(if: pebbleBinary != nil && getuid() == 0, "needs pebble and root (ports 80 and 443 on a loopback address)"))
    func theMeshsACMESettingReachesAGatewayStartedWithoutFlags() async throws {
        let runner = try BackgroundNode(address: "\(gatewayTestNet).74")
        defer { runner.stop() }
        let bad = try runner.warren(["gateway", "create", "--project", "local", "--name", "gw-cli-acme", "--acme-directory", "http://ca.example/dir"])
        #expect(bad.status != 0 && bad.stderr.contains("--acme-directory takes the https:// URL of an ACME directory"), "\(bad.stderr)")
        let badMail = try runner.warren(["gateway", "create", "--project", "local", "--name", "gw-cli-acme", "--acme-email", "ops at example"])
        #expect(badMail.status != 0 && badMail.stderr.contains("--acme-email takes an e-mail address"), "\(badMail.stderr)")
        let notPEM = runner.directory + "/not-a-bundle.pem"
        try "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n".write(toFile: notPEM, atomically: true, encoding: .utf8)
        let badBundle = try runner.warren(["gateway", "create", "--project", "local", "--name", "gw-cli-acme", "--acme-ca-bundle", notPEM])
        #expect(badBundle.status != 0 && badBundle.stderr.contains("--acme-ca-bundle takes a file of PEM certificates"), "\(badBundle.stderr)")

        let address = "\(gatewayTestNet).75", domain = "acme.gwc.test"
        let pebble = try Pebble(challengeHost: address, httpPort: 80)
        let app = runner.directory + "/app"
        defer {
            killProcesses(workingUnder: app)
            pebble.stop()
        }
        let created = try runner.warren(["gateway", "create", "--project", "local", "--name", "gw-cli-acme", "--address", address, "--domain", domain,
                                         "--acme-email", "ops@example.com", "--acme-directory", pebble.directoryURL, "--acme-ca-bundle", pebble.listenerCA])
        #expect(created.status == 0, "\(created.stderr)")
        let gatewayHome = runner.directory + "/gateways/gw-cli-acme"
        let pidText = try String(contentsOfFile: gatewayHome + "/gateway.pid", encoding: .utf8)
        let pid = try #require(pid_t(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        let arguments = BackgroundNode.commandLine(of: pid)
        #expect(arguments.contains("gw-cli-acme") && !arguments.contains { $0.hasPrefix("--acme") }, "it follows the mesh, no flags: \(arguments)")

        try FileManager.default.createDirectory(atPath: app, withIntermediateDirectories: true)
        try "hello from the mesh's CA\n".write(toFile: app + "/index.html", atomically: true, encoding: .utf8)
        let appPort = try freePort(on: "0.0.0.0")
        try """
            type: service
            name: shop
            gateway: \(address)
            port: "80:\(appPort)"
            commands:
              - python3 -m http.server \(appPort)

            """.write(toFile: app + "/.dstack.yml", atomically: true, encoding: .utf8)
        let run = try runner.warren(["run", app, "-d", "--project", "local"])
        #expect(run.status == 0, "\(run.stderr)")
        let name = "shop.\(domain)"
        var certs = ""
        let issued = try BackgroundNode.eventually(90) {
            certs = try WarrenProcess.runBlocking(["certs", "--state-dir", gatewayHome]).stdout
            return certs.contains(name) && certs.contains("Pebble")
        }
        let log = (try? String(contentsOfFile: gatewayHome + "/gateway.log", encoding: .utf8)) ?? "(see \(gatewayHome))"
        #expect(issued, "no certificate for \(name) from the mesh's CA:\n\(certs)\n--- gateway\n\(log.suffix(4000))\n--- pebble\n\(pebble.log.suffix(3000))")
        if issued {
            let rootPEM = runner.directory + "/pebble-root.pem"
            try pebble.rootPEM().write(toFile: rootPEM, atomically: true, encoding: .utf8)
            let answer = try await launch(URL(fileURLWithPath: "/usr/bin/curl"), [
                "-sS", "--max-time", "10", "--cacert", rootPEM, "--resolve", "\(name):443:\(address)", "https://\(name)/",
            ], timeout: .seconds(15))
            #expect(answer.stdout.contains("hello from the mesh's CA"), "\(answer.stdout) \(answer.stderr)")
        }
        #expect(try runner.warren(["stop", "shop"]).status == 0)
        #expect(try runner.warren(["gateway", "delete", "gw-cli-acme", "-y"]).status == 0)
    }

    @Test func aTimeoutRemovesWhatWasMadeAndSaysSo() throws {
        // The gateway process runs but never joins.
        let neverJoins = try BackgroundNode.fakeWarren("echo waiting forever; exec sleep 600")
        defer { try? FileManager.default.removeItem(atPath: neverJoins) }
        let runner = try BackgroundNode(address: "\(gatewayTestNet).62", gatewayBinary: neverJoins)
        defer { runner.stop() }
        let r = try runner.warren(["gateway", "create", "--project", "local", "--name", "gw-cli-slow", "--address", "\(gatewayTestNet).63", "--timeout", "1"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("gateway gw-cli-slow did not join the mesh within 1.0 seconds"), "\(r.stderr)")
        #expect(r.stderr.contains("waiting forever"), "the log's tail is shown: \(r.stderr)")
        #expect(r.stderr.contains("removed what was made for gw-cli-slow"), "\(r.stderr)")
        #expect(!r.stdout.contains("NAME"))
        #expect(!FileManager.default.fileExists(atPath: runner.directory + "/gateways/gw-cli-slow"))
        #expect(BackgroundNode.gatewayProcesses(named: "gw-cli-slow").isEmpty)
    }

    @Test func aGatewayThatExitsIsReportedWithItsLog() throws {
        let fails = try BackgroundNode.fakeWarren("echo 'error: cannot bind \(gatewayTestNet).69:7420: address in use'; exit 1")
        defer { try? FileManager.default.removeItem(atPath: fails) }
        let runner = try BackgroundNode(address: "\(gatewayTestNet).68", gatewayBinary: fails)
        defer { runner.stop() }
        let r = try runner.warren(["gateway", "create", "--project", "local", "--name", "gw-cli-exit", "--address", "\(gatewayTestNet).69"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("the gateway node gw-cli-exit exited before joining the mesh"), "\(r.stderr)")
        #expect(r.stderr.contains("cannot bind \(gatewayTestNet).69:7420: address in use"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: runner.directory + "/gateways/gw-cli-exit"))
    }

    @Test func ctrlCCancelsTheCreationAndRemovesWhatWasMade() throws {
        let neverJoins = try BackgroundNode.fakeWarren("exec sleep 600")
        defer { try? FileManager.default.removeItem(atPath: neverJoins) }
        let runner = try BackgroundNode(address: "\(gatewayTestNet).64", gatewayBinary: neverJoins)
        defer { runner.stop() }
        let create = try RunningWarren(
            ["gateway", "create", "--project", "local", "--name", "gw-cli-int", "--address", "\(gatewayTestNet).65", "--state-dir", runner.directory],
            environment: [:])
        try #require(create.waitForStderr(containing: "booting:", seconds: 30), "\(create.stderr)")
        let pidText = try String(contentsOfFile: runner.directory + "/gateways/gw-cli-int/gateway.pid", encoding: .utf8)
        let pid = try #require(pid_t(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(create.process.processIdentifier, SIGINT)
        let (status, stdout) = create.finish(seconds: 60)
        #expect(status == 130, "\(create.stderr)")
        #expect(create.stderr.contains("cleaning up"), "\(create.stderr)")
        #expect(create.stderr.contains("removed what was made for gw-cli-int"), "\(create.stderr)")
        #expect(!stdout.contains("NAME"))
        #expect(kill(pid, 0) != 0, "the gateway process still runs")
        #expect(!FileManager.default.fileExists(atPath: runner.directory + "/gateways/gw-cli-int"))
    }

    @Test func unknownBackendsAreRefusedByTheCLIAndByTheNode() throws {
        let runner = try BackgroundNode(address: "\(gatewayTestNet).66")
        defer { runner.stop() }
        let flag = try runner.warren(["gateway", "create", "--project", "local", "--backend", "openstack"])
        #expect(flag.status == 2)
        #expect(flag.stderr.contains("unknown backend `openstack`"), "\(flag.stderr)")

        // A project's stored setting is checked by the node.
        let stored = try runner.warren(["secrets", "add", "WARREN_BACKEND", "openstack", "--project", "odd"])
        #expect(stored.status == 0, "\(stored.stderr)")
        let r = try runner.warren(["gateway", "create", "--project", "odd"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("unknown gateway backend \"openstack\": use one of local, aws, azure, gcp"), "\(r.stderr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: runner.directory + "/gateways")) ?? []).isEmpty)
    }

    @Test func awsWithoutCredentialsNamesTheVariables() throws {
        let runner = try BackgroundNode(address: "\(gatewayTestNet).66", port: 7421)
        defer { runner.stop() }
        let r = try runner.warren(["gateway", "create", "--project", "local", "--backend", "aws"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("AWS_ACCESS_KEY_ID"), "\(r.stderr)")
        #expect(r.stderr.contains("warren project set-backend"), "\(r.stderr)")
        // All at once, each with how to set it, not one per attempt.
        for line in ["the AWS access key: set AWS_ACCESS_KEY_ID", "the AWS secret key: set AWS_SECRET_ACCESS_KEY",
                     "the AWS region: set AWS_REGION or AWS_DEFAULT_REGION", "set WARREN_RELEASE_URL", "missing 4 settings"] {
            #expect(r.stderr.contains(line), "`\(line)` missing: \(r.stderr)")
        }

        let set = try runner.warren(["project", "set-backend", "cloudy", "aws"])
        #expect(set.status == 1)
        #expect(set.stderr.contains("AWS_ACCESS_KEY_ID") && set.stderr.contains("Nothing stored"), "\(set.stderr)")
    }

    @Test func setBackendStoresTheKindAndCredentialsAsSecrets() throws {
        let runner = try BackgroundNode(address: "\(gatewayTestNet).67")
        defer { runner.stop() }
        let env = ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "eu-west-1",
                   "WARREN_RELEASE_URL": "https://example.com/warren.tar.gz"]
        let set = try runner.warren(["project", "set-backend", "cloudy", "aws"], environment: env)
        #expect(set.status == 0, "\(set.stderr)")
        let list = try runner.warren(["secrets", "list", "--project", "cloudy", "--json"])
        let names = ((try? JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
        #expect(Set(names) == ["WARREN_BACKEND", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "WARREN_RELEASE_URL"])

        // A name taken by a gateway of the mesh, or a local address for a cloud, is refused before anything is made.
        let address = try runner.warren(["gateway", "create", "--project", "cloudy", "--address", "\(gatewayTestNet).68"])
        #expect(address.status == 1)
        #expect(address.stderr.contains("--address is for the local backend"), "\(address.stderr)")
    }
}
