import AcmeTestSupport
import Foundation
import Testing

/// HTTPS through the whole stack: a gateway node with an ACME directory (a real pebble), a runner
/// node joined to it, `warren run` of a service on the gateway's domain. The gateway orders the
/// certificate itself, answers the CA's HTTP-01 check, serves HTTPS over HTTP/1.1 and HTTP/2 and
/// redirects plain HTTP; `warren certs` shows it.
/// One gateway node with ACME against its own pebble (whose DNS points at the gateway), and a
/// runner node joined to it, each with its own WARREN_HOME under `root`.
struct GatewayWithRunner {
    let root: String
    let gatewayHost: String
    let httpPort: Int
    let httpsPort: Int
    let pebble: Pebble
    let gatewayEnv: [String: String]
    let runnerEnv: [String: String]
    let gateway: NodeProcess

    /// Starts them, runs `body`, records what it throws with the gateway's and pebble's logs, then
    /// stops both nodes, the apps started under `root/<apps>` and pebble.
    static func run(gatewayName: String, domain: String, apps: String, _ body: (GatewayWithRunner) async throws -> Void) async throws {
        let root = try temporaryDirectory()
        let gatewayHost = randomLoopback(), runnerHost = randomLoopback()
        let httpPort = try freePort(on: gatewayHost), httpsPort = try freePort(on: gatewayHost)
        let meshPort = try freePort(on: gatewayHost), runnerPort = try freePort(on: runnerHost)
        let pebble = try Pebble(challengeHost: gatewayHost, httpPort: httpPort)
        let gatewayEnv = ["WARREN_HOME": root + "/gw"], runnerEnv = ["WARREN_HOME": root + "/runner"]
        let gateway = try NodeProcess(name: "gw", arguments: [
            "--state-dir", root + "/gw", "--listen", "\(gatewayHost):\(meshPort)",
            "--gateway", "--public-address", gatewayHost, "--name", gatewayName, "--domain", domain,
            "--acme-directory", pebble.directoryURL, "--acme-ca-bundle", pebble.listenerCA, "--acme-email", "ops@example.com",
            "--http-port", "\(httpPort)", "--https-port", "\(httpsPort)",
        ], environment: gatewayEnv, logPath: root + "/gw.log")
        let runner = try NodeProcess(name: "runner", arguments: [
            "--state-dir", root + "/runner", "--listen", "\(runnerHost):\(runnerPort)", "--join", "\(gatewayHost):\(meshPort)",
        ], environment: runnerEnv, logPath: root + "/runner.log")
        defer {
            killProcesses(workingUnder: root + "/" + apps)
            pebble.stop()
            try? FileManager.default.removeItem(atPath: root)
        }
        do {
            try await body(GatewayWithRunner(root: root, gatewayHost: gatewayHost, httpPort: httpPort, httpsPort: httpsPort, pebble: pebble,
                                             gatewayEnv: gatewayEnv, runnerEnv: runnerEnv, gateway: gateway))
        } catch {
            Issue.record("\(error)\n--- gateway\n\(gateway.log)\n--- pebble\n\(pebble.log)")
        }
        await runner.stop()
        await gateway.stop()
    }
}

@Suite(.serialized) struct HTTPSProcessTests {
    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func aServiceOnTheGatewaysDomainGetsACertificateAndHTTPS() async throws {
        let domain = "shop.https.test"
        try await GatewayWithRunner.run(gatewayName: "https-gw", domain: domain, apps: "app") { rig in
            try await self.check(root: rig.root, domain: domain, gatewayHost: rig.gatewayHost, httpPort: rig.httpPort, httpsPort: rig.httpsPort,
                                 pebble: rig.pebble, gatewayEnv: rig.gatewayEnv, runnerEnv: rig.runnerEnv, gateway: rig.gateway)
        }
    }

    /// Two gateway nodes announcing one domain, both with ACME against one pebble, and a runner
    /// whose service is on that domain: the gateways place one order between them over the mesh
    /// (pebble's DNS points at the second, so the CA's check may reach a gateway that does not
    /// order) and both serve the same certificate.
    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func twoGatewaysOnOneDomainPlaceOneOrderAndServeOneCertificate() async throws {
        try await GatewayPair.run(domain: "pair.https.test", name: "pair") { pair in
            let (domain, root, pebble) = (pair.domain, pair.root, pair.pebble)
            var listings = ["", ""]
            let issued = try await eventually(within: 90) {
                for i in 0..<2 { listings[i] = try await WarrenProcess.run(["certs"], environment: pair.env(i)).stdout }
                return listings.allSatisfy { $0.contains(domain) && $0.contains("Pebble") }
            }
            try #require(issued, "not both gateways hold a certificate for \(domain):\n\(listings.joined(separator: "\n"))")
            // Each lists both as holding it, in the table and in --json, once the claims say so.
            var holders: [[String]] = [[], []]
            let bothHold = try await eventually(within: 30) {
                for i in 0..<2 {
                    holders[i] = try await pair.certificate(i)?["holders"] as? [String] ?? []
                    listings[i] = try await WarrenProcess.run(["certs"], environment: pair.env(i)).stdout
                }
                return holders.allSatisfy { $0 == ["pair-gw1", "pair-gw2"] } && listings.allSatisfy { $0.contains("pair-gw1, pair-gw2") }
            }
            #expect(bothHold, "\(holders)\n\(listings.joined(separator: "\n"))")
            #expect(pebble.orderCount == 1, "one order at the CA for two gateways: \(pebble.orderCount)")
            let rootPEM = root + "/pebble-root.pem"
            try pebble.rootPEM().write(toFile: rootPEM, atomically: true, encoding: .utf8)
            var fingerprints: [String] = []
            for i in 0..<2 {
                fingerprints.append(try await pair.fingerprint(i))
                let answer = try await pair.get(i, cacert: rootPEM)
                #expect(answer.stdout.contains("hello from the pair"), "\(pair.hosts[i]): \(answer.stdout) \(answer.stderr)")
            }
            #expect(fingerprints[0].contains("Fingerprint=") && fingerprints[0] == fingerprints[1], "\(fingerprints)")
        }
    }

    /// The gateway that orders a name's certificate is SIGKILLed: the other gateway's claim
    /// becomes the earliest live one once the dead orderer's lapses (claims of 8 s here, through
    /// `WARREN_CERT_CLAIM_LIFETIME_SECONDS`), and it orders the renewal itself (certificates of
    /// 30 s, renewal due 20 s in) and serves it, from the CA and not from the dead gateway.
    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func whenTheOrderingGatewaysProcessIsKilledTheOtherRenewsTheCertificate() async throws {
        try await GatewayPair.run(domain: "takeover.https.test", name: "takeover", certificateValidity: 30,
                                  environment: ["WARREN_CERT_CLAIM_LIFETIME_SECONDS": "8"]) { pair in
            var first: [String: Any]?
            var orderer = -1
            let shared = try await eventually(within: 90) {
                for i in 0..<2 {
                    // The gateway that did not order serves the certificate as shared by the other.
                    if let certificate = try await pair.certificate(i), certificate["sharedBy"] is String,
                       (certificate["issuer"] as? String)?.contains("Pebble") == true {
                        (first, orderer) = (certificate, 1 - i)
                        return true
                    }
                }
                return false
            }
            try #require(shared, "no gateway served a certificate shared by the other within 90 s")
            let survivor = 1 - orderer
            let firstExpiry = try #require(first?["notAfter"] as? String)
            #expect(pair.pebble.orderCount == 1, "one order for both gateways: \(pair.pebble.orderCount)")
            let killedAt = Date()
            await pair.gateways[orderer].kill()
            #expect(!pair.gateways[orderer].isRunning)

            var renewed: [String: Any]?
            let tookOver = try await eventually(within: 60) {
                renewed = try await pair.certificate(survivor)
                return (renewed?["notAfter"] as? String).map { $0 != firstExpiry } ?? false
            }
            try #require(tookOver, "the surviving gateway served no new certificate within 60 s of the kill: \(renewed ?? [:])")
            #expect(renewed?["sharedBy"] == nil, "the renewal came from the mesh, not from the CA: \(renewed ?? [:])")
            #expect(pair.pebble.orderCount == 2, "the first order and the survivor's: \(pair.pebble.orderCount)")
            let seconds = Date().timeIntervalSince(killedAt)
            #expect(seconds < 30, "the renewal came \(seconds) s after the kill, after the first certificate expired")
            let rootPEM = pair.root + "/pebble-root.pem"
            try pair.pebble.rootPEM().write(toFile: rootPEM, atomically: true, encoding: .utf8)
            let answer = try await pair.get(survivor, cacert: rootPEM)
            #expect(answer.stdout.contains("hello from the pair"), "\(answer.stdout) \(answer.stderr)")
            print("takeover: orderer gw\(orderer + 1) SIGKILLed; gw\(survivor + 1) served its own renewal \(String(format: "%.1f", seconds)) s later "
                  + "(first certificate to \(firstExpiry), renewal to \(renewed?["notAfter"] ?? "?")); orders at pebble: \(pair.pebble.orderCount)")
        }
    }

    private func check(
        root: String, domain: String, gatewayHost: String, httpPort: Int, httpsPort: Int, pebble: Pebble,
        gatewayEnv: [String: String], runnerEnv: [String: String], gateway: NodeProcess
    ) async throws {
        let gatewayKnown = try await eventually(within: 60) {
            let listed = try await WarrenProcess.run(["gateway", "list"], environment: runnerEnv)
            return listed.status == 0 && listed.stdout.contains(domain)
        }
        try #require(gatewayKnown, "the runner never saw the gateway\n\(gateway.log)")

        let app = root + "/app"
        try FileManager.default.createDirectory(atPath: app, withIntermediateDirectories: true)
        try "hello over https\n".write(toFile: app + "/index.html", atomically: true, encoding: .utf8)
        let appPort = try freePort(on: "0.0.0.0")
        try """
            type: service
            name: shop
            gateway: \(domain)
            port: "\(httpPort):\(appPort)"
            commands:
              - python3 -m http.server \(appPort)

            """.write(toFile: app + "/.dstack.yml", atomically: true, encoding: .utf8)
        let run = try await WarrenProcess.run(["run", app, "-d", "--project", "local"], environment: runnerEnv)
        #expect(run.status == 0, "\(run.stderr)")

        var certs = ""
        let issued = try await eventually(within: 90) {
            certs = try await WarrenProcess.run(["certs"], environment: gatewayEnv).stdout
            return certs.contains(domain) && certs.contains("Pebble")
        }
        #expect(issued, "no certificate for \(domain):\n\(certs)")
        try #require(issued)
        #expect(certs.contains("https-gw") && certs.contains("days"), "\(certs)")

        let rootPEM = root + "/pebble-root.pem"
        try pebble.rootPEM().write(toFile: rootPEM, atomically: true, encoding: .utf8)
        for version in ["--http1.1", "--http2"] {
            let answer = try await launch(URL(fileURLWithPath: "/usr/bin/curl"), [
                "-sS", "--max-time", "10", version, "--cacert", rootPEM, "--resolve", "\(domain):\(httpsPort):\(gatewayHost)",
                "-w", "\\nversion=%{http_version}\\n", "https://\(domain):\(httpsPort)/",
            ], timeout: .seconds(15))
            #expect(answer.stdout.contains("hello over https"), "\(version): \(answer.stdout) \(answer.stderr)")
            // The app (python's http.server) answers HTTP/1.0 and the gateway passes its version on.
            #expect(answer.stdout.contains(version == "--http2" ? "version=2" : "version=1"), "\(answer.stdout)")
        }
        let redirect = try await launch(URL(fileURLWithPath: "/usr/bin/curl"), [
            "-sS", "--max-time", "10", "--resolve", "\(domain):\(httpPort):\(gatewayHost)",
            "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "http://\(domain):\(httpPort)/page",
        ], timeout: .seconds(15))
        #expect(redirect.stdout == "308 https://\(domain):\(httpsPort)/page", "\(redirect.stdout) \(redirect.stderr)")
    }

    /// A gateway with `--domain apps.…` and ACME: two runs with no domain of their own share its
    /// HTTP port by name (`<run-name>.apps.…`); `warren run` prints each one's URL. The first is
    /// served over HTTPS with a certificate of its own; the second says `https: false`: plain
    /// HTTP only, no certificate ordered, no redirect.
    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func runsAreNamedUnderTheGatewaysDomainAndHTTPSFalseOptsOut() async throws {
        let base = "apps.https.test"
        try await GatewayWithRunner.run(gatewayName: "apps-gw", domain: base, apps: "apps") { rig in
            let (root, gatewayHost, httpPort, httpsPort) = (rig.root, rig.gatewayHost, rig.httpPort, rig.httpsPort)
            let (pebble, gatewayEnv, runnerEnv, gateway) = (rig.pebble, rig.gatewayEnv, rig.runnerEnv, rig.gateway)
            let known = try await eventually(within: 60) {
                try await WarrenProcess.run(["gateway", "list"], environment: runnerEnv).stdout.contains("apps-gw")
            }
            try #require(known, "the runner never saw the gateway\n\(gateway.log)")
            var urls: [String: String] = [:]
            for (name, https) in [("blog", true), ("wiki", false)] {
                let app = root + "/apps/" + name
                try FileManager.default.createDirectory(atPath: app, withIntermediateDirectories: true)
                try "hello from \(name)\n".write(toFile: app + "/index.html", atomically: true, encoding: .utf8)
                let appPort = try freePort(on: "0.0.0.0")
                try """
                    type: service
                    name: \(name)
                    port: "\(httpPort):\(appPort)"
                    \(https ? "" : "https: false")
                    commands:
                      - python3 -m http.server \(appPort)

                    """.write(toFile: app + "/.dstack.yml", atomically: true, encoding: .utf8)
                let run = try await WarrenProcess.run(["run", app, "-d", "--project", "local"], environment: runnerEnv)
                #expect(run.status == 0, "\(run.stderr)")
                urls[name] = run.stdout
            }
            #expect(urls["blog"]?.contains("blog is up at https://blog.\(base):\(httpsPort)") == true, "\(urls)")
            #expect(urls["wiki"]?.contains("wiki is up at http://wiki.\(base):\(httpPort)") == true, "\(urls)")

            // Both share the gateway's HTTP port, by name (as gossip brings the gateway's leases).
            var leases = ""
            let both = try await eventually(within: 20) {
                leases = try await WarrenProcess.run(["leases"], environment: runnerEnv).stdout
                return leases.contains("blog.\(base)") && leases.contains("wiki.\(base)")
            }
            #expect(both, "\(leases)")

            var certs = ""
            let issued = try await eventually(within: 90) {
                certs = try await WarrenProcess.run(["certs"], environment: gatewayEnv).stdout
                return certs.contains("blog.\(base)") && certs.contains("Pebble")
            }
            #expect(issued, "no certificate for blog.\(base):\n\(certs)")
            #expect(!certs.contains("wiki.\(base)"), "a certificate was ordered for the https: false service:\n\(certs)")

            let rootPEM = root + "/pebble-root.pem"
            try pebble.rootPEM().write(toFile: rootPEM, atomically: true, encoding: .utf8)
            let blog = try await curl(["https://blog.\(base):\(httpsPort)/"], resolve: ("blog.\(base)", httpsPort, gatewayHost), cacert: rootPEM)
            #expect(blog.output.contains("hello from blog") && blog.output.contains("code=200"), "\(blog.output)")
            let blogPlain = try await curl(["http://blog.\(base):\(httpPort)/"], resolve: ("blog.\(base)", httpPort, gatewayHost), cacert: nil)
            #expect(blogPlain.output.contains("code=308"), "\(blogPlain.output)")
            let wiki = try await curl(["http://wiki.\(base):\(httpPort)/"], resolve: ("wiki.\(base)", httpPort, gatewayHost), cacert: nil)
            #expect(wiki.output.contains("hello from wiki") && wiki.output.contains("code=200"), "plain, no redirect: \(wiki.output)")
            let wikiTLS = try await curl(["https://wiki.\(base):\(httpsPort)/"], resolve: ("wiki.\(base)", httpsPort, gatewayHost), cacert: rootPEM)
            #expect(wikiTLS.status != 0, "HTTPS answered for the https: false service: \(wikiTLS.output)")
        }
    }

    /// Runs curl; the output ends with the status code and the redirect.
    private func curl(_ arguments: [String], resolve: (String, Int, String), cacert: String?) async throws -> (status: Int32, output: String) {
        let result = try await launch(URL(fileURLWithPath: "/usr/bin/curl"), [
            "-sS", "--max-time", "10", "--resolve", "\(resolve.0):\(resolve.1):\(resolve.2)",
            "-w", "\\ncode=%{http_code} location=%{redirect_url}\\n",
        ] + (cacert.map { ["--cacert", $0] } ?? []) + arguments, environment: ["NO_PROXY": "*"], timeout: .seconds(15))
        return (result.status, result.stdout + result.stderr)
    }
}

/// Two gateway nodes announcing one domain, both with ACME against one pebble (whose DNS points
/// at the second), and a runner joined through the first, whose service `name` is on the domain.
struct GatewayPair {
    let root: String
    let domain: String
    let hosts: [String]
    let httpsPort: Int
    let pebble: Pebble
    let gateways: [NodeProcess]

    func env(_ i: Int) -> [String: String] { ["WARREN_HOME": root + "/gw\(i + 1)"] }

    /// The first certificate `warren certs --json` lists on gateway `i`.
    func certificate(_ i: Int) async throws -> [String: Any]? {
        let json = try await WarrenProcess.run(["certs", "--json"], environment: env(i)).stdout
        return (try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])?.first
    }

    /// The SHA-256 fingerprint of the certificate gateway `i` serves for the domain.
    func fingerprint(_ i: Int) async throws -> String {
        let served = try await launch(URL(fileURLWithPath: "/bin/sh"), ["-c",
            "openssl s_client -connect \(hosts[i]):\(httpsPort) -servername \(domain) </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"],
            timeout: .seconds(15))
        return served.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The app's answer over HTTPS through gateway `i`.
    func get(_ i: Int, cacert: String) async throws -> WarrenProcess.Result {
        try await launch(URL(fileURLWithPath: "/usr/bin/curl"), [
            "-sS", "--max-time", "10", "--cacert", cacert, "--resolve", "\(domain):\(httpsPort):\(hosts[i])", "https://\(domain):\(httpsPort)/",
        ], timeout: .seconds(15))
    }

    /// Starts them, waits until the runner knows both gateways and its service runs, runs `body`,
    /// records what it throws with the gateways' and pebble's logs, then stops everything.
    static func run(
        domain: String, name: String, certificateValidity: Int? = nil, environment: [String: String] = [:],
        _ body: (GatewayPair) async throws -> Void
    ) async throws {
        let root = try temporaryDirectory()
        let hosts = [randomLoopback(), randomLoopback()], runnerHost = randomLoopback()
        let httpPort = try TestNet.freePort(onAll: hosts), httpsPort = try TestNet.freePort(onAll: hosts)
        let meshPorts = try hosts.map { try freePort(on: $0) }, runnerPort = try freePort(on: runnerHost)
        let pebble = try Pebble(challengeHost: hosts[1], httpPort: httpPort, certificateValidity: certificateValidity)
        var gateways: [NodeProcess] = []
        for i in 0..<2 {
            gateways.append(try NodeProcess(name: "gw\(i + 1)", arguments: [
                "--state-dir", root + "/gw\(i + 1)", "--listen", "\(hosts[i]):\(meshPorts[i])",
                "--gateway", "--public-address", hosts[i], "--name", "\(name)-gw\(i + 1)", "--domain", domain,
                "--acme-directory", pebble.directoryURL, "--acme-ca-bundle", pebble.listenerCA, "--acme-email", "ops@example.com",
                "--http-port", "\(httpPort)", "--https-port", "\(httpsPort)",
            ] + (i == 1 ? ["--join", "\(hosts[0]):\(meshPorts[0])"] : []),
            environment: environment.merging(["WARREN_HOME": root + "/gw\(i + 1)"]) { $1 }, logPath: root + "/gw\(i + 1).log"))
        }
        let runnerEnv = ["WARREN_HOME": root + "/runner"]
        let runner = try NodeProcess(name: "runner", arguments: [
            "--state-dir", root + "/runner", "--listen", "\(runnerHost):\(runnerPort)", "--join", "\(hosts[0]):\(meshPorts[0])",
        ], environment: runnerEnv, logPath: root + "/runner.log")
        defer {
            killProcesses(workingUnder: root + "/app")
            pebble.stop()
            try? FileManager.default.removeItem(atPath: root)
        }
        do {
            let both = try await eventually(within: 60) {
                let listed = try await WarrenProcess.run(["gateway", "list"], environment: runnerEnv).stdout
                return listed.contains("\(name)-gw1") && listed.contains("\(name)-gw2")
            }
            try #require(both, "the runner never saw both gateways")
            let app = root + "/app"
            try FileManager.default.createDirectory(atPath: app, withIntermediateDirectories: true)
            try "hello from the pair\n".write(toFile: app + "/index.html", atomically: true, encoding: .utf8)
            let appPort = try freePort(on: "0.0.0.0")
            try """
                type: service
                name: \(name)
                gateway: \(domain)
                port: "\(httpPort):\(appPort)"
                commands:
                  - python3 -m http.server \(appPort)

                """.write(toFile: app + "/.dstack.yml", atomically: true, encoding: .utf8)
            let run = try await WarrenProcess.run(["run", app, "-d", "--project", "local"], environment: runnerEnv)
            #expect(run.status == 0, "\(run.stderr)")
            try await body(GatewayPair(root: root, domain: domain, hosts: hosts, httpsPort: httpsPort, pebble: pebble, gateways: gateways))
        } catch {
            Issue.record("\(error)\n--- gw1\n\(gateways[0].log)\n--- gw2\n\(gateways[1].log)\n--- pebble\n\(pebble.log)")
        }
        await runner.stop()
        for gateway in gateways { await gateway.stop() }
    }
}
