public import Foundation

/// A request to the local API, with its body already read (bounded by the server's body limit).
public struct APIRequest: Sendable {
    /// Upper-case method name: GET, POST, DELETE, …
    public var method: String
    /// The path without the query, percent-decoded per segment by the router.
    public var path: String
    /// Query parameters (the last value wins when a name repeats).
    public var query: [String: String]
    /// Parameters captured from the route pattern (`:id` in `/v1/runs/:id`).
    public var parameters: [String: String]
    /// Header values by lower-cased name (the last value wins when a name repeats).
    public var headers: [String: String]
    public var body: Data

    public init(
        method: String, path: String, query: [String: String] = [:], parameters: [String: String] = [:],
        headers: [String: String] = [:], body: Data = Data()
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.parameters = parameters
        self.headers = headers
        self.body = body
    }

    /// The route parameter `name`; a 400 if the route has none (a programming slip, not bad input).
    public func parameter(_ name: String) throws(APIError) -> String {
        guard let value = parameters[name] else {
            throw .badRequest("missing path parameter \"\(name)\"")
        }
        return value
    }

    /// The body decoded as JSON; a 400 that says what is wrong otherwise.
    public func decode<T: Decodable>(_ type: T.Type) throws(APIError) -> T {
        if body.isEmpty {
            throw .badRequest("the request needs a JSON body (\(T.self))")
        }
        do {
            return try APIJSON.makeDecoder().decode(T.self, from: body)
        } catch let error as DecodingError {
            throw .badRequest("the request body is not valid JSON for \(T.self): \(Self.explain(error))")
        } catch {
            throw .badRequest("the request body is not valid JSON: \(error)")
        }
    }

    private static func explain(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            return keys.isEmpty ? "the top level" : "\"" + keys.joined(separator: ".") + "\""
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing field \"\(key.stringValue)\" at \(path(context))"
        case .typeMismatch(let type, let context):
            return "\(path(context)) should be \(type)"
        case .valueNotFound(let type, let context):
            return "\(path(context)) should be \(type), not null"
        case .dataCorrupted(let context):
            return context.underlyingError.map { "\($0.localizedDescription)" } ?? context.debugDescription
        @unknown default:
            return "\(error)"
        }
    }
}
