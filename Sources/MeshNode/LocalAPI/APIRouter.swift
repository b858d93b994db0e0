import Foundation

/// Maps (method, path pattern) to handlers. Patterns are literal segments and `:name` captures:
/// `/v1/runs/:id/logs`.
///
/// Register every route before the server starts; the router is then read-only and shared.
public struct APIRouter: Sendable {
    public typealias Handler = @Sendable (APIRequest) async throws -> APIResponse

    private struct Route: Sendable {
        var method: String
        var pattern: [Segment]
        var handler: Handler
    }

    private enum Segment: Sendable, Equatable {
        case literal(String)
        case capture(String)
    }

    private var routes: [Route] = []

    public init() {}

    /// Registers `handler` for `method` (case-insensitive) on `pattern`.
    public mutating func on(_ method: String, _ pattern: String, _ handler: @escaping Handler) {
        let segments = Self.split(pattern).map { part -> Segment in
            part.hasPrefix(":") ? .capture(String(part.dropFirst())) : .literal(part)
        }
        routes.append(Route(method: method.uppercased(), pattern: segments, handler: handler))
    }

    public mutating func get(_ pattern: String, _ handler: @escaping Handler) { on("GET", pattern, handler) }
    public mutating func post(_ pattern: String, _ handler: @escaping Handler) { on("POST", pattern, handler) }
    public mutating func put(_ pattern: String, _ handler: @escaping Handler) { on("PUT", pattern, handler) }
    public mutating func delete(_ pattern: String, _ handler: @escaping Handler) { on("DELETE", pattern, handler) }

    /// Answers a request: the handler's response, or a JSON error for an unknown route (404), a
    /// known route with another method (405) or a handler that throws (the status `APIErrorTable` gives its error, or 500).
    public func respond(to request: APIRequest) async -> APIResponse {
        let segments = Self.split(request.path).map { $0.removingPercentEncoding ?? $0 }
        var allowed: [String] = []
        for route in routes {
            guard let parameters = Self.match(route.pattern, segments) else { continue }
            guard route.method == request.method.uppercased() else {
                allowed.append(route.method)
                continue
            }
            var request = request
            request.parameters = parameters
            do {
                return try await route.handler(request)
            } catch {
                return .error(APIErrorTable.known(error) ?? .internalError("\(request.method) \(request.path) failed: \(error)"))
            }
        }
        if !allowed.isEmpty {
            var response = APIResponse.error(APIError(
                status: 405,
                "\(request.method) is not allowed on \(request.path); use \(allowed.joined(separator: " or "))"
            ))
            response.headers["allow"] = allowed.joined(separator: ", ")
            return response
        }
        return .error(.notFound("no such endpoint: \(request.method) \(request.path)"))
    }

    private static func split(_ path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    }

    private static func match(_ pattern: [Segment], _ segments: [String]) -> [String: String]? {
        guard pattern.count == segments.count else { return nil }
        var parameters: [String: String] = [:]
        for (part, segment) in zip(pattern, segments) {
            switch part {
            case .literal(let literal):
                guard literal == segment else { return nil }
            case .capture(let name):
                parameters[name] = segment
            }
        }
        return parameters
    }
}
