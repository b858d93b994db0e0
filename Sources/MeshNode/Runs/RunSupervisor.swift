import Foundation
public import Logging
public import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Starts, watches and stops the processes of runs.
///
/// Each run is `/bin/sh -c` with its setup and commands, in its own process group, writing to
/// `<stateDir>/runs/<id>.log`. The supervisor reports every exit on `exits` (one consumer: the
/// node's run manager, which records it). After a node restart, `recover` adopts the groups that
/// still run. Linux only: liveness checks read /proc.
public actor RunSupervisor {
    public struct Configuration: Sendable {
        /// How long `stop` waits after SIGTERM before SIGKILL.
        public var stopGracePeriod: Duration
        /// The size above which a run's log is rotated.
        public var logCapBytes: Int
        /// How often exits (and log sizes) are checked.
        public var pollInterval: Duration
        /// The PATH of runs unless their environment sets one; nil: the node's own.
        public var path: String?

        public init(
            stopGracePeriod: Duration = .seconds(10), logCapBytes: Int = 10 << 20,
            pollInterval: Duration = .milliseconds(100), path: String? = nil
        ) {
            self.stopGracePeriod = stopGracePeriod
            self.logCapBytes = logCapBytes
            self.pollInterval = pollInterval
            self.path = path
        }
    }

    /// The variable that marks a run's processes with its ID, so that a recovered pid is known to
    /// be the run's and not a process that reused the number.
    public static let runIDVariable = "WARREN_RUN_ID"

    private struct Supervised {
        var pid: pid_t
        var pgid: pid_t
        var log: RunLog
        /// Adopted after a restart: not our child, so no exit code.
        var adopted: Bool
        var status: RunExitStatus?
        var waiters: [CheckedContinuation<RunExitStatus, Never>] = []
        var monitor: Task<Void, Never>?
    }

    /// Every exit of a run, in order. Iterate once.
    public nonisolated let exits: AsyncStream<RunExit>
    private let exitContinuation: AsyncStream<RunExit>.Continuation

    public nonisolated let runsDirectory: String
    private let configuration: Configuration
    private let logger: Logger
    private let eventLoopGroup: MultiThreadedEventLoopGroup
    private var runs: [String: Supervised] = [:]

    public init(
        stateDirectory: String, configuration: Configuration = Configuration(), logger: Logger,
        eventLoopGroup: MultiThreadedEventLoopGroup = .singleton
    ) {
        self.runsDirectory = (stateDirectory.hasSuffix("/") ? stateDirectory : stateDirectory + "/") + "runs"
        self.configuration = configuration
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        (exits, exitContinuation) = AsyncStream.makeStream(of: RunExit.self)
    }

    /// The log of run `id` (which need not be running).
    public nonisolated func log(id: String) -> RunLog {
        RunLog(path: runsDirectory + "/" + id + ".log", capBytes: configuration.logCapBytes)
    }

    // MARK: Starting

    /// Starts the run's setup and commands. Returns once the shell is started, not when the app
    /// is ready (see `waitForPort`).
    public func start(_ spec: RunSpec) throws -> StartedRun {
        let id = spec.id
        guard Self.isValidID(id) else { throw RunError.invalidID(id) }
        if let existing = runs[id], existing.status == nil { throw RunError.alreadyRunning(id: id) }
        var info = stat()
        guard stat(spec.directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw RunError.directoryNotFound(id: id, directory: spec.directory)
        }
        for name in spec.environment.keys where name.isEmpty || name.contains("=") || name.contains("\0") {
            throw RunError.invalidEnvironment(id: id, name: name)
        }
        do {
            try PrivateFiles.ensureDirectory(runsDirectory)
        } catch {
            throw RunError.spawnFailed(id: id, reason: error.description)
        }

        let log = log(id: id)
        let pid: pid_t
        do {
            pid = try ProcessSpawner.spawnShell(
                script: spec.script, directory: spec.directory, environment: environment(for: spec), logPath: log.path
            )
        } catch {
            throw RunError.spawnFailed(id: id, reason: error.reason)
        }
        runs[id] = Supervised(pid: pid, pgid: pid, log: log, adopted: false)
        startMonitor(id)
        logger.info("run started", metadata: ["run.id": "\(id)", "run.pid": "\(pid)", "run.dir": "\(spec.directory)"])
        return StartedRun(id: id, pid: pid, pgid: pid, logPath: log.path)
    }

    private func environment(for spec: RunSpec) -> [String] {
        let inherited = ProcessInfo.processInfo.environment
        let path = configuration.path ?? inherited["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        var environment: [String: String] = [
            "PATH": PythonFallback.path(path, fallbackDirectory: runsDirectory + "/python-fallback"),
            "HOME": inherited["HOME"] ?? "/",
        ]
        for name in ["USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"] {
            if let value = inherited[name] { environment[name] = value }
        }
        environment.merge(spec.environment) { _, given in given }
        environment[Self.runIDVariable] = spec.id
        return environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 128 && id != "." && id != ".."
            && id.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "-_.".unicodeScalars.contains($0) }
    }

    // MARK: Watching

    private func startMonitor(_ id: String) {
        let interval = configuration.pollInterval
        runs[id]?.monitor = Task {
            var tick = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if self.checkExit(id) { return }
                tick += 1
                if tick % 10 == 0 { self.rotateLog(id) }
            }
        }
    }

    /// True once the run's exit is known.
    private func checkExit(_ id: String) -> Bool {
        guard let run = runs[id] else { return true }
        if run.status != nil { return true }
        let status: RunExitStatus?
        if run.adopted {
            status = ProcessGroup.isAlive(pid: run.pid) ? nil : .unknown
        } else {
            var word: Int32 = 0
            let result = waitpid(run.pid, &word, WNOHANG)
            if result == run.pid {
                status = RunExitStatus(waitStatus: word)
            } else if result < 0, errno == ECHILD {
                status = .unknown
            } else {
                status = nil
            }
        }
        guard let status else { return false }
        finish(id, status)
        return true
    }

    private func finish(_ id: String, _ status: RunExitStatus) {
        guard var run = runs[id] else { return }
        run.status = status
        let waiters = run.waiters
        run.waiters = []
        runs[id] = run
        for waiter in waiters { waiter.resume(returning: status) }
        logger.info("run exited", metadata: ["run.id": "\(id)", "run.status": "\(status)"])
        exitContinuation.yield(RunExit(id: id, status: status))
        // Children the shell left behind (`cmd &`) belong to the run and go with it.
        if ProcessGroup.isAlive(pgid: run.pgid) {
            ProcessGroup.signal(pgid: run.pgid, SIGTERM)
            let pgid = run.pgid
            let grace = configuration.stopGracePeriod
            Task {
                try? await Task.sleep(for: grace)
                if ProcessGroup.isAlive(pgid: pgid) { ProcessGroup.signal(pgid: pgid, SIGKILL) }
            }
        }
    }

    private func rotateLog(_ id: String) {
        guard let log = runs[id]?.log, log.rotateIfNeeded() else { return }
        logger.debug("run log rotated", metadata: ["run.id": "\(id)", "run.log": "\(log.path)"])
    }

    /// The exit status of run `id`, nil while it runs; throws for a run this supervisor never saw.
    public func status(id: String) throws -> RunExitStatus? {
        guard let run = runs[id] else { throw RunError.unknownRun(id: id) }
        return run.status
    }

    /// Whether the supervisor watches run `id` and it has not exited.
    public func isRunning(id: String) -> Bool {
        runs[id].map { $0.status == nil } ?? false
    }

    /// Waits until run `id` exits.
    public func waitForExit(id: String) async throws -> RunExitStatus {
        guard let run = runs[id] else { throw RunError.unknownRun(id: id) }
        if let status = run.status { return status }
        return await withCheckedContinuation { continuation in
            runs[id]?.waiters.append(continuation)
        }
    }

    // MARK: Readiness

    /// Waits until `host:port` accepts a TCP connection. Fails early if the run exits, and at the
    /// timeout; both errors carry the last `tailLines` log lines.
    public func waitForPort(
        id: String, host: String = "127.0.0.1", port: Int, timeout: Duration = .seconds(60), tailLines: Int = 20
    ) async throws {
        guard let run = runs[id] else { throw RunError.unknownRun(id: id) }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        // Another program's listener on the port, once seen: the run is not up while it answers.
        var stranger: String?
        while true {
            if let status = runs[id]?.status {
                // An app that could not bind its port usually exits at once, often before the probe
                // saw the other program's listener: look once more, so the cause is named.
                if let holder = stranger ?? Self.stranger(port: port, pgid: run.pgid) {
                    throw RunError.portTaken(id: id, port: port, holder: holder, status: status, logTail: run.log.tail(lines: tailLines))
                }
                throw RunError.exitedBeforeReady(id: id, host: host, port: port, status: status, logTail: run.log.tail(lines: tailLines))
            }
            if await PortProbe.accepts(host: host, port: port, group: eventLoopGroup) {
                // The port may belong to something else if the run died meanwhile.
                _ = checkExit(id)
                if let status = runs[id]?.status {
                    if let holder = Self.stranger(port: port, pgid: run.pgid) {
                        throw RunError.portTaken(id: id, port: port, holder: holder, status: status, logTail: run.log.tail(lines: tailLines))
                    }
                    throw RunError.exitedBeforeReady(id: id, host: host, port: port, status: status, logTail: run.log.tail(lines: tailLines))
                }
                switch Self.owner(port: port, pgid: run.pgid) {
                case .other(let pid, let command):
                    if stranger == nil {
                        logger.info("the run's port is held by another program", metadata: [
                            "run.id": "\(id)", "run.port": "\(port)", "holder.pid": "\(pid)", "holder.command": "\(command)",
                        ])
                    }
                    stranger = "pid \(pid) (\(command))"
                default:
                    logger.debug("run port accepts", metadata: ["run.id": "\(id)", "run.port": "\(port)"])
                    return
                }
            }
            if clock.now >= deadline {
                let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
                if let stranger {
                    throw RunError.portTaken(id: id, port: port, holder: stranger, status: nil, logTail: run.log.tail(lines: tailLines))
                }
                throw RunError.portTimeout(id: id, host: host, port: port, timeoutSeconds: seconds, logTail: run.log.tail(lines: tailLines))
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private enum Owner { case group, other(pid: pid_t, command: String), unknown }

    /// Another program's listener on the port, as the error names it; nil when there is none.
    private static func stranger(port: Int, pgid: pid_t) -> String? {
        if case .other(let pid, let command) = owner(port: port, pgid: pgid) { return "pid \(pid) (\(command))" }
        return nil
    }

    private static func owner(port: Int, pgid: pid_t) -> Owner {
        #if canImport(Glibc)
        switch PortOwner.check(port: port, pgid: pgid) {
        case .group: return .group
        case .other(let pid, let command): return .other(pid: pid, command: command)
        case .unknown: return .unknown
        }
        #else
        return .unknown
        #endif
    }

    // MARK: Stopping

    /// Stops run `id`: SIGTERM to its process group, SIGKILL to what is left after the grace
    /// period. Returns how its main process ended.
    @discardableResult
    public func stop(id: String, gracePeriod: Duration? = nil) async throws -> RunExitStatus {
        guard let run = runs[id] else { throw RunError.unknownRun(id: id) }
        let grace = gracePeriod ?? configuration.stopGracePeriod
        logger.info("stopping run", metadata: ["run.id": "\(id)", "run.pgid": "\(run.pgid)"])
        ProcessGroup.signal(pgid: run.pgid, SIGTERM)
        if !(await waitUntilGone(id, within: grace)) {
            logger.info("run did not stop in time; killing", metadata: ["run.id": "\(id)"])
            ProcessGroup.signal(pgid: run.pgid, SIGKILL)
            // SIGKILL cannot be refused; the bound only guards against a process stuck in the kernel.
            _ = await waitUntilGone(id, within: .seconds(10))
        }
        _ = checkExit(id)
        return runs[id]?.status ?? .unknown
    }

    /// Polls until the run's main process has exited and no process of its group runs.
    private func waitUntilGone(_ id: String, within limit: Duration) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: limit)
        while true {
            guard let run = runs[id] else { return true }
            let exited = run.status != nil || checkExit(id)
            if exited, !ProcessGroup.isAlive(pgid: run.pgid) { return true }
            if clock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Stops watching every run without stopping it (the node shuts down and leaves its runs up;
    /// its next start recovers them).
    public func detachAll() {
        for (id, run) in runs {
            run.monitor?.cancel()
            if run.status == nil {
                for waiter in run.waiters { waiter.resume(returning: .unknown) }
            }
            runs[id] = nil
        }
    }

    /// Forgets a finished run.
    public func forget(id: String) {
        guard let run = runs[id], run.status != nil else { return }
        runs[id] = nil
    }

    // MARK: Recovery

    /// After a node restart: adopts the runs whose process group still runs and marks the others
    /// exited. Returns the records, updated (inactive records are returned unchanged). A pid is
    /// adopted only if its environment carries the run's `WARREN_RUN_ID`, so a reused pid is not
    /// mistaken for the run. A record left `stopping` is adopted as it is; call `stop` to finish.
    public func recover(_ records: [RunRecord]) -> [RunRecord] {
        records.map { record in
            guard record.state.isActive else { return record }
            var record = record
            let pid = record.pid ?? record.pgid ?? 0
            let pgid = record.pgid ?? pid
            if Self.isValidID(record.id), runs[record.id] == nil, pid > 0, ProcessGroup.isAlive(pid: pid),
               ProcessGroup.environment(of: pid, contains: "\(Self.runIDVariable)=\(record.id)") != false {
                runs[record.id] = Supervised(pid: pid, pgid: pgid, log: log(id: record.id), adopted: true)
                startMonitor(record.id)
                logger.info("run adopted", metadata: ["run.id": "\(record.id)", "run.pid": "\(pid)"])
            } else if runs[record.id] == nil {
                record.state = .exited
                record.exitCode = nil
                record.detail = "its processes ended while the node was down"
                record.updatedAt = Date()
                logger.info("run ended while the node was down", metadata: ["run.id": "\(record.id)"])
            }
            return record
        }
    }
}
