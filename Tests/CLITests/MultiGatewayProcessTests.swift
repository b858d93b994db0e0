import Foundation
import MeshNode
import Testing

/// Several gateways, end to end on loopback: real `warren` processes, two gateways (127.X.Y.1 and
/// .2) announcing one domain, and two runners (.3, .4), each joined through another gateway.
@Suite(.serialized) struct MultiGatewayProcessTests {
    static let domain = "multi.e2e.test"

    struct Mesh {
        let lab: Lab
        let base: String
        var gw1: String { base + ".1" }
        var gw2: String { base + ".2" }
        let homes: [String]
        let gatewayArguments: [[String]]
        var gateways: [NodeProcess]
        var runner1Home: String { homes[2] }
        var runner2Home: String { homes[3] }
        var logs: String { gateways.map(\.log).joined(separator: "\n") }
    }

    static func start(_ lab: Lab) async throws -> Mesh {
        let base = "127.\(Int.random(in: 100...250)).\(Int.random(in: 1...254))"
        let homes = ["gw1", "gw2", "rn1", "rn2"].map { lab.root + "/" + $0 }
        let listens = try (1...4).map { i in "\(base).\(i):\(try freePort(on: "\(base).\(i)"))" }
        let gatewayArguments = (0..<2).map { i in
            ["--state-dir", homes[i], "--listen", listens[i], "--gateway", "--public-address", "\(base).\(i + 1)", "--name", "mg-gw\(i + 1)",
             "--domain", domain] + (i == 1 ? ["--join", listens[0]] : [])
        }
        var gateways: [NodeProcess] = []
        for (i, arguments) in gatewayArguments.enumerated() { gateways.append(try lab.startNode("gw\(i + 1)", arguments)) }
        // Each runner joins through another gateway.
        _ = try lab.startNode("rn1", ["--state-dir", homes[2], "--listen", listens[2], "--join", listens[0]])
        _ = try lab.startNode("rn2", ["--state-dir", homes[3], "--listen", listens[3], "--join", listens[1]])
        for home in homes[2...] {
            let both = try await eventually(within: 40) {
                let list = try await lab.warren(["gateway", "list"], home: home).stdout
                return list.contains("mg-gw1") && list.contains("mg-gw2")
            }
            try #require(both, "\(home) never listed both gateways\n\(gateways.map(\.log).joined(separator: "\n"))")
        }
        return Mesh(lab: lab, base: base, homes: homes, gatewayArguments: gatewayArguments, gateways: gateways)
    }

    /// A service NAME serving its directory (which holds NAME.txt) on a free app port; `warren run -d` on `home`.
    static func run(
        _ lab: Lab, _ name: String, gateway: String, domain: String? = nil, external: Int, app: Int? = nil, home: String
    ) async throws -> WarrenProcess.Result {
        let directory = "\(lab.root)/apps/\(name)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "\(name)\n".write(toFile: "\(directory)/\(name).txt", atomically: true, encoding: .utf8)
        let app = try app ?? freePort(on: "0.0.0.0")
        let file = "\(lab.root)/\(name).dstack.yml"
        try """
            type: service
            name: \(name)
            gateway: \(gateway)
            \(domain.map { "domain: \($0)" } ?? "")
            port: "\(external):\(app)"
            commands:
              - exec python3 -m http.server \(app)

            """.write(toFile: file, atomically: true, encoding: .utf8)
        return try await lab.warren(["run", directory, "-f", file, "--project", "local", "-d"], home: home)
    }

    static func runs(_ lab: Lab, home: String) async throws -> [RunInfo] {
        let out = try await lab.warren(["ps", "-a", "--json"], home: home).stdout
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return (try? decoder.decode([RunInfo].self, from: Data(out.utf8))) ?? []
    }

    static func claims(_ lab: Lab, home: String) async throws -> [DomainClaimInfo] {
        let out = try await lab.warren(["domains", "--json"], home: home).stdout
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return (try? decoder.decode([DomainClaimInfo].self, from: Data(out.utf8))) ?? []
    }

    /// `curl` of http://DOMAIN:PORT/PATH connecting to `addresses` in order (the next one when a
    /// connection fails, as a client given several DNS answers does); the body, or nil.
    static func get(_ domain: String, _ port: Int, at addresses: [String], path: String, maxTime: Double = 2) async -> String? {
        let arguments = ["curl", "-sS", "--fail", "--max-time", "\(maxTime)", "--resolve", "\(domain):\(port):\(addresses.joined(separator: ","))",
                         "http://\(domain):\(port)/\(path)"]
        guard let result = try? await launch(URL(fileURLWithPath: "/usr/bin/env"), arguments, timeout: .seconds(10)),
              result.status == 0 else { return nil }
        return result.stdout
    }

    static func withLab(_ body: (Lab) async throws -> Void) async throws {
        let lab = try Lab(leaseTTL: 3)
        lab.extraEnvironment = ["WARREN_RUN_RETRY_MAX_SECONDS": "1"]
        do {
            try await body(lab)
        } catch {
            await lab.tearDown()
            throw error
        }
        await lab.tearDown()
    }

    // MARK: Domain claims

    /// Two runs on two runners race for one domain through two gateways, 20 times (a new domain
    /// each time): every time one run serves and the other fails naming the holder, and all four
    /// nodes name the same owner.
    @Test func twoRunsRacingForOneDomainOnTwoGatewaysEndWithOneOwnerEverywhere() async throws {
        let repetitions = Int(ProcessInfo.processInfo.environment["WARREN_CLAIM_RACES"] ?? "") ?? 20
        try await Self.withLab { lab in
            let mesh = try await Self.start(lab)
            let port = try freePort(on: mesh.gw1)
            // App ports picked one by one, never twice: two picked at the same moment can be one.
            var used = Set<Int>()
            func appPort() throws -> Int {
                for _ in 0..<50 {
                    let p = try freePort(on: "0.0.0.0")
                    if used.insert(p).inserted { return p }
                }
                throw POSIXError(.EADDRINUSE)
            }
            var rounds = 0, refusedAtSubmit = 0, failedAfterStart = 0, loserWasUp = 0
            for round in 0..<repetitions {
                let domain = "race\(round).e2e.test"
                let (a, b) = ("ra\(round)", "rb\(round)")
                let (appA, appB) = (try appPort(), try appPort())
                async let first = Self.run(lab, a, gateway: mesh.gw1, domain: domain, external: port, app: appA, home: mesh.runner1Home)
                async let second = Self.run(lab, b, gateway: mesh.gw2, domain: domain, external: port, app: appB, home: mesh.runner2Home)
                let results = try await [a: first, b: second]

                // Settled: one run of the two is running, the other is not (and says why).
                var winner: String?, loser: String?
                let settled = try await eventually(within: 20) {
                    let all = try await Self.runs(lab, home: mesh.runner1Home) + Self.runs(lab, home: mesh.runner2Home)
                    let running = all.filter { ($0.name == a || $0.name == b) && $0.state == .running }
                    let failed = all.filter { ($0.name == a || $0.name == b) && $0.state == .failed }
                    guard running.count == 1 else { return false }
                    winner = running[0].name
                    loser = winner == a ? b : a
                    if let run = failed.first {
                        return run.name == loser && run.error?.contains("domain \(domain) is held by run \"\(winner!)\"") == true
                    }
                    // Refused before it started: `warren run` said so.
                    return results[loser!]?.status != 0 && results[loser!]?.stderr.contains("domain \(domain) is held by run \"\(winner!)\"") == true
                }
                if !settled {
                    let seen = try await Self.runs(lab, home: mesh.runner1Home) + Self.runs(lab, home: mesh.runner2Home)
                    Issue.record("round \(round): not one owner: \(results)\n\(seen)")
                }
                guard settled, let winner, let loser else { break }
                rounds += 1
                if results[loser]?.status != 0 && !(results[loser]?.stdout.contains("started") ?? false) { refusedAtSubmit += 1 } else { failedAfterStart += 1 }
                // `run -d` returned "is up" before the loser learnt of the earlier claim.
                if results[loser]?.status == 0 { loserWasUp += 1 }

                // Every node names the same owner.
                let agreed = try await eventually(within: 10) {
                    for home in mesh.homes {
                        let owners = try await Self.claims(lab, home: home).filter { $0.domain == domain && $0.owner }
                        if owners.map(\.run) != [winner] { return false }
                    }
                    return true
                }
                #expect(agreed, "round \(round): the nodes disagree on the owner of \(domain)")
                // Only the owner is served, by its gateway.
                let gw = winner == a ? mesh.gw1 : mesh.gw2
                #expect(await Self.get(domain, port, at: [gw], path: "\(winner).txt") != nil, "round \(round): \(winner) not served")

                let home = winner == a ? mesh.runner1Home : mesh.runner2Home
                _ = try await lab.warren(["stop", winner], home: home)
            }
            print("claim races: \(rounds) rounds; the loser was refused before starting \(refusedAtSubmit) times, failed after starting \(failedAfterStart) times, "
                + "of which \(loserWasUp) after `run -d` had said it was up")
        }
    }

    // MARK: One service, two gateways

    /// A service whose `gateway:` is a domain both gateways announce is published on each; `run`
    /// names both addresses and `ps` each gateway's state. gw1 is SIGKILLed under a client that
    /// tries both addresses: gw2 keeps serving, the run stays up, and gw1 serves it again once
    /// restarted. Prints the failed requests and the longest gap.
    @Test func aServiceOnTwoGatewaysSurvivesTheLossOfOne() async throws {
        try await Self.withLab { lab in
            var mesh = try await Self.start(lab)
            let port = try freePort(on: mesh.gw1)
            let started = try await Self.run(lab, "both", gateway: Self.domain, external: port, home: mesh.runner1Home)
            try #require(started.status == 0, "\(started.stderr)\n\(mesh.logs)")
            #expect(started.stdout.contains("is up at http://\(Self.domain):\(port) through gateways \(mesh.gw1), \(mesh.gw2)"), "\(started.stdout)")
            for gw in [mesh.gw1, mesh.gw2] {
                let served = await eventually(within: 10) { await Self.get(Self.domain, port, at: [gw], path: "both.txt") != nil }
                #expect(served, "not served by \(gw)\n\(mesh.logs)")
            }
            let ps = try await lab.warren(["ps"], home: mesh.runner1Home).stdout
            #expect(ps.contains("\(mesh.gw1): serving; \(mesh.gw2): serving"), "\(ps)")

            // A client loop through both addresses, bounded (30 s, at most 2,000 requests).
            let clock = ContinuousClock()
            let begin = clock.now
            let both = [mesh.gw1, mesh.gw2]
            let loop = Task {
                var failures: [Duration] = [], requests = 0
                var lastSuccess = clock.now, longestGap = Duration.zero
                while clock.now - begin < .seconds(30), requests < 2000 {
                    requests += 1
                    if await Self.get(Self.domain, port, at: both, path: "both.txt", maxTime: 1) != nil {
                        longestGap = max(longestGap, clock.now - lastSuccess)
                        lastSuccess = clock.now
                    } else {
                        failures.append(clock.now - begin)
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return (requests, failures, longestGap)
            }
            try await Task.sleep(for: .seconds(5))
            let killed = clock.now - begin
            await mesh.gateways[0].kill()
            let down = try await eventually(within: 15) {
                try await lab.warren(["ps"], home: mesh.runner1Home).stdout.contains("\(mesh.gw1): gateway unreachable since")
            }
            let psDown = try await lab.warren(["ps"], home: mesh.runner1Home).stdout
            #expect(down, "ps never said gw1 is unreachable:\n\(psDown)")
            #expect(psDown.contains("running") && psDown.contains("\(mesh.gw2): serving"), "\(psDown)")
            try await Task.sleep(for: .seconds(5))
            mesh.gateways[0] = try lab.startNode("gw1-again", mesh.gatewayArguments[0])
            let back = clock.now
            let again = await eventually(within: 15) { await Self.get(Self.domain, port, at: [mesh.gw1], path: "both.txt") != nil }
            let took = clock.now - back
            #expect(again, "gw1 did not serve the domain again after its restart\n\(mesh.logs)")
            let (requests, failures, gap) = await loop.value
            print("failover: \(requests) requests through both gateways over 30 s, gw1 SIGKILLed at 5 s and restarted ~10 s later: "
                + "\(failures.count) failed (at \(failures) from the start; killed at \(killed)), longest gap between successes \(gap); "
                + "gw1 served again \(took) after its restart")
            // Only a request in flight on gw1 when it died may fail: a client does not resend it.
            #expect(failures.count <= 1 && failures.allSatisfy { $0 >= killed && $0 < killed + .seconds(2) },
                    "\(failures.count) of \(requests) requests failed, at \(failures) (gw1 killed at \(killed))")
            let runs = try await Self.runs(lab, home: mesh.runner1Home)
            #expect(runs.first { $0.name == "both" }?.state == .running, "\(runs)")
        }
    }
}
