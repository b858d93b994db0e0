import Foundation

/// A `warren node start` running in the background, as a user would start it, with its output
/// captured; `stop()` sends SIGTERM and waits.
final class WarrenNodeProcess: @unchecked Sendable {
    let stateDirectory: String
    let listen: String
    private let process = Process()
    private let stdout: Drain
    private let stderr: Drain

    init(stateDirectory: String, listen: String, join: [String] = [], logLevel: String = "trace") throws {
        self.stateDirectory = stateDirectory
        self.listen = listen
        process.executableURL = WarrenProcess.binary
        process.arguments = ["node", "start", "--state-dir", stateDirectory, "--listen", listen, "--log-level", logLevel]
            + join.flatMap { ["--join", $0] }
        process.currentDirectoryURL = WarrenProcess.packageRoot
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        stdout = Drain(out.fileHandleForReading)
        stderr = Drain(err.fileHandleForReading)
    }

    var isRunning: Bool { process.isRunning }

    /// Waits until the node answers on its local API (its socket exists), or it exits; bounded.
    @discardableResult
    func waitUntilServing(timeout: TimeInterval = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline && process.isRunning {
            if (try? WarrenProcess.runBlocking(["peers", "--state-dir", stateDirectory], timeout: 10))?.status == 0 { return true }
            usleep(200_000)
        }
        return false
    }

    /// Waits for the process to exit by itself (bounded); its status, or nil if it still runs.
    func waitForExit(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Stops the node (SIGTERM, then SIGKILL after 10 s) and returns what it wrote to stderr.
    /// Idempotent: a second call returns the same text.
    @discardableResult
    func stop() -> String {
        if let stopped { return stopped }
        if process.isRunning {
            process.terminate()
            if waitForExit(timeout: 10) == nil { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        _ = stdout.text()
        let text = stderr.text()
        stopped = text
        return text
    }

    private var stopped: String?

    /// stderr so far is only readable once the process has exited.
    var log: String { stop() }
}
