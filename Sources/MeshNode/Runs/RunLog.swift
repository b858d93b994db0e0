public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A run's output: `<stateDir>/runs/<id>.log`, written by the run's processes directly (so output
/// survives a node restart), and kept under `capBytes` by copy-and-truncate into `<id>.log.1`.
public struct RunLog: Sendable, Hashable {
    public let path: String
    /// Above this size the log is moved to `rotatedPath` and started afresh.
    public let capBytes: Int

    public init(path: String, capBytes: Int = 10 << 20) {
        self.path = path
        self.capBytes = capBytes
    }

    /// The previous part of the log, kept after a rotation.
    public var rotatedPath: String { path + ".1" }

    /// Where `follow` starts.
    public enum Start: Sendable {
        case beginning
        case end
    }

    /// The last `count` lines (without line ends), across a rotation.
    public func tail(lines count: Int) -> [String] {
        guard count > 0 else { return [] }
        // Enough for `count` ordinary lines; very long lines are shown in part.
        let window = min(max(count * 512, 64 << 10), 4 << 20)
        var lines = Self.lines(ofLast: window, in: path)
        if lines.count < count {
            lines = Self.lines(ofLast: window, in: rotatedPath) + lines
        }
        return Array(lines.suffix(count))
    }

    /// The log's new output as it is written, until the task is cancelled, the consumer stops, or
    /// `isFinished` answers true once everything written so far was read.
    public func follow(
        from start: Start = .end,
        pollInterval: Duration = .milliseconds(200),
        isFinished: (@Sendable () async -> Bool)? = nil
    ) -> AsyncThrowingStream<Data, any Error> {
        let log = self
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await log.followLoop(from: start, pollInterval: pollInterval, isFinished: isFinished) { chunk in
                        continuation.yield(chunk)
                    }
                    continuation.finish()
                } catch is CancellationError {
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func followLoop(
        from start: Start, pollInterval: Duration, isFinished: (@Sendable () async -> Bool)?,
        yield: (Data) -> Void
    ) async throws {
        var fd: Int32 = -1
        defer { if fd >= 0 { close(fd) } }
        var offset: Int64 = 0
        var positioned = false
        while true {
            try Task.checkCancellation()
            if fd < 0 {
                fd = open(path, O_RDONLY | O_CLOEXEC)
            }
            if fd >= 0 {
                let size = Self.size(of: fd)
                if !positioned {
                    offset = start == .end ? size : 0
                    positioned = true
                }
                if size < offset {
                    // Rotated: what was written since the last read sits in the rotated copy at
                    // the same offsets.
                    if let rest = Self.read(path: rotatedPath, from: offset), !rest.isEmpty {
                        yield(rest)
                    }
                    offset = 0
                }
                var readAny = false
                while let chunk = Self.read(fd: fd, from: offset, max: 64 << 10), !chunk.isEmpty {
                    offset += Int64(chunk.count)
                    readAny = true
                    yield(chunk)
                }
                if readAny { continue }
            } else {
                positioned = true
            }
            if let isFinished, await isFinished() {
                // One last read: output written just before the end.
                if fd >= 0, let chunk = Self.read(fd: fd, from: offset, max: Int.max), !chunk.isEmpty {
                    yield(chunk)
                }
                return
            }
            try await Task.sleep(for: pollInterval)
        }
    }

    /// Moves the log to `rotatedPath` and empties it if it is larger than `capBytes`. The run's
    /// processes append (O_APPEND), so they carry on at the start of the emptied file.
    @discardableResult
    public func rotateIfNeeded() -> Bool {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard Self.size(of: fd) > Int64(capBytes) else { return false }
        let temporary = rotatedPath + ".tmp"
        let out = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard out >= 0 else { return false }
        var offset: Int64 = 0
        var copied = true
        while let chunk = Self.read(fd: fd, from: offset, max: 1 << 20), !chunk.isEmpty {
            let written = chunk.withUnsafeBytes { write(out, $0.baseAddress, $0.count) }
            if written != chunk.count {
                copied = false
                break
            }
            offset += Int64(chunk.count)
        }
        close(out)
        guard copied, rename(temporary, rotatedPath) == 0 else {
            unlink(temporary)
            return false
        }
        return ftruncate(fd, 0) == 0
    }

    // MARK: File helpers

    private static func size(of fd: Int32) -> Int64 {
        var info = stat()
        return fstat(fd, &info) == 0 ? Int64(info.st_size) : 0
    }

    private static func read(fd: Int32, from offset: Int64, max: Int) -> Data? {
        let available = size(of: fd) - offset
        guard available > 0 else { return Data() }
        let count = Int(Swift.min(available, Int64(Swift.min(max, 4 << 20))))
        var data = Data(count: count)
        let got = data.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        guard got >= 0 else { return nil }
        return data.prefix(got)
    }

    private static func read(path: String, from offset: Int64) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return read(fd: fd, from: offset, max: Int.max)
    }

    /// The complete lines among the last `window` bytes of a file (a partial first line is dropped).
    private static func lines(ofLast window: Int, in path: String) -> [String] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        let size = size(of: fd)
        let start = Swift.max(0, size - Int64(window))
        guard let data = read(fd: fd, from: start, max: window) else { return [] }
        var pieces = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if pieces.last?.isEmpty == true { pieces.removeLast() }
        if start > 0, !pieces.isEmpty { pieces.removeFirst() }
        return pieces.map { String(decoding: $0, as: UTF8.self) }
    }
}
