/// Errors of the libcurl wrapper. Each carries the URL it concerns and curl's own explanation,
/// never a raw code.
public enum CurlError: Error, Equatable, CustomStringConvertible {
    /// libcurl could not be initialised on this machine.
    case initializationFailed
    /// The URL is malformed or uses a scheme this libcurl does not support.
    case invalidURL(String, message: String)
    /// A header name or value holds a character that would split the header (CR, LF, or ':' in a name).
    case invalidHeader(String)
    /// The host name did not resolve.
    case couldNotResolve(String, message: String)
    /// Nothing accepted the connection (refused, unreachable, or no socket at the Unix path).
    case couldNotConnect(String, message: String)
    /// The exchange took longer than its timeout.
    case timedOut(String, message: String)
    /// TLS failed: handshake, certificate or peer verification.
    case tls(String, message: String)
    /// The connection broke while sending or receiving, or the peer answered something that is not HTTP.
    case transfer(String, message: String)
    /// The response body went over the client's size limit.
    case responseTooLarge(String, limit: Int)
    /// The caller stopped the transfer (a streaming callback returned false, or the task was cancelled).
    case cancelled(String)
    /// Anything else libcurl reported.
    case other(String, message: String)

    public var description: String {
        switch self {
        case .initializationFailed: return "libcurl could not be initialised"
        case .invalidURL(let url, let message): return "invalid URL \(url): \(message)"
        case .invalidHeader(let header): return "invalid HTTP header \(header.debugDescription): names and values cannot contain line breaks"
        case .couldNotResolve(let url, let message): return "could not resolve the host of \(url): \(message)"
        case .couldNotConnect(let url, let message): return "could not connect to \(url): \(message); is the server running?"
        case .timedOut(let url, let message): return "request to \(url) timed out: \(message)"
        case .tls(let url, let message): return "TLS failed with \(url): \(message)"
        case .transfer(let url, let message): return "transfer with \(url) failed: \(message)"
        case .responseTooLarge(let url, let limit): return "the response from \(url) is larger than the limit of \(limit) bytes"
        case .cancelled(let url): return "request to \(url) was cancelled"
        case .other(let url, let message): return "request to \(url) failed: \(message)"
        }
    }
}
