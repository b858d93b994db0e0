/// Errors of the run supervisor, in words a person can act on.
public enum RunError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidID(String)
    case directoryNotFound(id: String, directory: String)
    case invalidEnvironment(id: String, name: String)
    case alreadyRunning(id: String)
    case unknownRun(id: String)
    case spawnFailed(id: String, reason: String)
    case logUnavailable(path: String, reason: String)
    /// The process ended before its port accepted connections.
    case exitedBeforeReady(id: String, host: String, port: Int, status: RunExitStatus, logTail: [String])
    /// The port did not accept within the timeout; the process still runs.
    case portTimeout(id: String, host: String, port: Int, timeoutSeconds: Double, logTail: [String])
    /// The port accepts, but another program's listener answers, not the run's; `status` is the
    /// run's exit if it ended (an app that could not bind the port usually does).
    case portTaken(id: String, port: Int, holder: String, status: RunExitStatus?, logTail: [String])

    public var description: String {
        switch self {
        case .invalidID(let id):
            return "invalid run ID \"\(id)\": use letters, digits, '-', '_' and '.' only"
        case .directoryNotFound(let id, let directory):
            return "run \(id): directory \(directory) does not exist or is not a directory"
        case .invalidEnvironment(let id, let name):
            return "run \(id): invalid environment variable name \"\(name)\" (no '=' or NUL, not empty)"
        case .alreadyRunning(let id):
            return "run \(id) is already running; stop it first"
        case .unknownRun(let id):
            return "no run \(id) on this node"
        case .spawnFailed(let id, let reason):
            return "run \(id): cannot start /bin/sh: \(reason)"
        case .logUnavailable(let path, let reason):
            return "cannot read the log \(path): \(reason)"
        case .exitedBeforeReady(let id, let host, let port, let status, let tail):
            return "run \(id) \(status) before its port \(host):\(port) accepted connections"
                + Self.tailText(tail)
        case .portTimeout(let id, let host, let port, let timeout, let tail):
            return "run \(id) is still running but its port \(host):\(port) did not accept connections within \(Self.seconds(timeout)); check that the app listens on that port"
                + Self.tailText(tail)
        case .portTaken(let id, let port, let holder, let status, let tail):
            return "run \(id) \(status.map { "\($0)" } ?? "is still running") and its app port \(port) is held by another program, "
                + "\(holder), not by the run's processes; change the app port (`port: \"EXT:APP\"` and the port the app listens on) or stop that program"
                + Self.tailText(tail)
        }
    }

    private static func tailText(_ tail: [String]) -> String {
        tail.isEmpty ? "; its log is empty" : "; last log lines:\n" + tail.map { "  " + $0 }.joined(separator: "\n")
    }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }
}
