import ArgumentParser
import Foundation
import MeshNode

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a service on this node and publish it through its gateway.",
        discussion: """
            Attached (the default), the service's output is streamed here and Ctrl-C stops it. With -d \
            the command returns once the service's URL is live, saying every few seconds what it waits \
            for, and fails after --timeout seconds.
            """
    )

    @Argument(help: "The working directory of the service's commands.") var directory: String = "."
    @Option(name: [.short, .customLong("file")], help: ArgumentHelp(
        "The service configuration file, dstack format (default: .dstack.yml, else service.dstack.yml, in DIR).", valueName: "FILE"))
    var file: String?
    @Option(help: "The project whose secrets the configuration uses.") var project: String
    @Flag(name: [.short, .customLong("detach")], help: "Return once the URL is live; the service keeps running.") var detach = false
    @Option(help: "How long the app may take to listen on its port and be published, in seconds.") var timeout: Double = 60
    @OptionGroup var node: NodeOptions

    func validate() throws {
        guard timeout > 0, timeout.isFinite else {
            throw ValidationError("--timeout must be a positive number of seconds, not \(timeout)")
        }
    }

    func run() async throws {
        let file = try ServiceFile.resolve(self.file, in: self.directory)
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            Output.error("error: cannot read the configuration file \(file)")
            throw ExitCode(1)
        }
        let directory = StateDirectory.absolute(self.directory)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            Output.error("error: \(self.directory) is not a directory")
            throw ExitCode(1)
        }
        let client = node.client
        try ProjectCheck.require(project, client: client)
        RunNotes.sayIgnoredFields(file: file, project: project, client: client)
        let request = RunRequest(project: project, configuration: text, configurationPath: file, directory: directory,
                                 environment: ProcessInfo.processInfo.environment, timeout: timeout)
        var info: RunInfo = try reportingFailures { try client.post("/v1/runs", request) }
        if !node.json { Output.line("Run \(info.name) started on this node; waiting for the app on port \(info.appPort)…") }

        if detach {
            info = try await waitUntilSettled(info, client: client)
            if node.json { try Output.json(info) }
            try finish(info, attached: false)
            return
        }

        let interrupted = InterruptFlag()
        Interrupt.install(stillRunning: "\(info.name) may still be stopping; `warren ps` shows it.") { [id = info.id] in
            interrupted.set()
            _ = try? client.post("/v1/runs/\(id)/stop", Empty(), as: RunInfo.self)
        }
        let logs = Thread { [id = info.id] in
            try? client.stream("/v1/runs/\(id)/logs?follow=1&from=start") { chunk in
                FileHandle.standardOutput.write(Data(chunk))
                return true
            }
        }
        logs.start()
        var announced = false
        var waits = WaitReporter(terminal: false)
        var watch = PathWatch()
        while true {
            info = try reportingFailures { try client.get("/v1/runs/\(info.id)") }
            if info.state == .running, !announced, let url = info.url {
                announced = true
                // stdout, as with -d: a script reads the URL from the same place either way.
                Output.line("\(info.name) is up at \(url)\(info.gatewaysText) (Ctrl-C stops it)")
            }
            if !announced { waits.update(info, timeout: timeout) }
            if let line = watch.update(info) { Output.error(line) }
            if !info.isActive { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        // Ctrl-C always ends the same way: the run stopped by the node, said so, status 130 (as
        // a shell reports an interrupted command), whatever state the run had reached.
        if interrupted.isSet {
            Output.line("\(info.name) stopped (interrupted).")
            throw ExitCode(130)
        }
        try finish(info, attached: true)
    }

    private func waitUntilSettled(_ start: RunInfo, client: NodeClient) async throws -> RunInfo {
        var info = start
        var waits = WaitReporter(terminal: isatty(STDERR_FILENO) == 1)
        // The node fails a run whose app does not listen within the timeout, with the app's log;
        // a little later this side gives up on a gateway that does not answer.
        let deadline = Date().addingTimeInterval(timeout + 2)
        while info.state == .starting || info.state == .leasing {
            if Date() >= deadline {
                waits.finish()
                Output.error(
                    "error: \(info.name) is not up after \(WaitReporter.seconds(timeout)): it waits for \(info.waitingFor ?? info.state.rawValue). "
                        + "It keeps trying: `warren ps` shows its state, `warren stop \(info.name)` stops it, --timeout waits longer")
                throw ExitCode(1)
            }
            try await Task.sleep(for: .milliseconds(200))
            info = try reportingFailures { try client.get("/v1/runs/\(info.id)") }
            waits.update(info, timeout: timeout)
        }
        waits.finish()
        return info
    }

    private func finish(_ info: RunInfo, attached: Bool) throws {
        switch info.state {
        case .running:
            if !node.json { Output.line("\(info.name) is up at \(info.url ?? "?")\(info.gatewaysText)") }
        case .stopped:
            if !node.json { Output.line("\(info.name) stopped.") }
        case .exited where info.exitCode == 0 && attached:
            if !node.json { Output.line("\(info.name) exited.") }
        default:
            if let missing = RunNotes.commandNotFound(info, client: node.client) {
                Output.error("error: \(info.name) failed: command not found: \(missing) (see `warren logs \(info.name)`)")
                throw ExitCode(1)
            }
            Output.error("error: \(info.name) \(info.state.rawValue)\(info.exitCode.map { " with exit code \($0)" } ?? ""): \(info.error ?? "see `warren logs \(info.name)`")")
            throw ExitCode(1)
        }
    }
}

struct PsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List the runs of this node.")
    @Flag(name: [.short, .customLong("all")], help: "Include runs that have ended.") var all = false
    @OptionGroup var node: NodeOptions

    func run() async throws {
        let runs: [RunInfo] = try reportingFailures { try node.client.get("/v1/runs") }
        let shown = all ? runs : runs.filter(\.isActive)
        if node.json { try Output.json(shown); return }
        if shown.isEmpty { Output.line(all ? "No runs." : "No active runs (`warren ps -a` shows ended ones)."); return }
        Output.line(Output.table(["name", "project", "state", "url", "path", "created"], shown.map {
            [$0.name, $0.project, $0.state.rawValue + ($0.exitCode.map { " (\($0))" } ?? ""), $0.url ?? "-", Self.path($0), Output.age($0.created)]
        }))
    }

    /// The health column: what the run waits for, or how the public reaches it.
    static func path(_ run: RunInfo) -> String {
        if let waiting = run.waitingFor { return "waiting for \(waiting)" }
        if let gateways = run.gateways, gateways.count > 1, run.isActive {
            return gateways.map { "\($0.address): \($0.path?.description ?? "pending")" }.joined(separator: "; ")
        }
        return run.path?.description ?? "-"
    }
}

extension RunInfo {
    /// For a run published on several gateways: " through gateways A, B", the addresses a client
    /// may connect to (DNS names them all); empty for one gateway.
    var gatewaysText: String {
        guard let gateways, gateways.count > 1 else { return "" }
        return " through gateways " + gateways.map(\.address).joined(separator: ", ")
    }
}

/// While `run` waits: what for, every few seconds on a line of its own, or on a terminal a
/// spinner redrawn in place.
struct WaitReporter {
    let terminal: Bool
    private let started = Date()
    private var lastLine: Date?
    private var frame = 0
    private var drawn = false
    private static let frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]
    /// The first line waits this long: a quick start prints nothing.
    static let quiet: TimeInterval = 3
    static let every: TimeInterval = 5

    init(terminal: Bool) {
        self.terminal = terminal
    }

    mutating func update(_ info: RunInfo, timeout: Double, now: Date = Date()) {
        guard let waiting = info.waitingFor ?? (info.state == .starting || info.state == .leasing ? info.state.rawValue : nil) else { return }
        let elapsed = now.timeIntervalSince(started)
        guard elapsed >= Self.quiet else { return }
        let text = "waiting for \(waiting) (\(Int(elapsed)) s of \(Self.seconds(timeout)))"
        if terminal {
            frame = (frame + 1) % Self.frames.count
            FileHandle.standardError.write(Data("\r\u{1B}[2K\(Self.frames[frame]) \(text)".utf8))
            drawn = true
        } else if lastLine.map({ now.timeIntervalSince($0) >= Self.every }) ?? true {
            lastLine = now
            Output.error(text + "…")
        }
    }

    /// Clears the spinner's line.
    mutating func finish() {
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
        drawn = false
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }
}

/// For an attached run: a line when its public path goes down, and one when it comes back.
struct PathWatch {
    private var down = false
    private var servedOnce = false
    /// Said once a run is down already: its gateway is gone, not only unreachable.
    private var saidGone = false

    mutating func update(_ info: RunInfo) -> String? {
        guard let path = info.path else { return nil }
        switch path.state {
        case .serving:
            servedOnce = true
            guard down else { return nil }
            down = false
            saidGone = false
            return "\(info.name) serves again at \(info.url ?? "its URL")"
        case .unreachable, .lost, .refused, .gone:
            guard servedOnce, !down || (path.state == .gone && !saidGone) else { return nil }
            down = true
            saidGone = path.state == .gone
            return "\(info.name) is not reachable from the public: \(path.description)"
        case .pending:
            return nil
        }
    }
}

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Show a run's output.",
        discussion: "With --json, one object a line (NDJSON): {\"line\": TEXT, \"run\": RUN}, also while following.")
    @Argument(help: "The run's name or ID.") var run: String
    @Flag(name: [.short, .customLong("follow")], help: "Keep printing new output until the run ends.") var follow = false
    @Option(help: "How many lines from the end to start with.") var tail: Int = 200
    @OptionGroup var node: NodeOptions

    func run() async throws {
        let lines = node.json ? LineSplitter() : nil
        let run = self.run
        try reportingFailures {
            try node.client.stream("/v1/runs/\(run.urlPathEscaped)/logs?tail=\(tail)\(follow ? "&follow=1" : "")") { chunk in
                guard let lines else {
                    FileHandle.standardOutput.write(Data(chunk))
                    return true
                }
                for line in lines.feed(chunk) { try? Output.jsonLine(LogLine(run: run, line: line)) }
                return true
            }
        }
        if let last = lines?.rest() { try Output.jsonLine(LogLine(run: run, line: last)) }
    }
}

struct StopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a run and free its gateway port.")
    @Argument(help: "The run's name or ID.") var run: String
    @OptionGroup var node: NodeOptions

    func run() async throws {
        let info: RunInfo = try reportingFailures { try node.client.post("/v1/runs/\(run.urlPathEscaped)/stop", Empty()) }
        if node.json { try Output.json(info) } else { Output.line("\(info.name) \(info.state.rawValue).") }
    }
}

/// Ctrl-C while attached: stop the run (once), then let the command see it end.
enum Interrupt {
    nonisolated(unsafe) private static var source: (any DispatchSourceSignal)?

    /// `stillRunning` is said when a second Ctrl-C gives up waiting.
    static func install(stillRunning: String? = nil, _ onInterrupt: @escaping @Sendable () -> Void) {
        signal(SIGINT, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        var fired = false
        s.setEventHandler {
            if fired {
                if let stillRunning { Output.error(stillRunning) }
                exit(130)
            }
            fired = true
            Output.error("\nstopping… (Ctrl-C again to stop waiting)")
            onInterrupt()
        }
        s.resume()
        source = s
    }
}

/// Set by the Ctrl-C handler, read by the command's loop.
final class InterruptFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
