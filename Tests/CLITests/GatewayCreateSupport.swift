import Foundation
import Testing

/// A `warren node start` in the background on a loopback address, with a state directory of its
/// own, for the gateway tests; stopped (and its gateways with it) when the test ends.
final class BackgroundNode {
    let directory: String
    let address: String
    let port: Int
    private let process = Process()
    private let log: Drain

    /// Backend settings are removed from the node's environment, so a test decides them.
    static let cleanEnvironment: [String: String] = ProcessInfo.processInfo.environment.filter { key, _ in
        !(["AWS_", "AZURE_", "GOOGLE_", "GCP_"].contains { key.hasPrefix($0) } || key.hasPrefix("WARREN_RELEASE_") || key == "WARREN_HOME")
    }

    /// `gatewayBinary`: what the node starts as a local gateway instead of `warren` (a stand-in
    /// that never joins, for the failure paths). `foundsMesh`: `warren mesh init` first, so the
    /// node is the admin of a mesh with admission (else it stays in the default mesh).
    /// `reusing`: the state directory of an earlier node to start again (kept by `stop(keepingState:)`).
    init(address: String, port: Int = 7420, gatewayBinary: String? = nil, foundsMesh: Bool = false, reusing: String? = nil) throws {
        self.address = address
        self.port = port
        directory = reusing ?? FileManager.default.temporaryDirectory.appendingPathComponent("wgc-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if foundsMesh {
            let founded = try WarrenProcess.runBlocking(["mesh", "init", "--state-dir", directory, "--advertise", "\(address):\(port)"], timeout: 30)
            guard founded.status == 0 else { throw NodeDidNotStart(log: "mesh init: \(founded.stderr)") }
        }
        process.executableURL = WarrenProcess.binary
        process.arguments = ["node", "start", "--state-dir", directory, "--listen", "\(address):\(port)", "--log-level", "debug"]
        var environment = Self.cleanEnvironment
        if let gatewayBinary { environment["WARREN_GATEWAY_BINARY"] = gatewayBinary }
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        log = Drain(out.fileHandleForReading)
        // Ready once its API answers.
        for _ in 0..<200 {
            if let r = try? WarrenProcess.runBlocking(["peers", "--json", "--state-dir", directory], timeout: 10), r.status == 0 { return }
            guard process.isRunning else { break }
            usleep(100_000)
        }
        throw NodeDidNotStart(log: stop())
    }

    struct NodeDidNotStart: Error, CustomStringConvertible {
        var log: String
        var description: String { "the node did not start:\n\(log)" }
    }

    /// A stand-in for `warren` that runs `body` (a shell script), in a temporary file.
    static func fakeWarren(_ body: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wgc-fake-\(UUID().uuidString.prefix(8))").path
        try "#!/bin/sh\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }

    /// `warren ARGS --state-dir <this node>` with a clean environment plus `environment`.
    func warren(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 120) throws -> WarrenProcess.Result {
        var env = environment
        for key in ProcessInfo.processInfo.environment.keys where BackgroundNode.cleanEnvironment[key] == nil && env[key] == nil {
            env[key] = ""  // WarrenProcess merges over its own environment: blank out what the node lacks too
        }
        return try WarrenProcess.runBlocking(arguments + ["--state-dir", directory], environment: env, timeout: timeout)
    }

    /// Stops the node and every local gateway it made (their processes outlive it by design), as
    /// a reboot would; removes the state directory unless `keepingState`.
    @discardableResult
    func stop(keepingState: Bool = false) -> String {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory + "/gateways")) ?? [] {
            if let text = try? String(contentsOfFile: directory + "/gateways/" + name + "/gateway.pid", encoding: .utf8),
               let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 {
                kill(-pid, SIGKILL)
            }
        }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        let text = log.text()
        if !keepingState { try? FileManager.default.removeItem(atPath: directory) }
        return text
    }

    /// `gateway list --json` as dictionaries.
    func gateways() throws -> [[String: Any]] {
        let r = try warren(["gateway", "list", "--json"])
        guard r.status == 0 else { return [] }
        return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]) ?? []
    }

    /// `mesh members --json` of this node: the roster's members and removed node IDs.
    func roster() throws -> (members: [(id: String, role: String)], removed: [String]) {
        let r = try warren(["mesh", "members", "--json"])
        let info = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
        let members = (info["members"] as? [[String: Any]] ?? []).compactMap { m in
            (m["id"] as? String).map { (id: $0, role: m["role"] as? String ?? "") }
        }
        return (members, info["removed"] as? [String] ?? [])
    }

    /// The command line of process `pid`.
    static func commandLine(of pid: pid_t) -> [String] {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Polls `condition` every 200 ms for at most `seconds`.
    static func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(200_000)
        }
        return try condition()
    }

    /// Processes that carry the local-gateway marker for `name` in their environment.
    static func gatewayProcesses(named name: String) -> [pid_t] {
        let marker = Array("WARREN_LOCAL_GATEWAY=\(name)".utf8)
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = pid_t(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/environ") else { return nil }
            if let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8), stat.split(separator: ")").last?.dropFirst().first == "Z" { return nil }
            return data.split(separator: 0).contains { Array($0) == marker } ? pid : nil
        }
    }
}

/// A `warren` command running in the background whose stderr can be watched while it runs.
final class RunningWarren: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var errText = ""
    private let out: Drain

    init(_ arguments: [String], environment: [String: String]) throws {
        process.executableURL = WarrenProcess.binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        out = Drain(outPipe.fileHandleForReading)
        let handle = errPipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            while case let data = handle.availableData, !data.isEmpty {
                lock.withLock { errText += String(decoding: data, as: UTF8.self) }
            }
        }
    }

    var stderr: String { lock.withLock { errText } }

    func waitForStderr(containing text: String, seconds: Double) -> Bool {
        BackgroundNode.eventually(seconds) { stderr.contains(text) }
    }

    /// Waits for the exit (killing it after `seconds`); its status and stdout.
    func finish(seconds: Double) -> (status: Int32, stdout: String) {
        _ = BackgroundNode.eventually(seconds) { !process.isRunning }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return (process.terminationStatus, out.text())
    }
}

/// The first three octets of the loopback addresses the gateway-create tests bind (fixed ports on
/// them): a /24 of 127.0.0.0/8 picked at random once per test process.
let gatewayTestNet = "127.\(Int.random(in: 1...254)).\(Int.random(in: 0...255))"

