public import Foundation

/// A response of the local API: a status, headers and a body that is either bytes or a stream of
/// chunks (sent with chunked transfer encoding, for `logs -f` and attached runs).
public struct APIResponse: Sendable {
    public var status: Int
    /// Extra headers. Content-Length and Transfer-Encoding are set by the server.
    public var headers: [String: String]
    public var body: Body

    public enum Body: Sendable {
        case bytes(Data)
        /// Produces the body by writing chunks until it returns. The writer throws once the client
        /// is gone, and the producing task is cancelled, so a follower ends with its client.
        case stream(@Sendable (ChunkWriter) async throws -> Void)
    }

    public init(status: Int = 200, headers: [String: String] = [:], body: Body = .bytes(Data())) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response.
    public static func json<T: Encodable>(_ value: T, status: Int = 200) throws(APIError) -> APIResponse {
        let data: Data
        do {
            data = try APIJSON.makeEncoder().encode(value)
        } catch {
            throw .internalError("cannot encode the response as JSON: \(error)")
        }
        return APIResponse(status: status, headers: ["content-type": "application/json"], body: .bytes(data))
    }

    /// An empty 204 response.
    public static var noContent: APIResponse { APIResponse(status: 204) }

    /// An error response: `{"error": message, "issues": [...]}`.
    public static func error(_ error: APIError) -> APIResponse {
        let data = (try? APIJSON.makeEncoder().encode(APIErrorBody(error: error.message, issues: error.issues))) ?? Data("{}".utf8)
        return APIResponse(status: error.status, headers: ["content-type": "application/json"], body: .bytes(data))
    }

    /// A streamed response whose chunks are the elements of `chunks`.
    public static func stream<Chunks: AsyncSequence & Sendable>(
        _ chunks: Chunks, status: Int = 200, contentType: String = "text/plain; charset=utf-8"
    ) -> APIResponse where Chunks.Element == Data {
        APIResponse(status: status, headers: ["content-type": contentType], body: .stream { writer in
            for try await chunk in chunks {
                try await writer.write(chunk)
            }
        })
    }
}

/// Writes the chunks of a streamed response.
public struct ChunkWriter: Sendable {
    let writeChunk: @Sendable (Data) async throws -> Void

    public init(_ writeChunk: @escaping @Sendable (Data) async throws -> Void) {
        self.writeChunk = writeChunk
    }

    /// Sends one chunk; empty chunks are skipped (an empty chunk would end the body).
    public func write(_ chunk: Data) async throws {
        guard !chunk.isEmpty else { return }
        try await writeChunk(chunk)
    }

    /// Sends UTF-8 text as one chunk.
    public func write(_ text: String) async throws {
        try await write(Data(text.utf8))
    }
}
