import Curl
import Foundation
import MeshNode

/// The CLI's only way to the mesh: HTTP/JSON to the local node over its Unix socket, with libcurl.
struct NodeClient {
    let stateDirectory: String
    var socketPath: String { stateDirectory + "/node.sock" }
    private let http: HTTPClient

    init(stateDirectory: String) {
        self.stateDirectory = stateDirectory
        http = HTTPClient(unixSocketPath: stateDirectory + "/node.sock", timeout: .seconds(120))
    }

    /// A failure to show the user as it is.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        var issues: [String] = []
        var status: Int = 0
    }

    func get<Response: Decodable>(_ path: String, as: Response.Type = Response.self) throws(Failure) -> Response {
        try decode(send(HTTPRequest(method: "GET", url: url(path))))
    }

    func post<Response: Decodable>(_ path: String, _ body: some Encodable, as: Response.Type = Response.self) throws(Failure) -> Response {
        try decode(send(HTTPRequest(method: "POST", url: url(path), headers: [HTTPHeader("Content-Type", "application/json")], body: encode(body))))
    }

    func delete(_ path: String) throws(Failure) {
        _ = try send(HTTPRequest(method: "DELETE", url: url(path)))
    }

    func delete<Response: Decodable>(_ path: String, as: Response.Type) throws(Failure) -> Response {
        try decode(send(HTTPRequest(method: "DELETE", url: url(path))))
    }

    /// Streams a response body to `onChunk` until the node ends it or `onChunk` returns false.
    func stream(_ path: String, onChunk: @escaping ([UInt8]) -> Bool) throws(Failure) {
        var errorBody: [UInt8] = []
        var status = 0
        let client = HTTPClient(unixSocketPath: socketPath, timeout: nil)
        do {
            _ = try client.perform(HTTPRequest(method: "GET", url: url(path))) { code, chunk in
                status = code
                if code >= 300 { errorBody += chunk; return true }
                return onChunk(chunk)
            }
        } catch .cancelled {
            return
        } catch {
            throw transportFailure(error)
        }
        if status >= 300 { throw failure(HTTPResponse(status: status, body: errorBody)) }
    }

    private func url(_ path: String) -> String { "http://warren-node" + path }

    private func send(_ request: HTTPRequest) throws(Failure) -> HTTPResponse {
        let response: HTTPResponse
        do {
            response = try http.perform(request)
        } catch {
            throw transportFailure(error)
        }
        guard response.isSuccess else { throw failure(response) }
        return response
    }

    private func transportFailure(_ error: CurlError) -> Failure {
        switch error {
        case .couldNotConnect:
            return Failure(description: """
                no node is running for \(stateDirectory) (nothing answers on \(socketPath)).
                Start one with `warren node start` (in another terminal, or as a service), or point \
                WARREN_HOME at the state directory of a running node.
                """)
        default:
            return Failure(description: "talking to the local node failed: \(error)")
        }
    }

    private func failure(_ response: HTTPResponse) -> Failure {
        if let body = try? APIJSON.makeDecoder().decode(APIErrorBody.self, from: Data(response.body)) {
            return Failure(description: body.error, issues: body.issues ?? [], status: response.status)
        }
        return Failure(description: "the node answered \(response.status): \(response.text)", status: response.status)
    }

    private func decode<Response: Decodable>(_ response: HTTPResponse) throws(Failure) -> Response {
        if Response.self == Empty.self { return Empty() as! Response }
        do {
            return try APIJSON.makeDecoder().decode(Response.self, from: Data(response.body))
        } catch {
            throw Failure(description: "the node's answer could not be read (\(error)); is it the same version as this warren?")
        }
    }

    private func encode(_ body: some Encodable) throws(Failure) -> [UInt8] {
        do { return Array(try APIJSON.makeEncoder().encode(body)) } catch { throw Failure(description: "could not encode the request: \(error)") }
    }
}

/// A response with no body worth reading.
struct Empty: Codable {}

