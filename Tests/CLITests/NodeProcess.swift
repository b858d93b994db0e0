import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A `warren node start` running in the background for an end-to-end test, its output in a log
/// file (a pipe nobody reads would fill up and stall the node).
final class NodeProcess: @unchecked Sendable {
    let name: String
    let logPath: String
    private let process = Process()

    init(name: String, arguments: [String], environment: [String: String], logPath: String) throws {
        self.name = name
        self.logPath = logPath
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = WarrenProcess.binary
        process.arguments = ["node", "start"] + arguments
        process.currentDirectoryURL = WarrenProcess.packageRoot
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
    }

    var isRunning: Bool { process.isRunning }

    var pid: Int32 { process.processIdentifier }

    /// How it ended, once it has: an exit status, or the signal that ended it (a trap is a crash).
    var termination: (reason: Process.TerminationReason, status: Int32)? {
        process.isRunning ? nil : (process.terminationReason, process.terminationStatus)
    }

    /// What the node has logged so far, for failure messages.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGKILL, as a crash or a power cut would; waits (bounded) for it to be gone.
    func kill() async {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        _ = await waitForExit(seconds: 5)
    }

    /// SIGTERM (graceful shutdown), then SIGKILL if it hasn't exited within `seconds`.
    func stop(seconds: TimeInterval = 5) async {
        guard process.isRunning else { return }
        process.terminate()
        if await !waitForExit(seconds: seconds) { await kill() }
    }

    private func waitForExit(seconds: TimeInterval) async -> Bool {
        await eventually(within: seconds) { !process.isRunning }
    }
}

/// Runs a program to its end without blocking a thread of the concurrency pool (which has as
/// many threads as cores: a test that blocks them starves every other test of the run).
func launch(_ executable: URL, _ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(30)) async throws -> WarrenProcess.Result {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.currentDirectoryURL = WarrenProcess.packageRoot
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    let (exits, exited) = AsyncStream<Void>.makeStream()
    process.terminationHandler = { _ in exited.finish() }
    try process.run()
    let stdout = Drain(out.fileHandleForReading), stderr = Drain(err.fileHandleForReading)
    let pid = process.processIdentifier
    let watchdog = Task {
        try await Task.sleep(for: timeout)
        Glibc.kill(pid, SIGKILL)
    }
    for await _ in exits {}
    watchdog.cancel()
    // Foundation may call the termination handler before `isRunning` turns false, and reading
    // `terminationStatus` before then traps (seen in the two-site lab's client loop).
    while process.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
    // The pipes reach their end as the program exits (nothing it starts keeps them).
    return WarrenProcess.Result(status: process.terminationStatus, stdout: stdout.text(), stderr: stderr.text())
}

/// Polls `condition` every 200 ms until it holds or `seconds` have passed; returns whether it held.
func eventually(within seconds: TimeInterval, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(200))
    } while Date() < deadline
    return try await condition()
}

/// A TCP port nobody listens on right now at `host` (the kernel's pick). Another process could
/// take it before the test does; the test's ports are on addresses of its own, so that is unlikely.
func freePort(on host: String) throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    inet_pton(AF_INET, host, &address.sin_addr)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EADDRINUSE) }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Kills (SIGKILL) every process whose working directory is under `directory`: the apps of a
/// node that was itself killed, which nobody is left to stop. Only processes this test started
/// work there.
func killProcesses(workingUnder directory: String) {
    let root = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return }
    for entry in entries {
        guard let pid = Int32(entry), pid != getpid(),
              let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/cwd"),
              cwd == root || cwd.hasPrefix(root + "/")
        else { continue }
        Glibc.kill(pid, SIGKILL)
    }
}

/// Fetches `url` with curl (bounded), optionally with another Host header; nil when it fails.
func fetch(_ url: String, host: String? = nil) async -> String? {
    let arguments = ["curl", "-sS", "--fail", "--max-time", "5"] + (host.map { ["-H", "Host: \($0)"] } ?? []) + [url]
    guard let result = try? await launch(URL(fileURLWithPath: "/usr/bin/env"), arguments, timeout: .seconds(10)),
          result.status == 0 else { return nil }
    return result.stdout
}
