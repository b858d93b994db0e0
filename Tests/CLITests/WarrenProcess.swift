import Foundation

/// Runs the built `warren` binary as a user would, and captures what it prints.
struct WarrenProcess {
    struct Result: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The `warren` beside this test bundle (SwiftPM builds it because the tests depend on CLI).
    static let binary: URL = {
        let here = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
        var dir = here.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("warren")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: ".build/debug/warren")
    }()

    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Runs `warren` to completion on a thread of its own: waiting for a process must not occupy one
    /// of the concurrency pool's threads (two on a 2-core machine), which every other test needs.
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Swift.Result { try runBlocking(arguments, environment: environment, timeout: timeout) })
            }
        }
    }

    /// Runs `warren` to completion, blocking the calling thread.
    static func runBlocking(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) throws -> Result {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = packageRoot
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Drain both pipes while the process runs, so a chatty process never blocks on a full pipe.
        let stdout = Drain(out.fileHandleForReading), stderr = Drain(err.fileHandleForReading)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: stdout.text(), stderr: stderr.text())
    }
}

/// Reads a pipe to its end on a thread of its own.
final class Drain: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = (try? handle.readToEnd()) ?? Data()
            // Closed here, not left to deallocation: the read ends of finished programs' pipes
            // piled up in the test process (hundreds over a run), and Foundation's `Process.run()`
            // overflowed a buffer listing them (SIGSEGV in a memmove) once there were ~1,300.
            try? handle.close()
            done.signal()
        }
    }

    func text() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}
