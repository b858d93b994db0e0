import Foundation
import Testing

/// A run's life through gateway trouble and false readiness, end to end: real `warren` processes,
/// a gateway (127.X.Y.1) and a runner (127.X.Y.2) on loopback addresses picked at random per run.
@Suite(.serialized) struct RunLifecycleProcessTests {
    /// A gateway and a runner joined to it, the gateway listed by the runner.
    struct Mesh {
        let lab: Lab
        let gw: String
        let gatewayArguments: [String]
        let runnerArguments: [String]
        var gateway: NodeProcess
        var runner: NodeProcess
        /// The runner's Prometheus page, when asked for.
        var metricsURL: String?
    }

    static func start(_ lab: Lab, metrics: Bool = false) async throws -> Mesh {
        let base = "127.\(Int.random(in: 100...250)).\(Int.random(in: 1...254))"
        let (gw, rn) = (base + ".1", base + ".2")
        let gatewayArguments = [
            "--state-dir", lab.gatewayHome, "--listen", "\(gw):\(try freePort(on: gw))", "--gateway", "--public-address", gw, "--name", "lc-gw",
        ]
        let gatewayListen = gatewayArguments[3]
        var runnerArguments = ["--state-dir", lab.runnerHome, "--listen", "\(rn):\(try freePort(on: rn))", "--join", gatewayListen]
        let metricsURL = try metrics ? "http://\(rn):\(freePort(on: rn))/metrics" : nil
        if let metricsURL { runnerArguments += ["--metrics", String(metricsURL.dropFirst(7).dropLast(8))] }
        let gateway = try lab.startNode("gateway", gatewayArguments)
        let runner = try lab.startNode("runner", runnerArguments)
        let seesGateway = try await eventually(within: 30) {
            try await lab.warren(["gateway", "list"]).stdout.contains("lc-gw")
        }
        try #require(seesGateway, "the runner never listed the gateway\n\(gateway.log)\n\(runner.log)")
        let secret = try await lab.warren(["secrets", "add", "GATEWAY_IP", gw, "--project", "local"])
        try #require(secret.status == 0, "\(secret.stderr)")
        return Mesh(lab: lab, gw: gw, gatewayArguments: gatewayArguments, runnerArguments: runnerArguments, gateway: gateway, runner: runner,
                    metricsURL: metricsURL)
    }

    /// Writes a service NAME (its directory holds NAME.txt) and returns `warren run` for it.
    static func runService(
        _ lab: Lab, _ name: String, external: Int, app: Int, command: String? = nil, extra: [String] = []
    ) async throws -> WarrenProcess.Result {
        let (directory, file) = try writeService(lab, name, external: external, app: app, command: command)
        return try await lab.warren(["run", directory, "-f", file, "--project", "local", "-d"] + extra)
    }

    /// Writes a service NAME serving its directory (which holds NAME.txt); its directory and file.
    static func writeService(_ lab: Lab, _ name: String, external: Int, app: Int, command: String? = nil) throws -> (String, String) {
        let directory = "\(lab.root)/apps/\(name)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "\(name)\n".write(toFile: "\(directory)/\(name).txt", atomically: true, encoding: .utf8)
        let file = "\(lab.root)/\(name).dstack.yml"
        try """
            type: service
            name: \(name)
            gateway: ${{ secrets.GATEWAY_IP }}
            port: "\(external):\(app)"
            commands:
              - \(command ?? "exec python3 -m http.server \(app)")

            """.write(toFile: file, atomically: true, encoding: .utf8)
        return (directory, file)
    }

    static func withLab(leaseTTL: Int = 5, environment: [String: String] = [:], _ body: (Lab) async throws -> Void) async throws {
        let lab = try Lab(leaseTTL: leaseTTL)
        lab.extraEnvironment = environment
        do {
            try await body(lab)
        } catch {
            await lab.tearDown()
            throw error
        }
        await lab.tearDown()
    }

    // MARK: Transient errors

    /// The runner node restarts while its gateway is down for 30 s: its run is adopted, waits for
    /// the gateway (saying so in `ps`), its app keeps running, and the service serves again within
    /// 5 s of the gateway's return with no `warren run`.
    @Test func runnerRestartedWhileItsGatewayIsDownServesAgainWhenItReturns() async throws {
        // Short leases and retries, as the test times the return.
        try await Self.withLab(leaseTTL: 3, environment: ["WARREN_RUN_RETRY_MAX_SECONDS": "1"]) { lab in
            var mesh = try await Self.start(lab)
            let gw = mesh.gw
            let external = try freePort(on: gw), app = try freePort(on: "0.0.0.0")
            let started = try await Self.runService(lab, "steady", external: external, app: app)
            try #require(started.status == 0, "\(started.stderr)\n\(mesh.runner.log)")
            #expect(await fetch("http://\(gw):\(external)/")?.contains("steady.txt") == true)

            // The gateway dies: the running run says its path is down, and keeps its app.
            await mesh.gateway.kill()
            let down = try await eventually(within: 15) {
                try await lab.warren(["ps"]).stdout.contains("gateway unreachable since")
            }
            let psDown = try await lab.warren(["ps"]).stdout
            #expect(down, "ps never said the gateway is unreachable:\n\(psDown)")
            let json = try await lab.warren(["ps", "--json"]).stdout
            #expect(json.contains("\"unreachable\"") && json.contains("lastError"), "\(json)")

            // The runner restarts meanwhile and adopts the run, which waits for the gateway.
            await mesh.runner.stop()
            mesh.runner = try lab.startNode("runner-again", mesh.runnerArguments)
            let waiting = try await eventually(within: 20) {
                try await lab.warren(["ps"]).stdout.contains("waiting for gateway \(gw) (retrying, last error")
            }
            let psWaiting = try await lab.warren(["ps"]).stdout
            #expect(waiting, "ps never said the run waits for the gateway:\n\(psWaiting)\n\(mesh.runner.log)")

            // The gateway stays down ~30 s in all; the app serves locally all along.
            try await Task.sleep(for: .seconds(25))
            #expect(await fetch("http://127.0.0.1:\(app)/")?.contains("steady.txt") == true, "the app died:\n\(mesh.runner.log)")
            let psLater = try await lab.warren(["ps"]).stdout
            #expect(psLater.contains("steady") && psLater.contains("leasing"), "\(psLater)")

            // It returns: the service serves again within 5 s, nobody ran `warren run`.
            let back = Date()
            mesh.gateway = try lab.startNode("gateway-again", mesh.gatewayArguments)
            let serving = await eventually(within: 5) {
                await fetch("http://\(gw):\(external)/")?.contains("steady.txt") == true
            }
            let took = Date().timeIntervalSince(back)
            #expect(serving, "not served within 5 s of the gateway's return\n\(mesh.runner.log)\n\(mesh.gateway.log)")
            print("served again \(String(format: "%.1f", took)) s after the gateway was started again")
            let psAfter = try await lab.warren(["ps"]).stdout
            #expect(psAfter.contains("running") && psAfter.contains("serving"), "\(psAfter)")
        }
    }

    /// An attached `warren run` prints a line when its public path goes down (the gateway died)
    /// and one when it comes back; the runner's metrics count runs by path state.
    @Test func anAttachedRunSaysWhenItsPathGoesDownAndComesBack() async throws {
        try await Self.withLab(leaseTTL: 3, environment: ["WARREN_RUN_RETRY_MAX_SECONDS": "1"]) { lab in
            var mesh = try await Self.start(lab, metrics: true)
            let gw = mesh.gw, metrics = try #require(mesh.metricsURL)
            let external = try freePort(on: gw)
            let (directory, file) = try Self.writeService(lab, "attached", external: external, app: try freePort(on: "0.0.0.0"))
            let errors = lab.root + "/attached.stderr"
            _ = FileManager.default.createFile(atPath: errors, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
            let attached = Process()
            attached.executableURL = WarrenProcess.binary
            attached.arguments = ["run", directory, "-f", file, "--project", "local"]
            attached.environment = ProcessInfo.processInfo.environment.merging(lab.environment) { $1 }
            // The URL goes to stdout and the path's changes to stderr: both land in one file.
            attached.standardOutput = handle
            attached.standardError = handle
            attached.standardInput = FileHandle.nullDevice
            try attached.run()
            try? handle.close()
            defer { if attached.isRunning { kill(attached.processIdentifier, SIGKILL) } }
            let said = { (try? String(contentsOfFile: errors, encoding: .utf8)) ?? "" }

            let up = await eventually(within: 20) { said().contains("attached is up at") }
            try #require(up, "\(said())\n\(mesh.runner.log)")
            let countedServing = await eventually(within: 10) { (await fetch(metrics) ?? "").contains("warren_runs{path=\"serving\"} 1") }
            let pagecountedServing = await fetch(metrics) ?? "no metrics"
            #expect(countedServing, "\(pagecountedServing)")

            await mesh.gateway.kill()
            let down = await eventually(within: 15) { said().contains("attached is not reachable from the public: gateway unreachable since") }
            #expect(down, "\(said())")
            let countedDown = await eventually(within: 10) { (await fetch(metrics) ?? "").contains("warren_runs{path=\"unreachable\"} 1") }
            let pagecountedDown = await fetch(metrics) ?? "no metrics"
            #expect(countedDown, "\(pagecountedDown)")

            mesh.gateway = try lab.startNode("gateway-again", mesh.gatewayArguments)
            let back = await eventually(within: 15) { said().contains("attached serves again at http://\(gw):\(external)") }
            #expect(back, "\(said())\n\(mesh.runner.log)")
            #expect(attached.isRunning)
            kill(attached.processIdentifier, SIGINT)
            _ = await eventually(within: 15) { !attached.isRunning }
        }
    }

    // MARK: An honest "is up"

    /// The gateway can't bind the public port (another program holds it): the run fails with
    /// that cause, and `run -d` exits 1 instead of printing a URL the squatter answers.
    /// A second run with the app port of a live run is refused before it starts, naming it.
    /// An app that never listens: `run -d` says what it waits for and gives up at --timeout.
    @Test func runIsUpOnlyWhenTheGatewayListensAndTheAppPortIsItsOwn() async throws {
        try await Self.withLab { lab in
            let mesh = try await Self.start(lab)
            let gw = mesh.gw

            // A squatter on the gateway's public port.
            let squatted = try freePort(on: gw)
            let squatter = Process()
            squatter.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            squatter.arguments = ["python3", "-m", "http.server", "\(squatted)", "--bind", gw]
            squatter.currentDirectoryURL = URL(fileURLWithPath: lab.root)
            squatter.standardOutput = FileHandle.nullDevice
            squatter.standardError = FileHandle.nullDevice
            try squatter.run()
            defer { squatter.terminate() }
            try #require(await eventually(within: 10) { await fetch("http://\(gw):\(squatted)/") != nil }, "the squatter never listened")
            let refused = try await Self.runService(lab, "squatted", external: squatted, app: try freePort(on: "0.0.0.0"))
            #expect(refused.status == 1, "\(refused.stdout)\n\(refused.stderr)")
            #expect(refused.stderr.contains("port \(squatted) on gateway lc-gw is taken by another program"), "\(refused.stderr)")
            #expect(!refused.stdout.contains("is up at"), "\(refused.stdout)")
            let leases = try await lab.warren(["leases"], home: lab.gatewayHome).stdout
            #expect(!leases.contains("squatted"), "the refused run still holds a lease:\n\(leases)")

            // Two services with the same app port on one runner: the second is refused, naming the first.
            let app = try freePort(on: "0.0.0.0")
            let first = try await Self.runService(lab, "first", external: try freePort(on: gw), app: app)
            try #require(first.status == 0, "\(first.stderr)\n\(mesh.runner.log)")
            let second = try await Self.runService(lab, "second", external: try freePort(on: gw), app: app)
            #expect(second.status == 1, "\(second.stdout)")
            #expect(second.stderr.contains("app port \(app) is used by run \"first\"") && second.stderr.contains("change the app port"),
                    "\(second.stderr)")

            // Another program (not a run) holds the app port: the run's app can't bind it, and the
            // run fails naming that program rather than reporting the stranger's listener as up.
            let stranger = try freePort(on: "0.0.0.0")
            let holder = Process()
            holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            holder.arguments = ["python3", "-m", "http.server", "\(stranger)", "--bind", "127.0.0.1"]
            holder.currentDirectoryURL = URL(fileURLWithPath: lab.root)
            holder.standardOutput = FileHandle.nullDevice
            holder.standardError = FileHandle.nullDevice
            try holder.run()
            defer { holder.terminate() }
            try #require(await eventually(within: 10) { await fetch("http://127.0.0.1:\(stranger)/") != nil }, "the holder never listened")
            let taken = try await Self.runService(lab, "taken", external: try freePort(on: gw), app: stranger,
                                                  command: "exec python3 -m http.server \(stranger) --bind 127.0.0.1")
            #expect(taken.status == 1, "\(taken.stdout)\n\(taken.stderr)")
            #expect(taken.stderr.contains("is held by another program, pid \(holder.processIdentifier)"), "\(taken.stderr)")

            // An app that never listens: lines say what it waits for; --timeout ends the wait.
            let clock = ContinuousClock(), began = clock.now
            let silent = try await Self.runService(lab, "silent", external: try freePort(on: gw), app: try freePort(on: "0.0.0.0"),
                                                   command: "exec sleep 600", extra: ["--timeout", "7"])
            let waited = clock.now - began
            #expect(silent.status == 1)
            #expect(silent.stderr.contains("waiting for the app to listen on port"), "\(silent.stderr)")
            #expect(silent.stderr.contains("within 7 s"), "\(silent.stderr)")
            #expect(waited < .seconds(30), "run -d took \(waited) with --timeout 7")
        }
    }
}
