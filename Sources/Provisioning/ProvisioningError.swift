/// Errors of gateway provisioning, worded for the person who runs `warren gateway create`.
public enum ProvisioningError: Error, Equatable, CustomStringConvertible {
    /// A required setting (credential, region, release URL) is missing or malformed.
    case invalidConfiguration(String)
    /// The cloud refused or failed a call; the message says what to do.
    case api(backend: String, code: String, message: String)
    /// A call could not be made at all (network, TLS, timeout).
    case transport(backend: String, message: String)
    /// The cloud answered something this client cannot read.
    case unexpectedResponse(backend: String, message: String)
    /// The gateway did not reach the wanted state in time.
    case timedOut(String)
    /// No gateway of that name exists in the backend.
    case notFound(String)
    /// A creation failed (`cause`), and removing what it had made failed too (`cleanUp`), so the
    /// resources listed in `left` may still exist (and cost money).
    case cleanUpFailed(cause: String, cleanUp: String, left: [String])

    public var description: String {
        switch self {
        case .invalidConfiguration(let message): return message
        case .api(_, _, let message): return message
        case .transport(let backend, let message): return "could not reach \(backend): \(message)"
        case .unexpectedResponse(let backend, let message): return "unexpected answer from \(backend): \(message)"
        case .timedOut(let message): return message
        case .notFound(let name): return "no gateway named \(name)"
        case .cleanUpFailed(let cause, let cleanUp, let left):
            return "\(cause). Removing what the creation had made failed too (\(cleanUp)), so these may be left: \(left.joined(separator: ", ")); delete them in the cloud's console"
        }
    }
}
