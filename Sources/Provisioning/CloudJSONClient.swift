import Curl
import Foundation

/// JSON over HTTPS with a bearer token, shared by the Azure and GCP backends: sends a request,
/// decodes the JSON answer, and turns transport failures and error statuses into
/// `ProvisioningError`s (the backend words the API errors).
struct CloudJSONClient: Sendable {
    let backend: String
    let http: HTTPClient

    struct Answer: @unchecked Sendable {  // JSON objects are only read after decoding
        let status: Int
        let headers: [HTTPHeader]
        let json: [String: Any]
        let text: String
    }

    func send(_ method: String, _ url: String, bearer: String?, json: [String: Any]? = nil, form: [(String, String)]? = nil) async throws -> Answer {
        var headers = [HTTPHeader("Accept", "application/json")]
        var body: [UInt8] = []
        if let bearer { headers.append(HTTPHeader("Authorization", "Bearer \(bearer)")) }
        if let json {
            headers.append(HTTPHeader("Content-Type", "application/json"))
            body = Array(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]))
        } else if let form {
            headers.append(HTTPHeader("Content-Type", "application/x-www-form-urlencoded"))
            body = Array(form.map { "\(SigV4Signer.uriEncode($0.0))=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&").utf8)
        }
        let response: HTTPResponse
        do {
            response = try await http.send(HTTPRequest(method: method, url: url, headers: headers, body: body))
        } catch {
            throw ProvisioningError.transport(backend: backend, message: error.description)
        }
        var object: [String: Any] = [:]
        if !response.body.isEmpty {
            guard let parsed = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
                if response.isSuccess {
                    throw ProvisioningError.unexpectedResponse(backend: backend, message: "\(method) \(url) answered HTTP \(response.status) with a body that is not a JSON object: \(response.text.prefix(200))")
                }
                return Answer(status: response.status, headers: response.headers, json: [:], text: response.text)
            }
            object = parsed
        }
        return Answer(status: response.status, headers: response.headers, json: object, text: response.text)
    }
}

/// Reading into `[String: Any]` trees without a cascade of casts.
extension Dictionary where Key == String, Value == Any {
    func object(_ key: String) -> [String: Any]? { self[key] as? [String: Any] }
    func string(_ key: String) -> String? { self[key] as? String }
    func array(_ key: String) -> [[String: Any]] { self[key] as? [[String: Any]] ?? [] }
}
