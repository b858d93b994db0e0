/// What the supervisor needs to start a run: its commands, where, and with what environment.
public struct RunSpec: Sendable, Equatable {
    /// The run's ID; also its log file's name, so letters, digits, `-`, `_` and `.` only.
    public var id: String
    /// Commands run first, in order (dependencies, builds).
    public var setup: [String]
    /// The service's commands, run after `setup`; the last one usually serves.
    public var commands: [String]
    /// The working directory (the run's DIR).
    public var directory: String
    /// Variables set on top of the base environment (PATH, HOME, …): the configuration's `env`
    /// with secrets interpolated.
    public var environment: [String: String]

    public init(id: String, setup: [String] = [], commands: [String], directory: String, environment: [String: String] = [:]) {
        self.id = id
        self.setup = setup
        self.commands = commands
        self.directory = directory
        self.environment = environment
    }

    /// The script given to `/bin/sh -c`: setup, then commands, stopping at the first that fails.
    var script: String {
        (["set -e"] + setup + commands).joined(separator: "\n")
    }
}
