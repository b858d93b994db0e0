import Curl
import Foundation

/// JSON over HTTPS with a bearer token, shared by the Azure and GCP backends: sends a request,
/// decodes the JSON answer, and turns transport failures and error statuses into
/// `ProvisioningError`s (the backend words the API errors). Throttling, transient server errors and
/// transport failures are retried (`retry`): every call sent here is idempotent (Azure's PUT and
/// DELETE are; GCP's inserts and deletes carry a `requestId`).
struct CloudJSONClient: Sendable {
    let backend: String
    let http: HTTPClient
    var retry = Retrying()

    struct Answer: @unchecked Sendable {  // JSON objects are only read after decoding
        let status: Int
        let headers: [HTTPHeader]
        let json: [String: Any]
        let text: String
    }

    func send(_ method: String, _ url: String, bearer: String?, json: [String: Any]? = nil, form: [(String, String)]? = nil) async throws -> Answer {
        try await retry.run { _ -> Retrying.Attempt<Result<Answer, ProvisioningError>> in
            let answer: Answer
            do {
                answer = try await sendOnce(method, url, bearer: bearer, json: json, form: form)
            } catch let error as ProvisioningError {
                if case .transport = error { return .again(.failure(error), retryAfter: nil) }
                return .done(.failure(error))
            }
            guard Self.isPassing(answer) else { return .done(.success(answer)) }
            return .again(.success(answer), retryAfter: Retrying.retryAfter(answer.headers.first { $0.name.lowercased() == "retry-after" }?.value))
        }.get()
    }

    /// Whether an answer is a refusal worth retrying: 429 (Azure's throttling, GCP's
    /// RESOURCE_EXHAUSTED), a 5xx a retry may not meet, or GCP's rate limits, which it also answers
    /// as 403 with the reason `rateLimitExceeded` or `userRateLimitExceeded`
    /// (https://cloud.google.com/compute/docs/api/how-tos/api-rate-limits: "retry using truncated
    /// exponential backoff"; https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/request-limits-and-throttling:
    /// "wait for the number of seconds specified in the Retry-After value").
    static func isPassing(_ answer: Answer) -> Bool {
        if answer.status == 429 || [500, 502, 503, 504].contains(answer.status) { return true }
        if answer.status == 403 {
            let reasons = answer.json.object("error")?.array("errors").compactMap { $0.string("reason") } ?? []
            return reasons.contains { $0 == "rateLimitExceeded" || $0 == "userRateLimitExceeded" }
        }
        return false
    }

    private func sendOnce(_ method: String, _ url: String, bearer: String?, json: [String: Any]?, form: [(String, String)]?) async throws -> Answer {
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
