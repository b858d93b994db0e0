/// An error a handler of the local API returns to its client: an HTTP status and a message a
/// person can act on. The client receives `{"error": message}`.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    /// For a refused configuration: each problem as `file:line:column: message`.
    public var issues: [String]?

    public init(status: Int, _ message: String, issues: [String]? = nil) {
        self.status = status
        self.message = message
        self.issues = issues
    }

    public var description: String { "\(status): \(message)" }

    /// 400: the request is malformed.
    public static func badRequest(_ message: String) -> APIError { APIError(status: 400, message) }
    /// 404: the thing named does not exist.
    public static func notFound(_ message: String) -> APIError { APIError(status: 404, message) }
    /// 409: the request conflicts with the current state (a port already leased, a name taken).
    public static func conflict(_ message: String) -> APIError { APIError(status: 409, message) }
    /// 500: the node failed; the message says what it was doing.
    public static func internalError(_ message: String) -> APIError { APIError(status: 500, message) }
    /// 503: the node cannot do it now (e.g. no gateway reachable); trying later may work.
    public static func unavailable(_ message: String) -> APIError { APIError(status: 503, message) }
}

