/// How a run's process ended.
public enum RunExitStatus: Sendable, Hashable, CustomStringConvertible {
    /// It exited with this code.
    case exited(Int32)
    /// A signal ended it.
    case signaled(Int32)
    /// It ended while the node was not its parent (adopted after a restart): the code is lost.
    case unknown

    /// The exit code, if it exited normally and the node saw it.
    public var exitCode: Int32? {
        if case .exited(let code) = self { return code }
        return nil
    }

    public var description: String {
        switch self {
        case .exited(let code): "exited with code \(code)"
        case .signaled(let signal): "was ended by signal \(signal)\(signalName(signal).map { " (\($0))" } ?? "")"
        case .unknown: "ended (exit code unknown: it ended while the node was down or not its parent)"
        }
    }

    /// Decodes a `waitpid` status word (the W* macros are not imported into Swift).
    init(waitStatus status: Int32) {
        let low = status & 0x7f
        if low == 0 {
            self = .exited((status >> 8) & 0xff)
        } else if low != 0x7f {
            self = .signaled(low)
        } else {
            self = .unknown
        }
    }
}

private func signalName(_ signal: Int32) -> String? {
    switch signal {
    case 1: "SIGHUP"
    case 2: "SIGINT"
    case 6: "SIGABRT"
    case 9: "SIGKILL"
    case 11: "SIGSEGV"
    case 13: "SIGPIPE"
    case 15: "SIGTERM"
    default: nil
    }
}

/// A run's process ended.
public struct RunExit: Sendable, Hashable {
    public var id: String
    public var status: RunExitStatus

    public init(id: String, status: RunExitStatus) {
        self.id = id
        self.status = status
    }
}

/// A run the supervisor started.
public struct StartedRun: Sendable, Hashable {
    public var id: String
    /// The shell's pid, which is also the process group's ID.
    public var pid: Int32
    public var pgid: Int32
    public var logPath: String
}
