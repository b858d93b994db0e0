import Foundation
import Testing

/// Two sites behind NAT (`SiteLab`): formation, a router's new outside address, a flushed NAT
/// table, a partition and its heal, loss on a site's uplink, a gateway and a runner killed and
/// started again, with real nodes. Each test makes its own lab and is bounded (about 4 minutes
/// for the seven here). In `make test`: without root or `ip netns` each test says why and
/// returns; `WARREN_LAB=0` skips the suite. `make lab` runs them with the longer versions
/// (`SiteLabLongTests`).
@Suite(.serialized, .disabled(if: ProcessInfo.processInfo.environment["WARREN_LAB"] == "0", "WARREN_LAB=0 skips the two-site lab"))
struct SiteLabTests {
    /// How long membership is watched for flaps (`WARREN_LAB_WATCH_SECONDS`; the 10-minute figure
    /// in RELIABILITY.md is from `make lab`).
    static let watchSeconds = TimeInterval(ProcessInfo.processInfo.environment["WARREN_LAB_WATCH_SECONDS"] ?? "") ?? 20

    @Test func fiveMembersFormAndStayAliveAndTheClientIsServed() async throws {
        try await SiteLab.with { lab in
            try await lab.startAll()
            try await lab.requireFormation(within: 30)

            // No suspect or dead sample afterwards: NAT'd members are probed over links, not
            // datagrams the routers drop.
            let watched = await lab.watch(for: Self.watchSeconds)
            #expect(watched.samples > 0)
            #expect(watched.notAlive.isEmpty, "flaps in \(watched.samples) samples over \(Self.watchSeconds) s: \(watched.notAlive)")

            let service = try await lab.runService(on: .a1, gateway: .gw1, publicPort: 5001, appPort: 8000)
            let served = await lab.servedAgain(service, within: 10, tryFor: 5)
            #expect(served != nil, "the client never got \(service.url)")
            // The client can't reach the runner directly: the router drops the attempt (curl: 28).
            let direct = await lab.fetch("http://\(SiteLab.Member.a1.address):8000/hello.txt", seconds: 2)
            #expect(direct.code == 0 && direct.curlExit == 28, "the client reached a1 past its NAT: \(direct)")
        }
    }

    @Test func aNewOutsideAddressOfTheSiteRouterIsServedAgainWithinThreeSeconds() async throws {
        try await SiteLab.with { lab in
            try await lab.startAll()
            try await lab.requireFormation(within: 30)
            let service = try await lab.runService(on: .a1, gateway: .gw1, publicPort: 5001, appPort: 8000)
            try #require(await lab.servedAgain(service, within: 10, tryFor: 5) != nil, "never served before the change")

            // The router's old mappings vanish with its address: the link a1 opened is silent to gw1
            // from now on, and a1's next packets arrive from the new address.
            try await lab.readdress(.a, to: "198.18.0.3")
            let again = await lab.servedAgain(service, within: 10, tryFor: 1)
            #expect(again != nil, "not served within 10 s of the new address")
            if let again { #expect(again <= 3, "served again only after \(again) s (at most 3 s)") }

            // The gateway's link to a1 now comes from the new address.
            let sockets = try await lab.exec("gw1", ["ss", "-Htn", "state", "established", "( sport = :7420 )"])
            #expect(sockets.stdout.contains("198.18.0.3:"), "gw1 has no link from site A's new address:\n\(sockets.stdout)")
            let watched = await lab.watch(for: 10)
            #expect(!watched.notAlive.contains { $0.state == "dead" }, "false deaths after the change: \(watched.notAlive)")
        }
    }

    @Test func aFlushedNATTableOnTheRouterIsServedAgainWithoutADeath() async throws {
        guard SiteLab.hasConntrack else {
            print("skipping the conntrack flush: no conntrack (scripts/deps.sh installs it)")
            return
        }
        try await SiteLab.with { lab in
            try await lab.startAll()
            try await lab.requireFormation(within: 30)
            let service = try await lab.runService(on: .a1, gateway: .gw1, publicPort: 5001, appPort: 8000)
            try #require(await lab.servedAgain(service, within: 10, tryFor: 5) != nil, "never served before the flush")

            try await lab.flushConntrack(.a)
            try await lab.flushConntrack(.b)
            let again = await lab.servedAgain(service, within: 10, tryFor: 1)
            #expect(again != nil, "not served within 10 s of the flush")
            let watched = await lab.watch(for: 15)
            #expect(!watched.notAlive.contains { $0.state == "dead" }, "false deaths after the flush: \(watched.notAlive)")
            let after = await lab.membership()
            #expect(SiteLab.allAlive(after), "not all alive 15 s after the flush: \(after)")
        }
    }

    @Test func aPartitionedSiteHealsAndItsRunnerTellsTheTruth() async throws {
        try await SiteLab.with { lab in
            // A short lease (renewed every 3 s), so b1's ps learns of the cut within the window.
            try await lab.startAll(environment: ["WARREN_LEASE_TTL_SECONDS": "9"])
            try await lab.requireFormation(within: 30)
            // b1 joined through gw2 and publishes on gw1.
            let service = try await lab.runService(on: .b1, gateway: .gw1, publicPort: 5002, appPort: 8001)
            try #require(await lab.servedAgain(service, within: 10, tryFor: 5) != nil, "never served before the partition")

            try await lab.partition(.b, from: SiteLab.Member.gw1.address)
            // b1 is still reachable through gw2 (and gw1 through everyone else): nobody may be
            // declared dead. 30 s: longer than a suspicion lasts here (at most 24 s), so a
            // suspicion of gw1 on b1 that nobody refutes would end in a false death within the cut.
            let paths = PathLog()
            let during = await lab.watch(for: 30) { _ in
                await paths.add(await lab.runPath(on: .b1, service.name))
            }
            #expect(!during.notAlive.contains { $0.state == "dead" }, "false deaths in the partition: \(during.notAlive)")
            // b1's ps tells the truth at the end of the cut: "serving" while gw1 still reaches the
            // run (a link relayed by gw2, which both reach), "unreachable" while it does not.
            let seen = await paths.all
            let inCut = await lab.fetch(service.url, seconds: 5)
            let path = await lab.runPath(on: .b1, service.name)
            let served = inCut.body == service.text
            #expect(path == (served ? "serving" : "unreachable"),
                    "b1's ps says \(path) in the partition, the client was \(served ? "" : "not ")served (\(inCut.code)); earlier samples: \(seen)")

            try await lab.heal(.b)
            let healed = Date()
            let again = await lab.servedAgain(service, within: 10, tryFor: 2)
            #expect(again != nil, "not served within 10 s of the heal")
            let serving = await eventually(within: 10) { await lab.runPath(on: .b1, service.name) == "serving" }
            let healedPath = await lab.runPath(on: .b1, service.name)
            #expect(serving, "b1's ps after the heal: \(healedPath)")
            let stable = await lab.waitForFormation(within: max(1, 15 - Date().timeIntervalSince(healed)))
            let views = await lab.membership()
            #expect(stable != nil, "membership not all alive within 15 s of the heal: \(views)")
        }
    }

    @Test func tenPercentLossOnASiteUplinkKillsNobody() async throws {
        try await SiteLab.with { lab in
            try await lab.startAll()
            try await lab.requireFormation(within: 30)
            let service = try await lab.runService(on: .a1, gateway: .gw1, publicPort: 5001, appPort: 8000)
            try #require(await lab.servedAgain(service, within: 10, tryFor: 5) != nil, "never served before the loss")

            try await lab.loss(.a, percent: 10)
            let client = ClientLoop(lab: lab, url: service.url, expecting: service.text, attempt: 5)
            let watched = await lab.watch(for: 30)
            let outcomes = await client.stop()
            try await lab.heal(.a)
            #expect(!watched.notAlive.contains { $0.state == "dead" }, "false deaths at 10 % loss: \(watched.notAlive)")
            let summary = ClientLoop.summary(outcomes)
            #expect(summary.total > 0)
            #expect(summary.ok * 10 >= summary.total * 9, "at 10 % loss, too few requests served: \(summary)")
        }
    }

    /// gw1 killed (SIGKILL) and started again 5 s later. a1's `ps` says its path through gw1 is
    /// unreachable as soon as its link to gw1 closes, though its lease (60 s here, renewed every
    /// 20 s) still looks valid; once gw1 is back the run is served and `serving` again. An
    /// attached `warren run` on a1 through gw1 says both: "not reachable from the public" within
    /// 3 s of the kill, and "serves again" within the bounds of the restart.
    @Test func aKilledGatewayIsSaidUnreachableAtOnceAndServesAgainAfterItsRestart() async throws {
        try await SiteLab.with { lab in
            try await lab.startAll(environment: ["WARREN_LEASE_TTL_SECONDS": "60"])
            try await lab.requireFormation(within: 30)
            let attached = try lab.attachService(on: .a1, name: "attached", gateway: .gw1, publicPort: 5003, appPort: 8003)
            defer { attached.kill() }
            let service = try await lab.runService(on: .a1, gateway: .gw1, publicPort: 5001, appPort: 8000)
            try #require(await lab.servedAgain(service, within: 10, tryFor: 5) != nil, "never served before the kill")
            try #require(await lab.runPath(on: .a1, service.name) == "serving")
            try #require(await eventually(within: 20) { attached.output.contains("attached is up at \(attached.url)") },
                         "the attached run never said it was up: \(attached.output)")
            try #require(await lab.servedAgain(attached.service, within: 10, tryFor: 5) != nil, "the attached run never served")
            try #require(await lab.runPath(on: .a1, attached.name) == "serving")
            // The CLI polls its run every 250 ms: it must have seen `serving` before it can say
            // the path went down.
            try await Task.sleep(for: .seconds(1))

            await lab.kill(.gw1)
            let killed = Date()
            // The attached CLI's line and `ps`, watched at once, each within 3 s of the kill.
            async let saidDown = eventually(within: 3) {
                attached.output.contains("attached is not reachable from the public: gateway unreachable since")
            }
            let unreachable = await eventually(within: 3) { await lab.runPath(on: .a1, service.name) == "unreachable" }
            let seen = await lab.runPath(on: .a1, service.name)
            #expect(unreachable, "a1's ps said \(seen) \(String(format: "%.1f", Date().timeIntervalSince(killed))) s after gw1 was killed (unreachable within 3 s)")
            let down = await saidDown
            #expect(down, "the attached run did not say its path was down within 3 s of gw1's kill: \(attached.output)")

            try await Task.sleep(for: .seconds(5))
            try lab.start(.gw1, environment: ["WARREN_LEASE_TTL_SECONDS": "60"])
            let started = Date()
            // Served within 15 s and `serving` within 10 s more, as for `ps` below.
            async let saidBack = eventually(within: 25) { attached.output.contains("attached serves again at \(attached.url)") }
            let again = await lab.servedAgain(service, within: 15, tryFor: 2)
            #expect(again != nil, "a1's service not served within 15 s of gw1's start")
            let serving = await eventually(within: 10) { await lab.runPath(on: .a1, service.name) == "serving" }
            let after = await lab.runPath(on: .a1, service.name)
            #expect(serving, "a1's ps after gw1's restart: \(after)")
            let back = await saidBack
            #expect(back, "the attached run did not say it served again within 25 s of gw1's start: \(attached.output)")
            // Ctrl-C: the node stops the run, and the CLI ends as an interrupted command does.
            #expect(attached.isRunning, "the attached run ended by itself: \(attached.output)")
            let status = await attached.interrupt(within: 15)
            #expect(status == 130, "the attached run's exit after SIGINT: \(status.map(String.init) ?? "still running after 15 s"): \(attached.output)")
            let formed = await lab.waitForFormation(within: max(1, 30 - Date().timeIntervalSince(started)))
            let views = await lab.membership()
            #expect(formed != nil, "not all alive within 30 s of gw1's start: \(views)")
        }
    }

    /// a1 killed (SIGKILL) and started again 3 s later, under a client loop: while it is down
    /// the gateway answers `503` (at most one request in flight at the kill gets no answer); its
    /// app kept running and is adopted, and served within 10 s of the start.
    @Test func aKilledRunnerIsAnswered503AndServesAgainAfterItsRestart() async throws {
        try await SiteLab.with { lab in
            try await lab.startAll()
            try await lab.requireFormation(within: 30)
            let service = try await lab.runService(on: .a1, gateway: .gw1, publicPort: 5001, appPort: 8000)
            try #require(await lab.servedAgain(service, within: 10, tryFor: 5) != nil, "never served before the kill")

            let client = ClientLoop(lab: lab, url: service.url, expecting: service.text, attempt: 2)
            try await Task.sleep(for: .seconds(1))
            await lab.kill(.a1)
            try await Task.sleep(for: .seconds(3))
            try lab.start(.a1)
            let started = Date()
            let again = await lab.servedAgain(service, within: 10, tryFor: 2)
            let outcomes = await client.stop()
            #expect(again != nil, "a1's service not served within 10 s of a1's start")
            let summary = ClientLoop.summary(outcomes)
            #expect((summary.failures["503"] ?? 0) > 0, "no request got 503 while a1 was down: \(summary)")
            #expect((summary.failures["no answer"] ?? 0) <= 1, "requests without an answer while a1 was down: \(summary)")
            #expect(Set(summary.failures.keys).isSubset(of: ["503", "no answer"]), "\(summary)")
            let formed = await lab.waitForFormation(within: max(1, 20 - Date().timeIntervalSince(started)))
            let views = await lab.membership()
            #expect(formed != nil, "not all alive within 20 s of a1's start: \(views)")
        }
    }
}

/// What a poll saw, in order.
actor PathLog {
    private(set) var all: [String] = []
    func add(_ path: String) { all.append(path) }
}

/// What the lease watch found, in order.
actor HolderLog {
    private(set) var all: [String] = []
    func add(_ found: [String]) { all += found }
}

/// A client fetching a URL over and over (each bounded by `attempt` seconds) until `stop`.
final class ClientLoop: @unchecked Sendable {
    struct Outcome: Sendable {
        var at: TimeInterval
        var ok: Bool
        var code: Int
    }

    struct Summary: Sendable, CustomStringConvertible {
        var total = 0
        var ok = 0
        /// Failed requests by what they got: an HTTP status, or "no answer".
        var failures: [String: Int] = [:]
        /// The longest time from a failed request to the next served one (seconds).
        var longestOutage: TimeInterval = 0
        var description: String {
            "\(ok) of \(total) served; failed: \(failures.isEmpty ? "none" : failures.sorted { $0.key < $1.key }.map { "\($0.value) × \($0.key)" }.joined(separator: ", ")); longest outage \(String(format: "%.1f", longestOutage)) s"
        }
    }

    private let lock = NSLock()
    private var outcomes: [Outcome] = []
    private var task: Task<Void, Never>?
    let began = Date()

    /// With `resolve`, the URL's host is sent to those addresses in order (`curl --resolve`).
    init(lab: SiteLab, url: String, expecting text: String, attempt: Double = 2, every pause: Duration = .milliseconds(200),
         resolve: [String] = []) {
        let parts = URLComponents(string: url)
        let target = parts?.host.map { (host: $0, port: parts?.port ?? 80, path: parts?.path ?? "/") }
        task = Task { [began] in
            while !Task.isCancelled {
                let fetched: SiteLab.Fetched
                if !resolve.isEmpty, let target {
                    fetched = await lab.fetch(host: target.host, port: target.port, path: target.path, at: resolve, seconds: attempt)
                } else {
                    fetched = await lab.fetch(url, seconds: attempt)
                }
                let outcome = Outcome(at: Date().timeIntervalSince(began), ok: fetched.body == text, code: fetched.code)
                self.lock.withLock { self.outcomes.append(outcome) }
                try? await Task.sleep(for: pause)
            }
        }
    }

    /// Stops the loop; every outcome so far.
    func stop() async -> [Outcome] {
        task?.cancel()
        await task?.value
        return lock.withLock { outcomes }
    }

    /// The outcomes since `time` (seconds from the loop's start).
    func outcomes(since time: TimeInterval) -> [Outcome] {
        lock.withLock { outcomes.filter { $0.at >= time } }
    }

    static func summary(_ outcomes: [Outcome]) -> Summary {
        var summary = Summary()
        var failingSince: TimeInterval?
        var last: TimeInterval = 0
        for outcome in outcomes {
            summary.total += 1
            if outcome.ok {
                summary.ok += 1
                if let since = failingSince { summary.longestOutage = max(summary.longestOutage, outcome.at - since) }
                failingSince = nil
            } else {
                summary.failures[outcome.code == 0 ? "no answer" : String(outcome.code), default: 0] += 1
                // The outage began when the last served request ended.
                if failingSince == nil { failingSince = last }
            }
            last = outcome.at
        }
        if let since = failingSince { summary.longestOutage = max(summary.longestOutage, last - since) }
        return summary
    }
}
