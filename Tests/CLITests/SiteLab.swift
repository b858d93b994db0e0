import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Two sites behind NAT and a public segment (`scripts/sites.sh`), with a real `warren node` per
/// member, each in its own namespace with its own state directory:
///
///     public 198.18.0.0/24: gw1 .10, gw2 .11 (gateways), cli .20 (a client with curl)
///     site A behind router ra (outside .1): a1 10.250.1.11, a2 10.250.1.12
///     site B behind router rb (outside .2): b1 10.250.2.11
///
/// gw2 joins through gw1, a1 and a2 through gw1, b1 through gw2. The routers masquerade and drop
/// new inbound connections. The lab's namespaces carry a prefix of this run only, and
/// `SiteLab.with` removes them, the nodes and their apps however the body ends.
///
/// Scenario tests drive it with: `start`/`stop`/`kill` of members, `warren(member, …)` (the CLI
/// against a member), `exec(namespace, …)`, `runService`, `attachService` (an attached `warren
/// run`, its output kept), `fetch` (curl from the client),
/// `readdress`, `flushConntrack`, `loss`, `partition`/`heal`, and `membership()` samples.
final class SiteLab: @unchecked Sendable {
    enum Member: String, CaseIterable, Sendable, Comparable {
        case gw1, gw2, a1, a2, b1

        var address: String {
            switch self {
            case .gw1: "198.18.0.10"
            case .gw2: "198.18.0.11"
            case .a1: "10.250.1.11"
            case .a2: "10.250.1.12"
            case .b1: "10.250.2.11"
            }
        }
        var listen: String { "\(address):7420" }
        var isGateway: Bool { self == .gw1 || self == .gw2 }
        /// The member it joins through: the runners of site A and gw2 through gw1, b1 through gw2.
        var joinsThrough: Member? {
            switch self {
            case .gw1: nil
            case .gw2, .a1, .a2: .gw1
            case .b1: .gw2
            }
        }
        static func < (a: Member, b: Member) -> Bool { a.rawValue < b.rawValue }
    }

    enum Site: String, Sendable { case a, b }

    static let clientAddress = "198.18.0.20"

    /// Why the lab can't run here (it needs root, `ip netns`, iptables and curl), or nil.
    static let unavailableReason: String? = {
        guard getuid() == 0 else { return "not root" }
        for tool in ["/usr/bin/curl", "/usr/sbin/iptables"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "no \(tool) (scripts/deps.sh installs it)"
        }
        let probe = "wslprobe\(getpid())"
        guard let made = try? WarrenProcess.runTool(["ip", "netns", "add", probe]), made.status == 0 else {
            return "`ip netns add` does not work here"
        }
        _ = try? WarrenProcess.runTool(["ip", "netns", "del", probe])
        return nil
    }()

    static var hasConntrack: Bool {
        ["/usr/sbin/conntrack", "/sbin/conntrack", "/usr/bin/conntrack"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    }

    let prefix: String
    /// State directories, apps and logs: short, since a node's Unix socket path must fit 108 bytes.
    let root: String
    private let scriptPath = WarrenProcess.packageRoot.appendingPathComponent("scripts/sites.sh").path
    private let lock = NSLock()
    private var nodes: [Member: NamespacedNode] = [:]
    private var ended: [String] = []
    private var starts: [Member: Int] = [:]
    /// Arguments and environment a member gets on every start (a restart starts it alike).
    private var standing: [Member: (arguments: [String], environment: [String: String])] = [:]

    /// Makes the namespaces; `with` is the way in that always cleans up.
    private init() async throws {
        // This run's own prefix (process ID and a random part), so parallel runs never meet.
        prefix = "w" + String(getpid(), radix: 36) + String(UInt16.random(in: 0...UInt16.max) % 1296, radix: 36) + "-"
        var bytes = Array("/tmp/warren-lab-XXXXXX".utf8CString)
        guard let made = mkdtemp(&bytes) else { throw POSIXError(.EIO) }
        root = String(cString: made)
        await Self.removeAbandonedLabs()
        try "\(getpid()) \(prefix)\n".write(toFile: "\(root)/owner", atomically: true, encoding: .utf8)
        liveLabs.insert(prefix)
        let up = try await script(["up"], timeout: .seconds(120))
        guard up.status == 0 else {
            await tearDown()
            throw LabError("scripts/sites.sh up failed (exit \(up.status)): \(up.stdout)\(up.stderr)")
        }
    }

    /// Runs `body` with a fresh lab, and removes the lab afterwards whether `body` returns, throws or
    /// records failed expectations. Returns nil (after printing why) where the lab can't run.
    @discardableResult
    static func with<T>(_ body: (SiteLab) async throws -> T) async throws -> T? {
        if let reason = unavailableReason {
            print("skipping the two-site NAT lab: \(reason); it runs as root where `ip netns` works (CI)")
            return nil
        }
        let lab = try await SiteLab()
        do {
            let result = try await body(lab)
            await lab.tearDown()
            return result
        } catch {
            Issue.record("the lab's node logs, on failure:\n\(lab.logTails())")
            await lab.tearDown()
            throw error
        }
    }

    /// Removes the namespaces and directories of labs whose test process is gone without cleaning
    /// up (it crashed, or was killed): each lab's directory names its owner's process ID.
    static func removeAbandonedLabs() async {
        let script = WarrenProcess.packageRoot.appendingPathComponent("scripts/sites.sh").path
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? [] where entry.hasPrefix("warren-lab-") {
            let directory = "/tmp/\(entry)"
            guard let owner = try? String(contentsOfFile: "\(directory)/owner", encoding: .utf8) else { continue }
            let fields = owner.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            guard fields.count == 2, let pid = Int32(fields[0]) else { continue }
            // Its test process is gone, or it is this process and the lab was torn down already.
            let abandoned = pid == getpid() ? !liveLabs.all.contains(fields[1]) : (Glibc.kill(pid, 0) == -1 && errno == ESRCH)
            guard abandoned else { continue }
            _ = try? await launch(URL(fileURLWithPath: script), ["down"], environment: ["WARREN_SITES_PREFIX": fields[1]], timeout: .seconds(120))
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    // MARK: Nodes

    func home(_ member: Member) -> String { "\(root)/\(member.rawValue)" }

    /// Starts `warren node start` for `member` inside its namespace (it must not run already).
    @discardableResult
    func start(_ member: Member, extra: [String] = [], environment: [String: String] = [:]) throws -> NamespacedNode {
        let kept = lock.withLock { standing[member] } ?? (arguments: [], environment: [:])
        let extra = kept.arguments + extra
        let environment = kept.environment.merging(environment) { $1 }
        var arguments = ["--state-dir", home(member), "--listen", member.listen]
        if member.isGateway { arguments += ["--gateway", "--public-address", member.address, "--name", member.rawValue] }
        if let through = member.joinsThrough { arguments += ["--join", through.listen] }
        // `WARREN_LAB_LOG_LEVEL=debug` keeps what a fault needs to be explained (with
        // `WARREN_LAB_KEEP=1`, which keeps the logs).
        if let level = ProcessInfo.processInfo.environment["WARREN_LAB_LOG_LEVEL"] { arguments += ["--log-level", level] }
        let count = lock.withLock { () -> Int in
            starts[member, default: 0] += 1
            return starts[member]!
        }
        let node = try NamespacedNode(
            namespace: prefix + member.rawValue, arguments: arguments + extra, environment: environment,
            logPath: "\(root)/\(member.rawValue).\(count).log")
        lock.withLock { nodes[member] = node }
        return node
    }

    /// Starts every member, gateways first, each once the member it joins through answers.
    /// `arguments` are added to a member's `node start` on this and every later start.
    func startAll(environment: [String: String] = [:], arguments: [Member: [String]] = [:]) async throws {
        lock.withLock {
            for member in Member.allCases { standing[member] = (arguments[member] ?? [], environment) }
        }
        for member in Member.allCases {
            try start(member)
            guard await waitUntilServing(member) else {
                throw LabError("\(member) did not answer on its local API within 30 s:\n\(node(member)?.log ?? "")")
            }
        }
    }

    func node(_ member: Member) -> NamespacedNode? { lock.withLock { nodes[member] } }

    /// Whether `member` answers `warren peers` (bounded).
    func waitUntilServing(_ member: Member, within seconds: TimeInterval = 30) async -> Bool {
        await eventually(within: seconds) {
            guard self.node(member)?.isRunning == true else { return false }
            return (try? await self.warren(member, ["peers"], timeout: 10))?.status == 0
        }
    }

    /// SIGTERM, then SIGKILL after `seconds`; how it ended (a trap is a crash).
    @discardableResult
    func stop(_ member: Member, seconds: TimeInterval = 10) async -> (reason: Process.TerminationReason, status: Int32)? {
        guard let node = node(member) else { return nil }
        await node.stop(seconds: seconds)
        return node.termination
    }

    /// SIGKILL, as a crash or a power cut would.
    func kill(_ member: Member) async {
        await node(member)?.kill()
    }

    // MARK: Commands

    /// `warren ARGS` against `member`'s node (its Unix socket, reachable from any namespace).
    func warren(_ member: Member, _ arguments: [String], timeout: TimeInterval = 60) async throws -> WarrenProcess.Result {
        try await WarrenProcess.run(arguments, environment: ["WARREN_HOME": home(member)], timeout: timeout)
    }

    /// `scripts/sites.sh ARGS` with this lab's prefix (bounded).
    func script(_ arguments: [String], timeout: Duration = .seconds(30)) async throws -> WarrenProcess.Result {
        try await launch(URL(fileURLWithPath: scriptPath), arguments, environment: ["WARREN_SITES_PREFIX": prefix], timeout: timeout)
    }

    /// A command inside one of the lab's namespaces: gw1 gw2 cli ra a1 a2 rb b1 (or wan).
    func exec(_ namespace: String, _ command: [String], timeout: Duration = .seconds(30)) async throws -> WarrenProcess.Result {
        try await script(["exec", namespace] + command, timeout: timeout)
    }

    /// A script command that must work (a change to the topology).
    private func change(_ arguments: [String]) async throws {
        let done = try await script(arguments)
        guard done.status == 0 else {
            throw LabError("scripts/sites.sh \(arguments.joined(separator: " ")) failed (exit \(done.status)): \(done.stdout)\(done.stderr)")
        }
    }

    // MARK: Faults

    /// The site router's outside address becomes `address` (198.18.0.x): the NAT maps anew.
    func readdress(_ site: Site, to address: String) async throws { try await change(["readdress", site.rawValue, address]) }
    /// Empties the site router's connection-tracking table (needs conntrack).
    func flushConntrack(_ site: Site) async throws { try await change(["conntrack-flush", site.rawValue]) }
    /// Drops `percent` % of what the site's router forwards, both ways, until `heal`.
    func loss(_ site: Site, percent: Int) async throws { try await change(["loss", site.rawValue, String(percent)]) }
    /// Nothing passes between the site and `address` until `heal`.
    func partition(_ site: Site, from address: String) async throws { try await change(["partition", site.rawValue, address]) }
    /// Removes the site's loss and partitions.
    func heal(_ site: Site) async throws { try await change(["heal", site.rawValue]) }

    /// Two halves that hear nothing of each other: gw1 with site A, gw2 with site B. Each site is
    /// cut from the other half's gateway and router, and gw1 and gw2 from each other; the client
    /// still reaches both gateways. Until `healSplit`.
    func split() async throws {
        let routerA = try await script(["addr", "ra"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try await partition(.a, from: Member.gw2.address)
        try await partition(.a, from: "198.18.0.2")
        try await partition(.b, from: Member.gw1.address)
        try await partition(.b, from: routerA)
        try await change(["partition", "gw1", Member.gw2.address])
        try await change(["partition", "gw2", Member.gw1.address])
    }

    /// Removes `split`'s cuts (and any loss on the sites).
    func healSplit() async throws {
        for place in ["a", "b", "gw1", "gw2"] { try await change(["heal", place]) }
    }

    // MARK: Services and the client

    struct Fetched: Sendable {
        /// The HTTP status; 0 when no answer came (refused, reset, timed out).
        var code: Int
        var body: String
        var curlExit: Int32
    }

    /// `curl URL` from the client's namespace, bounded by `seconds`.
    func fetch(_ url: String, seconds: Double = 5) async -> Fetched {
        let marker = "\n--http-code:"
        guard let result = try? await exec("cli", ["curl", "-s", "-m", String(seconds), "-w", "\(marker)%{http_code}", url], timeout: .seconds(Int64(seconds) + 20)),
              let range = result.stdout.range(of: marker, options: .backwards)
        else { return Fetched(code: 0, body: "", curlExit: -1) }
        return Fetched(code: Int(result.stdout[range.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0,
                       body: String(result.stdout[..<range.lowerBound]), curlExit: result.status)
    }

    struct Service: Sendable {
        var name: String
        var url: String
        /// A file the app serves, and its text.
        var path: String
        var text: String
    }

    /// `curl http://HOST:PORT/PATH` from the client, connecting to `addresses` in order (curl moves
    /// to the next when a connection fails, as a client given several DNS answers does).
    func fetch(host: String, port: Int, path: String, at addresses: [String], seconds: Double = 2) async -> Fetched {
        let marker = "\n--http-code:"
        let arguments = ["curl", "-s", "-m", String(seconds), "-w", "\(marker)%{http_code}",
                         "--resolve", "\(host):\(port):\(addresses.joined(separator: ","))", "http://\(host):\(port)\(path)"]
        guard let result = try? await exec("cli", arguments, timeout: .seconds(Int64(seconds) + 20)),
              let range = result.stdout.range(of: marker, options: .backwards)
        else { return Fetched(code: 0, body: "", curlExit: -1) }
        return Fetched(code: Int(result.stdout[range.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0,
                       body: String(result.stdout[..<range.lowerBound]), curlExit: result.status)
    }

    /// `warren run -d` on `member` of a service named `name` (`python3 -m http.server` on the
    /// member's loopback port `appPort`, serving `hello.txt` with `text`), with `gateway:` set to
    /// `gateway` (an address, or a domain gateways announce) and `domain:` when given. The CLI's
    /// result as it is: a run may be refused or fail (a domain held by another run).
    func submitService(on member: Member, name: String, gateway: String, domain: String? = nil,
                       publicPort: Int, appPort: Int) async throws -> (result: WarrenProcess.Result, text: String) {
        let directory = "\(root)/app-\(name)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let text = "\(name) served by \(member.rawValue)\n"
        try text.write(toFile: "\(directory)/hello.txt", atomically: true, encoding: .utf8)
        let file = "\(directory).yml"
        try """
            type: service
            name: \(name)
            gateway: \(gateway)
            \(domain.map { "domain: \($0)" } ?? "")
            port: "\(publicPort):\(appPort)"
            commands:
              - python3 -m http.server \(appPort) --bind 127.0.0.1

            """.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try await warren(member, ["run", directory, "-f", file, "--project", "local", "-d"])
        return (result, text)
    }

    /// `warren run -d` on `member`: `python3 -m http.server` on the member's loopback port
    /// `appPort`, published on `gateway`'s port `publicPort`. Throws when the run does not come up.
    func runService(on member: Member, gateway: Member, publicPort: Int, appPort: Int) async throws -> Service {
        let directory = "\(root)/app-\(member.rawValue)-\(publicPort)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let text = "served by \(member.rawValue) through \(gateway.rawValue)\n"
        try text.write(toFile: "\(directory)/hello.txt", atomically: true, encoding: .utf8)
        let file = "\(directory).yml"
        try """
            type: service
            gateway: \(gateway.address)
            port: "\(publicPort):\(appPort)"
            commands:
              - python3 -m http.server \(appPort) --bind 127.0.0.1

            """.write(toFile: file, atomically: true, encoding: .utf8)
        let started = try await warren(member, ["run", directory, "-f", file, "--project", "local", "-d"])
        let url = "http://\(gateway.address):\(publicPort)"
        guard started.status == 0, started.stdout.contains("is up at \(url)") else {
            throw LabError("warren run on \(member) failed (exit \(started.status)): \(started.stdout)\(started.stderr)")
        }
        let words = started.stdout.split(whereSeparator: \.isWhitespace)
        guard let name = words.firstIndex(of: "Run").map({ String(words[$0 + 1]) }) else {
            throw LabError("no run name in: \(started.stdout)")
        }
        return Service(name: name, url: url + "/hello.txt", path: "/hello.txt", text: text)
    }

    /// An attached `warren run` (no -d) on `member` of a service named `name` (`python3 -m
    /// http.server` on the member's loopback port `appPort`) published on `gateway`'s port
    /// `publicPort`. The CLI runs outside the namespaces, against the member's Unix socket as
    /// `warren(member, …)` does, and keeps polling its run: what it prints (the URL, then a line
    /// each time the public path goes down or comes back) is in `AttachedRun.output`. Its
    /// working directory is in the lab's root, so `tearDown` kills it if a test did not.
    func attachService(on member: Member, name: String, gateway: Member, publicPort: Int, appPort: Int) throws -> AttachedRun {
        let directory = "\(root)/app-\(name)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let text = "\(name) served by \(member.rawValue) through \(gateway.rawValue)\n"
        try text.write(toFile: "\(directory)/hello.txt", atomically: true, encoding: .utf8)
        let file = "\(directory).yml"
        try """
            type: service
            name: \(name)
            gateway: \(gateway.address)
            port: "\(publicPort):\(appPort)"
            commands:
              - python3 -m http.server \(appPort) --bind 127.0.0.1

            """.write(toFile: file, atomically: true, encoding: .utf8)
        let url = "http://\(gateway.address):\(publicPort)"
        return try AttachedRun(
            name: name, url: url, service: Service(name: name, url: url + "/hello.txt", path: "/hello.txt", text: text),
            arguments: ["run", directory, "-f", file, "--project", "local"],
            environment: ["WARREN_HOME": home(member)], directory: directory, outputPath: "\(root)/attached-\(name).out")
    }

    /// Whether the client gets `service`'s text within `seconds`; the time it took when it did.
    func servedAgain(_ service: Service, within seconds: TimeInterval, tryFor attempt: Double = 1) async -> TimeInterval? {
        let began = Date()
        let served = await eventually(within: seconds) {
            await self.fetch(service.url, seconds: attempt).body == service.text
        }
        return served ? Date().timeIntervalSince(began) : nil
    }

    /// The `path` of `member`'s run `name` as `ps --json` has it (state, or what went wrong).
    func runPath(on member: Member, _ name: String) async -> String {
        guard let ps = try? await warren(member, ["ps", "--json"], timeout: 20), ps.status == 0,
              let runs = try? JSONSerialization.jsonObject(with: Data(ps.stdout.utf8)) as? [[String: Any]],
              let run = runs.first(where: { $0["name"] as? String == name })
        else { return "no such run in ps" }
        return (run["path"] as? [String: Any])?["state"] as? String ?? "none"
    }

    // MARK: Membership

    /// How every running member sees every other: observer → (subject → state, with "+link"
    /// when the observer holds a link to it). A member that can't be asked maps to an empty view.
    func membership(of observers: [Member] = Member.allCases) async -> [Member: [Member: String]] {
        var views: [Member: [Member: String]] = [:]
        for observer in observers where node(observer)?.isRunning == true {
            views[observer] = await view(of: observer)
        }
        return views
    }

    func view(of observer: Member) async -> [Member: String] {
        guard let peers = try? await warren(observer, ["peers", "--json"], timeout: 20), peers.status == 0,
              let list = try? JSONSerialization.jsonObject(with: Data(peers.stdout.utf8)) as? [[String: Any]]
        else { return [:] }
        var view: [Member: String] = [:]
        for peer in list where peer["isSelf"] as? Bool != true {
            guard let address = peer["address"] as? String, let member = Member.allCases.first(where: { $0.listen == address }) else { continue }
            view[member] = peer["state"] as? String ?? "?"
        }
        return view
    }

    /// Whether every pair of `members` sees each other alive.
    static func allAlive(_ views: [Member: [Member: String]], among members: [Member] = Member.allCases) -> Bool {
        members.allSatisfy { observer in
            members.allSatisfy { $0 == observer || views[observer]?[$0] == "alive" }
        }
    }

    /// Polls until every pair of `members` sees each other alive; the seconds it took, or nil.
    func waitForFormation(of members: [Member] = Member.allCases, within seconds: TimeInterval) async -> TimeInterval? {
        let began = Date()
        let formed = await eventually(within: seconds) {
            Self.allAlive(await self.membership(of: members), among: members)
        }
        return formed ? Date().timeIntervalSince(began) : nil
    }

    /// `waitForFormation`, or an error naming how each member saw the others.
    @discardableResult
    func requireFormation(of members: [Member] = Member.allCases, within seconds: TimeInterval) async throws -> TimeInterval {
        if let took = await waitForFormation(of: members, within: seconds) { return took }
        let views = await membership(of: members)
        throw LabError("the members did not all see each other alive within \(Int(seconds)) s: \(views)")
    }

    struct Sample: Sendable, CustomStringConvertible {
        var at: TimeInterval
        var observer: Member
        var subject: Member
        var state: String
        var description: String { String(format: "%.0f s: %@ saw %@ %@", at, observer.rawValue, subject.rawValue, state) }
    }

    /// Samples the membership every `interval` for `seconds` (bounded), and returns every sample
    /// that was not "alive" among `members` (observers and subjects both in `members`).
    func watch(_ members: [Member] = Member.allCases, for seconds: TimeInterval, every interval: TimeInterval = 2,
               during: (@Sendable (TimeInterval) async -> Void)? = nil) async -> (samples: Int, notAlive: [Sample]) {
        let began = Date()
        var count = 0
        var bad: [Sample] = []
        while Date().timeIntervalSince(began) < seconds {
            let tick = Date()
            let views = await membership(of: members)
            let at = tick.timeIntervalSince(began)
            for observer in members {
                for subject in members where subject != observer {
                    count += 1
                    let state = views[observer]?[subject] ?? "unknown"
                    if state != "alive" { bad.append(Sample(at: at, observer: observer, subject: subject, state: state)) }
                }
            }
            await during?(at)
            let left = interval - Date().timeIntervalSince(tick)
            if left > 0 { try? await Task.sleep(for: .milliseconds(Int(left * 1000))) }
        }
        return (count, bad)
    }

    // MARK: Logs and cleanup

    /// The last lines of every node's log (the current and earlier starts), for failure messages.
    func logTails(lines: Int = 40) -> String {
        let logs = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasSuffix(".log") }.sorted()
        return logs.map { name -> String in
            let text = (try? String(contentsOfFile: "\(root)/\(name)", encoding: .utf8)) ?? ""
            return "--- \(name)\n" + text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Stops the nodes (SIGTERM, then SIGKILL), then removes the namespaces, which kills whatever
    /// still runs inside them (apps of killed nodes), and the state directories.
    func tearDown() async {
        let running = lock.withLock { Array(nodes.values) }
        for node in running { await node.stop(seconds: 5) }
        // On a loaded machine "down" can outlast its bound: once more, then leave the directory
        // (with its owner file) for the next lab to finish the job.
        var removed = false
        for _ in 0..<2 where !removed {
            _ = try? await script(["down"], timeout: .seconds(120))
            let left = try? await launch(URL(fileURLWithPath: "/usr/bin/env"), ["ip", "netns", "list"], timeout: .seconds(30))
            removed = left.map { $0.status == 0 && !$0.stdout.split(separator: "\n").contains { $0.hasPrefix(prefix) } } ?? false
        }
        killProcesses(workingUnder: root)
        liveLabs.remove(prefix)
        if !removed {
            print("the lab's namespaces \(prefix)* could not all be removed; the next lab removes them (or: WARREN_SITES_PREFIX=\(prefix) scripts/sites.sh down)")
        } else if ProcessInfo.processInfo.environment["WARREN_LAB_KEEP"] == nil {
            try? FileManager.default.removeItem(atPath: root)
        } else {
            // Without its owner file the next lab does not take it for abandoned and remove it.
            try? FileManager.default.removeItem(atPath: "\(root)/owner")
            print("the lab's state and logs are kept in \(root)")
        }
    }

}

/// Prefixes of labs not torn down yet; at exit their namespaces are removed, in case a test left
/// one behind (a crash of the test process still can).
private let liveLabs = LivePrefixes()

final class LivePrefixes: @unchecked Sendable {
    private let lock = NSLock()
    private var prefixes: Set<String> = []
    private var registered = false

    func insert(_ prefix: String) {
        lock.withLock {
            prefixes.insert(prefix)
            if !registered {
                registered = true
                atexit { removeLeftoverLabs() }
            }
        }
    }

    func remove(_ prefix: String) { _ = lock.withLock { prefixes.remove(prefix) } }
    var all: Set<String> { lock.withLock { prefixes } }
}

private func removeLeftoverLabs() {
    let script = WarrenProcess.packageRoot.appendingPathComponent("scripts/sites.sh").path
    for prefix in liveLabs.all {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = ["down"]
        process.environment = ["WARREN_SITES_PREFIX": prefix, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        try? process.run()
        process.waitUntilExit()
    }
}

struct LabError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `warren node start ARGS` inside a network namespace (`ip netns exec` execs, so the process is
/// the node itself and signals reach it), its output in a log file.
final class NamespacedNode: @unchecked Sendable {
    let logPath: String
    private let process = Process()

    init(namespace: String, arguments: [String], environment: [String: String] = [:], logPath: String) throws {
        self.logPath = logPath
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", namespace, WarrenProcess.binary.path, "node", "start"] + arguments
        process.currentDirectoryURL = WarrenProcess.packageRoot
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }
    var pid: Int32 { process.processIdentifier }

    /// How it ended, once it has: an exit status, or the signal that ended it (a trap is a crash).
    var termination: (reason: Process.TerminationReason, status: Int32)? {
        process.isRunning ? nil : (process.terminationReason, process.terminationStatus)
    }

    /// SIGTERM, then SIGKILL if it hasn't exited within `seconds`.
    func stop(seconds: TimeInterval = 5) async {
        guard process.isRunning else { return }
        process.terminate()
        if await eventually(within: seconds, { !process.isRunning }) { return }
        await kill()
    }

    /// SIGKILL; waits (bounded) for it to be gone.
    func kill() async {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        _ = await eventually(within: 5) { !process.isRunning }
    }
}

/// An attached `warren run` (`SiteLab.attachService`): the CLI process, its stdout and stderr in
/// one file. End it with `interrupt` (Ctrl-C's SIGINT: the node stops the run), and `kill` it in
/// a `defer`, so a test that fails before its end leaves no CLI behind.
final class AttachedRun: @unchecked Sendable {
    let name: String
    /// The URL the CLI prints, `http://GATEWAY:PORT`.
    let url: String
    let service: SiteLab.Service
    let outputPath: String
    private let process = Process()

    init(name: String, url: String, service: SiteLab.Service, arguments: [String], environment: [String: String],
         directory: String, outputPath: String) throws {
        self.name = name
        self.url = url
        self.service = service
        self.outputPath = outputPath
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.executableURL = WarrenProcess.binary
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? output.close()
    }

    /// Everything it printed so far.
    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }

    /// SIGINT, as Ctrl-C; its exit status once it has ended within `seconds`, else nil (still running).
    func interrupt(within seconds: TimeInterval = 15) async -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        Glibc.kill(process.processIdentifier, SIGINT)
        guard await eventually(within: seconds, { !process.isRunning }) else { return nil }
        return process.terminationStatus
    }

    /// SIGKILL, if it still runs.
    func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }
}
