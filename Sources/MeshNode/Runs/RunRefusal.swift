/// Why the run manager refuses a request about a run: each case says what is wrong and what to do
/// next. The local API gives each its status (`APIErrorTable`); nothing here knows of HTTP.
public enum RunRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The project's secrets could not be opened for the configuration (not a member, most often).
    case secretsUnavailable(reason: String)
    /// The configuration does not parse; `issues` are its problems, one per line.
    case invalidConfiguration(path: String, issues: [String])
    /// The gateway or domain the configuration names gives no binding.
    case noBinding(reason: String)
    case invalidName(String)
    /// Another active run of this node listens on the same app port.
    case appPortInUse(port: Int, run: String, configurationPath: String, external: Int)
    case nameInUse(String)
    /// A gateway's lease of the binding, or the mesh-wide claim of its domain, is another run's.
    case bindingHeld(String)
    case unknownRun(String)
    /// Only an ended run can be removed.
    case stillActive(name: String, state: String)
    case startFailed(name: String, reason: String)
    /// The node's store refused a write: `what` failed for `reason`.
    case storeFailed(what: String, reason: String)

    public var description: String {
        switch self {
        case .secretsUnavailable(let reason):
            return reason
        case .invalidConfiguration(let path, _):
            return "\(path) is not a valid service configuration"
        case .noBinding(let reason):
            return reason
        case .invalidName(let name):
            return "run name \(PlainName.describe(name)) is not a plain name: \(PlainName.rule)"
        case .appPortInUse(let port, let run, let path, let external):
            return "app port \(port) is used by run \"\(run)\" on this node; change the app port in \(path) "
                + "(`port: \"\(external):OTHER\"` and the port the app listens on) or stop \(run) first"
        case .nameInUse(let name):
            return "a run named \"\(name)\" is already active on this node; stop it (`warren stop \(name)`) or change `name:`"
        case .bindingHeld(let text):
            return text
        case .unknownRun(let reference):
            return "no run \"\(reference)\" on this node (see `warren ps -a`)"
        case .stillActive(let name, let state):
            return "run \(name) is \(state); stop it first with `warren stop \(name)`"
        case .startFailed(let name, let reason):
            return "the commands of \(name) could not be started: \(reason)"
        case .storeFailed(let what, let reason):
            return "\(what): \(reason)"
        }
    }
}
