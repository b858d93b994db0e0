public import Foundation
import Gossip
#if canImport(Glibc)
import Glibc
#endif
import Link
import NIOCore
public import Provisioning
import Trust

/// Gateways on this machine: `warren node start --gateway` as a detached process on a loopback
/// address of its own, its state in `<directory>/<name>`. What `make demo` and the tests use.
///
/// Each gateway directory holds the node's state (identity, database, socket) and, written here,
/// `local.json` (the `ProvisionedGateway`), `gateway.pid` and `gateway.log`. The process runs in a
/// session of its own, so it outlives the node that started it; `delete` stops it.
public struct LocalBackend: GatewayBackend {
    public struct Configuration: Sendable {
        /// Where gateway directories are made: `<creating node's state dir>/gateways`.
        public var directory: String
        /// The `warren` binary to start (the running one, by default).
        public var binary: String
        /// The loopback address to use (`--address`); nil picks the first free one of `candidates`.
        public var address: String?
        public var candidates: [String]
        /// How long a gateway has to stop after SIGTERM before it is killed.
        public var stopGrace: Duration
        /// The environment of the gateway process (WARREN_HOME is dropped: `--state-dir` says it).
        public var environment: [String: String]

        public init(
            directory: String, binary: String? = nil, address: String? = nil,
            candidates: [String] = (2...254).map { "127.0.0.\($0)" }, stopGrace: Duration = .seconds(5),
            environment: [String: String] = ProcessInfo.processInfo.environment
        ) {
            self.directory = directory
            self.binary = binary ?? LocalBackend.runningBinary
            self.address = address
            self.candidates = candidates
            self.stopGrace = stopGrace
            self.environment = environment
        }
    }

    public let configuration: Configuration
    public var kind: String { "local" }

    /// The node's environment variable naming the `warren` binary local gateways run, when not
    /// the node's own (another build, or a stand-in in tests).
    public static let binaryVariable = "WARREN_GATEWAY_BINARY"

    /// The environment variable that marks a gateway's process with its name, so a pid file that
    /// outlived its process never makes us signal a stranger that reused the number.
    static let markerVariable = "WARREN_LOCAL_GATEWAY"

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// This process's executable: `/proc/self/exe`, else argv[0] made absolute.
    public static var runningBinary: String {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
        let argv0 = CommandLine.arguments.first ?? "warren"
        return argv0.hasPrefix("/") ? argv0 : FileManager.default.currentDirectoryPath + "/" + argv0
    }

    /// The directory of the gateway `name`.
    public func directory(of name: String) -> String { configuration.directory + "/" + name }

    public func create(_ spec: GatewaySpec, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws -> ProvisionedGateway {
        try GatewayName.validate(spec.name)
        let dir = directory(of: spec.name)
        guard !FileManager.default.fileExists(atPath: dir) else {
            throw ProvisioningError.invalidConfiguration("a local gateway named \(spec.name) exists already (\(dir)); delete it with `warren gateway delete \(spec.name)` or choose another --name")
        }
        let address = try pickAddress(port: spec.meshPort)
        do {
            try PrivateFiles.ensureDirectory(configuration.directory)
            try PrivateFiles.ensureDirectory(dir)
            // Made now so the caller knows which member to wait for.
            let identity = try NodeIdentity.loadOrCreate(directory: dir)
            progress(.created(kind: "state directory", id: dir))

            let listen = HostPort.format(address, spec.meshPort)
            var gateway = ProvisionedGateway(
                name: spec.name, backend: kind, region: "local", address: address, status: "starting",
                resources: ["stateDirectory": dir, "listen": listen, "node": identity.id.description, "domains": spec.domains.joined(separator: ",")])
            // Recorded before the start, so a crash in between still leaves a gateway `delete` knows.
            try write(gateway)
            let pid = try start(gateway, join: spec.joinToken)
            gateway.resources["pid"] = String(pid)
            gateway.status = "running"
            try write(gateway)
            progress(.booting(instance: "warren node \(identity.id.short) (pid \(pid), log \(dir)/gateway.log)"))
            progress(.addressAssigned(address))
            return gateway
        } catch {
            await remove(name: spec.name)
            if let error = error as? ProvisioningError { throw error }
            throw ProvisioningError.invalidConfiguration("could not prepare the local gateway in \(dir): \(error)")
        }
    }

    public func delete(_ gateway: ProvisionedGateway, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws {
        let dir = directory(of: gateway.name)
        guard FileManager.default.fileExists(atPath: dir) else { throw ProvisioningError.notFound(gateway.name) }
        #if canImport(Glibc)
        if let pid = runningPID(gateway.name) {
            let killed = await DetachedProcess.stop(pid: pid, grace: configuration.stopGrace)
            progress(.deleted(kind: killed ? "process (killed after \(configuration.stopGrace))" : "process", id: "pid \(pid)"))
        }
        #endif
        do {
            try FileManager.default.removeItem(atPath: dir)
        } catch {
            throw ProvisioningError.invalidConfiguration("the gateway stopped, but its directory \(dir) could not be removed: \(error.localizedDescription)")
        }
        progress(.deleted(kind: "state directory", id: dir))
    }

    public func list() async throws -> [ProvisionedGateway] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: configuration.directory)) ?? []
        return names.sorted().compactMap { name -> ProvisionedGateway? in
            guard var gateway = read(name) else { return nil }
            gateway.status = isRunning(name) ? "running" : "stopped"
            return gateway
        }
    }

    /// Starts the gateway `name` again if its process is gone (the machine rebooted, or it was
    /// killed): the node it was keeps its identity and membership, so it needs no invite. Returns
    /// the new process's pid, or nil when it runs already.
    public func restart(_ name: String) throws -> Int32? {
        guard var gateway = read(name) else { throw ProvisioningError.notFound(name) }
        guard !isRunning(name) else { return nil }
        let pid = try start(gateway, join: nil)
        gateway.resources["pid"] = String(pid)
        gateway.status = "running"
        try write(gateway)
        return pid
    }

    /// Starts the gateway's node, detached, from what `gateway` records; `join` on its first start.
    private func start(_ gateway: ProvisionedGateway, join: String?) throws -> Int32 {
        let dir = directory(of: gateway.name)
        guard let listen = gateway.resources["listen"], let address = gateway.address else {
            throw ProvisioningError.invalidConfiguration("the record of local gateway \(gateway.name) in \(dir) lacks its address")
        }
        var arguments = [
            configuration.binary, "node", "start", "--state-dir", dir, "--listen", listen,
            "--gateway", "--public-address", address, "--name", gateway.name,
        ]
        for domain in (gateway.resources["domains"] ?? "").split(separator: ",") { arguments += ["--domain", String(domain)] }
        var environment = configuration.environment
        environment["WARREN_HOME"] = nil
        // An invite token is a secret for as long as it lives: it goes in the environment, which
        // only the process's user reads, never in its arguments, which `ps` shows to everyone on
        // the machine. A seed address (a mesh without admission) is no secret. A restart joins
        // with no token, whatever the creating node's own environment held.
        environment["WARREN_JOIN_TOKEN"] = nil
        if let join {
            if join.hasPrefix(InviteToken.prefix) {
                environment["WARREN_JOIN_TOKEN"] = join
            } else {
                arguments += ["--join", join]
            }
        }
        environment[Self.markerVariable] = gateway.name
        #if canImport(Glibc)
        let pid: pid_t
        do {
            pid = try DetachedProcess.spawn(arguments, environment: environment, logPath: dir + "/gateway.log")
        } catch {
            throw ProvisioningError.invalidConfiguration("could not start the gateway node: \(error.description)")
        }
        try Data("\(pid)\n".utf8).write(to: URL(fileURLWithPath: dir + "/gateway.pid"))
        return pid
        #else
        throw ProvisioningError.invalidConfiguration("the local backend needs Linux")
        #endif
    }

    /// Whether the gateway's process runs.
    public func isRunning(_ name: String) -> Bool {
        #if canImport(Glibc)
        return runningPID(name) != nil
        #else
        return false
        #endif
    }

    /// The last lines of the gateway's log, for an error that says why it stopped.
    public func logTail(_ name: String, lines: Int = 5) -> String {
        guard let text = try? String(contentsOfFile: directory(of: name) + "/gateway.log", encoding: .utf8) else { return "" }
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    // MARK: - Records and processes

    private func write(_ gateway: ProvisionedGateway) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(gateway).write(to: URL(fileURLWithPath: directory(of: gateway.name) + "/local.json"), options: .atomic)
    }

    private func read(_ name: String) -> ProvisionedGateway? {
        guard let data = FileManager.default.contents(atPath: directory(of: name) + "/local.json") else { return nil }
        return try? JSONDecoder().decode(ProvisionedGateway.self, from: data)
    }

    #if canImport(Glibc)
    /// The pid of the gateway's process if it runs and is still that gateway.
    private func runningPID(_ name: String) -> pid_t? {
        guard let text = try? String(contentsOfFile: directory(of: name) + "/gateway.pid", encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0
        else { return nil }
        DetachedProcess.reap(pid)
        guard ProcessGroup.isAlive(pid: pid) else { return nil }
        // Unreadable (another user's process): not ours to signal.
        guard ProcessGroup.environment(of: pid, contains: "\(Self.markerVariable)=\(name)") == true else { return nil }
        return pid
    }
    #endif

    /// Stops and removes whatever exists of the gateway `name`; for cleaning up a failed create.
    private func remove(name: String) async {
        #if canImport(Glibc)
        if let pid = runningPID(name) { await DetachedProcess.stop(pid: pid, grace: configuration.stopGrace) }
        #endif
        try? FileManager.default.removeItem(atPath: directory(of: name))
    }

    // MARK: - Addresses

    /// The configured address, checked, or the first candidate that no local gateway has and that
    /// nothing listens on at `port`.
    func pickAddress(port: Int) throws -> String {
        let taken = Set(((try? FileManager.default.contentsOfDirectory(atPath: configuration.directory)) ?? []).compactMap { read($0)?.address })
        if let address = configuration.address {
            guard Self.isLoopbackIPv4(address) else {
                throw ProvisioningError.invalidConfiguration("--address \(address) is not a loopback IPv4 address: a local gateway needs one of 127.0.0.2 … 127.255.255.254")
            }
            guard !taken.contains(address) else {
                throw ProvisioningError.invalidConfiguration("another local gateway uses \(address) already: choose another --address, or leave it out to pick a free one")
            }
            guard Self.isFree(address, port: port) else {
                throw ProvisioningError.invalidConfiguration("\(address):\(port) is in use on this machine: choose another --address")
            }
            return address
        }
        for candidate in configuration.candidates where !taken.contains(candidate) && Self.isFree(candidate, port: port) {
            return candidate
        }
        throw ProvisioningError.invalidConfiguration("no free loopback address for a local gateway (tried \(configuration.candidates.count)): delete one with `warren gateway delete`, or name one with --address")
    }

    static func isLoopbackIPv4(_ address: String) -> Bool {
        let parts = address.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        let numbers = parts.compactMap { UInt8($0) }
        return numbers.count == 4 && numbers[3] != 0 && numbers[3] != 255
    }

    /// Whether TCP and UDP `address:port` can both be bound now (what the gateway node will do).
    static func isFree(_ address: String, port: Int) -> Bool {
        #if canImport(Glibc)
        for type in [Int32(SOCK_STREAM.rawValue), Int32(SOCK_DGRAM.rawValue)] {
            let fd = socket(AF_INET, type | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            var on: Int32 = 1
            // As the node binds: SO_REUSEADDR, so a TIME_WAIT from an earlier gateway is no obstacle.
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
            guard let socketAddress = try? SocketAddress(ipAddress: address, port: port), case .v4 = socketAddress else { return false }
            let bound = socketAddress.withSockAddr { pointer, size in bind(fd, pointer, socklen_t(size)) }
            guard bound == 0 else { return false }
        }
        return true
        #else
        return true
        #endif
    }
}
