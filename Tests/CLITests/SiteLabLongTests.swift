import Foundation
import Testing

/// The long runs of the two-site lab, for `make lab` (WARREN_LAB_LONG=1); in `make test` they
/// return at once. Each prints a "lab figure:" line per measurement (RELIABILITY.md has them).
///
///   WARREN_LAB_WATCH_SECONDS  formation watch (make lab: 600)
///   WARREN_LAB_LOSS_SECONDS   30 % loss on site A's uplink (make lab: 120)
///   WARREN_LAB_STOPS          SIGTERM stops of runners, each restarted (make lab: 20)
///   WARREN_LAB_PARTITION_SECONDS  site B cut off from gw1 (make lab: 60)
@Suite(.serialized) struct SiteLabLongTests {
    static let environment = ProcessInfo.processInfo.environment
    static let enabled = environment["WARREN_LAB_LONG"] == "1"
    static func number(_ name: String, _ fallback: Double) -> Double { Double(environment[name] ?? "") ?? fallback }

    static func figure(_ text: String) { print("lab figure: \(text)") }

    @Test func formationHoldsForTheWholeWatch() async throws {
        guard Self.enabled else { return }
        try await SiteLab.with { lab in
            let began = Date()
            try await lab.startAll()
            try await lab.requireFormation(within: 60)
            Self.figure(String(format: "formation: all five see four peers alive %.1f s after the first start", Date().timeIntervalSince(began)))
            let seconds = Self.number("WARREN_LAB_WATCH_SECONDS", 600)
            let watched = await lab.watch(for: seconds)
            Self.figure("formation watch \(Int(seconds)) s, every 2 s: \(watched.samples) samples, \(watched.notAlive.count) not alive \(watched.notAlive.prefix(20))")
            #expect(watched.notAlive.isEmpty, "flaps: \(watched.notAlive)")
            Self.figure(await Self.resources(lab))
        }
    }

    @Test func thirtyPercentLossOnASiteUplink() async throws {
        guard Self.enabled else { return }
        try await SiteLab.with { lab in
            try await lab.startAll()
            try await lab.requireFormation(within: 60)
            let service = try await lab.runService(on: .a1, gateway: .gw1, publicPort: 5001, appPort: 8000)
            try #require(await lab.servedAgain(service, within: 10, tryFor: 5) != nil)
            let seconds = Self.number("WARREN_LAB_LOSS_SECONDS", 120)
            try await lab.loss(.a, percent: 30)
            let client = ClientLoop(lab: lab, url: service.url, expecting: service.text, attempt: 10)
            let watched = await lab.watch(for: seconds)
            let outcomes = await client.stop()
            try await lab.heal(.a)
            let dead = watched.notAlive.filter { $0.state == "dead" }
            let suspect = watched.notAlive.filter { $0.state == "suspect" }
            Self.figure("30 % loss on site A for \(Int(seconds)) s: \(watched.samples) membership samples, \(dead.count) dead, \(suspect.count) suspect; client (10 s per request): \(ClientLoop.summary(outcomes))")
            #expect(dead.isEmpty, "false deaths at 30 % loss: \(dead)")
            let stable = await lab.waitForFormation(within: 30)
            Self.figure("after the loss: all alive again after \(stable.map { String(format: "%.1f s", $0) } ?? "more than 30 s")")
        }
    }

    @Test func runnersStoppedAndRestartedUnderAClientLoop() async throws {
        guard Self.enabled else { return }
        try await SiteLab.with { lab in
            try await lab.startAll()
            try await lab.requireFormation(within: 60)
            let onA = try await lab.runService(on: .a1, gateway: .gw1, publicPort: 5001, appPort: 8000)
            let onB = try await lab.runService(on: .b1, gateway: .gw1, publicPort: 5002, appPort: 8001)
            try #require(await lab.servedAgain(onA, within: 10, tryFor: 5) != nil)
            try #require(await lab.servedAgain(onB, within: 10, tryFor: 5) != nil)

            let stops = Int(Self.number("WARREN_LAB_STOPS", 20))
            let runners: [SiteLab.Member] = [.a1, .a2, .b1]
            var crashes: [String] = []
            var reserve: [Double] = []
            var formation: [Double] = []
            for round in 0..<stops {
                let member = runners[round % runners.count]
                // A client loop on the service of the member stopped (a2 has none: a1's).
                let service = member == .b1 ? onB : onA
                let client = ClientLoop(lab: lab, url: service.url, expecting: service.text, attempt: 2)
                try await Task.sleep(for: .seconds(1))
                let ended = await lab.stop(member, seconds: 15)
                if let ended, ended.reason != .exit || ended.status != 0 {
                    crashes.append("round \(round) \(member): \(ended.reason == .uncaughtSignal ? "signal" : "exit") \(ended.status)")
                }
                try await Task.sleep(for: .seconds(2))
                let restarted = Date()
                try lab.start(member)
                let back = await lab.servedAgain(service, within: 60, tryFor: 2).map { _ in Date().timeIntervalSince(restarted) }
                if let back { reserve.append(back) }
                if await lab.waitForFormation(within: 60) != nil { formation.append(Date().timeIntervalSince(restarted)) }
                let outcomes = await client.stop()
                Self.figure("stop \(round + 1)/\(stops) of \(member): \(ended.map { "\($0.reason == .exit ? "exit status" : "signal") \($0.status)" } ?? "?"); served again \(back.map { String(format: "%.1f s", $0) } ?? "not within 60 s") after the restart; client: \(ClientLoop.summary(outcomes))")
            }
            Self.figure("\(stops) SIGTERM stops of runners: \(crashes.count) not clean \(crashes); time to re-serve after the restart: \(Self.spread(reserve)); all five alive again after: \(Self.spread(formation))")
            #expect(crashes.isEmpty, "stops that were not clean exits: \(crashes)")
            #expect(reserve.count == stops, "runs not served again within 60 s of a restart: \(stops - reserve.count)")

            // The router's outside address moves back and forth: the time to serve again each time.
            var readdress: [Double] = []
            for round in 0..<5 {
                try await lab.readdress(.a, to: round % 2 == 0 ? "198.18.0.3" : "198.18.0.1")
                if let again = await lab.servedAgain(onA, within: 30, tryFor: 1) { readdress.append(again) }
                try await Task.sleep(for: .seconds(3))
            }
            Self.figure("site A router re-addressed 5 times: served again after \(Self.spread(readdress))")
            Self.figure(await Self.resources(lab))
        }
    }

    @Test func aSitePartitionedForAMinuteAndGatewayAndRunnerRestarts() async throws {
        guard Self.enabled else { return }
        try await SiteLab.with { lab in
            try await lab.startAll()
            try await lab.requireFormation(within: 60)
            let onA = try await lab.runService(on: .a1, gateway: .gw1, publicPort: 5001, appPort: 8000)
            let onB = try await lab.runService(on: .b1, gateway: .gw1, publicPort: 5002, appPort: 8001)
            try #require(await lab.servedAgain(onA, within: 10, tryFor: 5) != nil)
            try #require(await lab.servedAgain(onB, within: 10, tryFor: 5) != nil)

            // Site B cut off from gw1 (b1 still reaches gw2) for a minute, then healed.
            let seconds = Self.number("WARREN_LAB_PARTITION_SECONDS", 60)
            let client = ClientLoop(lab: lab, url: onB.url, expecting: onB.text, attempt: 5)
            try await lab.partition(.b, from: SiteLab.Member.gw1.address)
            let holders = HolderLog()
            let during = await lab.watch(for: seconds) { _ in await holders.add(await Self.doubleHolders(lab)) }
            try await lab.heal(.b)
            let healed = Date()
            let back = await lab.servedAgain(onB, within: 60, tryFor: 2).map { _ in Date().timeIntervalSince(healed) }
            let stable = await lab.waitForFormation(within: 60).map { _ in Date().timeIntervalSince(healed) }
            let outcomes = await client.stop()
            let dead = during.notAlive.filter { $0.state == "dead" }
            let doubles = await holders.all
            Self.figure("site B partitioned from gw1 for \(Int(seconds)) s: \(dead.count) dead and \(during.notAlive.count - dead.count) suspect samples of \(during.samples) \(dead.prefix(10)); after the heal served again \(back.map { String(format: "%.1f s", $0) } ?? "not within 60 s"), all alive \(stable.map { String(format: "%.1f s", $0) } ?? "not within 60 s"); bindings with two holders: \(doubles.isEmpty ? "none" : doubles.joined(separator: "; ")); client on b1's service: \(ClientLoop.summary(outcomes))")
            #expect(back.map { $0 <= 10 } == true, "b1's service back after \(String(describing: back)) s (at most 10)")
            #expect(stable.map { $0 <= 15 } == true, "membership stable after \(String(describing: stable)) s (at most 15)")
            #expect(doubles.isEmpty, "two holders: \(doubles)")

            // gw1 stopped (SIGTERM) and started again; then a1 killed (SIGKILL) and started again.
            for (member, kill) in [(SiteLab.Member.gw1, false), (.a1, true)] {
                let loop = ClientLoop(lab: lab, url: onA.url, expecting: onA.text, attempt: 2)
                try await Task.sleep(for: .seconds(2))
                if kill { await lab.kill(member) } else { await lab.stop(member, seconds: 15) }
                try await Task.sleep(for: .seconds(5))
                let restarted = Date()
                try lab.start(member)
                let again = await lab.servedAgain(onA, within: 60, tryFor: 2).map { _ in Date().timeIntervalSince(restarted) }
                let formed = await lab.waitForFormation(within: 60).map { _ in Date().timeIntervalSince(restarted) }
                let outcomes = await loop.stop()
                Self.figure("\(member) \(kill ? "killed (SIGKILL)" : "stopped (SIGTERM)"), down 5 s, started again: a1's service served again \(again.map { String(format: "%.1f s", $0) } ?? "not within 60 s") after the start, all five alive after \(formed.map { String(format: "%.1f s", $0) } ?? "more than 60 s"); client: \(ClientLoop.summary(outcomes))")
                #expect(again != nil, "a1's service not served again within 60 s of \(member)'s start")
            }
            Self.figure(await Self.resources(lab))
        }
    }

    /// Bindings (gateway, port, host) that two runs hold at once in some member's lease table.
    static func doubleHolders(_ lab: SiteLab) async -> [String] {
        var found: [String] = []
        for member in SiteLab.Member.allCases {
            guard let leases = try? await lab.warren(member, ["leases", "--json"], timeout: 20), leases.status == 0,
                  let list = try? JSONSerialization.jsonObject(with: Data(leases.stdout.utf8)) as? [[String: Any]]
            else { continue }
            var holders: [String: Set<String>] = [:]
            for lease in list {
                let key = "\(lease["gateway"] ?? "?"):\(lease["port"] ?? "?") \(lease["host"] as? String ?? "")"
                holders[key, default: []].insert(lease["runID"] as? String ?? "?")
            }
            for (key, runs) in holders where runs.count > 1 { found.append("\(member) saw \(key) held by \(runs.sorted())") }
        }
        return found
    }

    /// "min / median / max over n".
    static func spread(_ values: [Double]) -> String {
        guard !values.isEmpty else { return "no values" }
        let sorted = values.sorted()
        return String(format: "%.1f / %.1f / %.1f s (min / median / max over %d)", sorted.first!, sorted[sorted.count / 2], sorted.last!, sorted.count)
    }

    /// RSS and CPU time of each running node (from /proc).
    static func resources(_ lab: SiteLab) async -> String {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var parts: [String] = []
        for member in SiteLab.Member.allCases {
            guard let node = lab.node(member), node.isRunning,
                  let status = try? String(contentsOfFile: "/proc/\(node.pid)/status", encoding: .utf8),
                  let stat = try? String(contentsOfFile: "/proc/\(node.pid)/stat", encoding: .utf8)
            else { continue }
            let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }.map { $0.split(separator: " ", omittingEmptySubsequences: true)[1] } ?? "?"
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            let cpu = fields.count > 12 ? ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks : 0
            parts.append("\(member) \((Int(rss) ?? 0) / 1024) MiB RSS, \(String(format: "%.1f", cpu)) s CPU")
        }
        return "per node (debug build): " + parts.joined(separator: "; ")
    }
}
