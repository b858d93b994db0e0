public import Curl
public import Foundation
import Sodium

/// AWS credentials. `description` never shows the secret.
public struct AWSCredentials: Sendable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    /// The STS session token of temporary credentials, sent (and signed) as `X-Amz-Security-Token`.
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String { "AWSCredentials(\(accessKeyID), secret redacted)" }
}

/// AWS Signature Version 4 (header form), as specified in "Create a signed AWS API request".
/// Pure functions of their inputs, so each step can be checked against the published test suite.
public struct SigV4Signer: Sendable {
    public var credentials: AWSCredentials
    public var region: String
    public var service: String

    public init(credentials: AWSCredentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// Every intermediate result of signing one request.
    public struct Signature: Sendable, Equatable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signature: String
        /// The value of the `Authorization` header.
        public var authorization: String
    }

    /// Signs a request given by parts. `path` is the unencoded path (it is normalized and
    /// URI-encoded here, as for every service but S3); `query` is the raw query string, with or
    /// without percent-encoding; `headers` are the headers to sign, `X-Amz-Date` (`amzDate`) and
    /// `Host` among them.
    public func sign(method: String, path: String, query: String, headers: [HTTPHeader], body: [UInt8], amzDate: String) -> Signature {
        let canonicalHeaders = Self.canonicalHeaders(headers)
        let signedHeaders = canonicalHeaders.map(\.name).joined(separator: ";")
        let canonicalRequest = [
            method.uppercased(),
            Self.canonicalURI(path),
            Self.canonicalQuery(query),
            canonicalHeaders.map { "\($0.name):\($0.value)\n" }.joined(),
            signedHeaders,
            SHA256.hash(body).lowercaseHex,
        ].joined(separator: "\n")

        let day = String(amzDate.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, SHA256.hash(canonicalRequest).lowercaseHex].joined(separator: "\n")

        var key = Array("AWS4\(credentials.secretAccessKey)".utf8)
        for part in [day, region, service, "aws4_request"] {
            key = HMACSHA256.authenticate(part, key: key)
        }
        let signature = HMACSHA256.authenticate(stringToSign, key: key).lowercaseHex
        Sodium.zero(&key)
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature, authorization: authorization)
    }

    /// Returns `request` with `Host`, `X-Amz-Date`, `X-Amz-Security-Token` (with temporary
    /// credentials), `Content-Length` (when libcurl sends one) and `Authorization` added, signed at
    /// `date`. Every header of the returned request but `Authorization` is signed, and no other.
    public func sign(_ request: HTTPRequest, date: Date = Date()) throws -> HTTPRequest {
        try signing(request, date: date).request
    }

    /// `sign(_:date:)` with the signature's intermediate results, for tests.
    func signing(_ request: HTTPRequest, date: Date) throws -> (request: HTTPRequest, signature: Signature) {
        guard let url = URLComponents(string: request.url), let host = url.host else {
            throw ProvisioningError.invalidConfiguration("cannot sign a request to the malformed URL \(request.url)")
        }
        var signed = request
        let hostValue = url.port.map { "\(host):\($0)" } ?? host
        signed.headers.removeAll { ["host", "x-amz-date", "authorization", "x-amz-security-token", "content-length"].contains($0.name.lowercased()) }
        let amzDate = Self.amzDate(date)
        signed.headers.append(HTTPHeader("Host", hostValue))
        signed.headers.append(HTTPHeader("X-Amz-Date", amzDate))
        if let token = credentials.sessionToken { signed.headers.append(HTTPHeader("X-Amz-Security-Token", token)) }
        // libcurl adds Content-Length at send time when the request has none; giving it here means
        // the header sent is the header signed (curl then adds no second one).
        if let length = request.sentContentLength { signed.headers.append(HTTPHeader("Content-Length", "\(length)")) }
        let path = url.path.isEmpty ? "/" : url.path
        let result = sign(method: request.method, path: path, query: url.percentEncodedQuery ?? "", headers: signed.headers, body: request.body, amzDate: amzDate)
        signed.headers.append(HTTPHeader("Authorization", result.authorization))
        return (signed, result)
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    public static func amzDate(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ n: Int?) -> String { let v = n ?? 0; return v < 10 ? "0\(v)" : "\(v)" }
        return "\(c.year ?? 1970)\(two(c.month))\(two(c.day))T\(two(c.hour))\(two(c.minute))\(two(c.second))Z"
    }

    // MARK: - Canonical parts

    /// Dot segments and empty segments removed, each segment URI-encoded; a trailing slash kept.
    static func canonicalURI(_ path: String) -> String {
        var segments: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch segment {
            case ".": continue
            case "..": if !segments.isEmpty { segments.removeLast() }
            default: segments.append(segment)
            }
        }
        var result = "/" + segments.map { uriEncode(String($0)) }.joined(separator: "/")
        if !segments.isEmpty, path.hasSuffix("/") || path.hasSuffix("/.") || path.hasSuffix("/..") { result += "/" }
        return result
    }

    /// Parameters decoded, re-encoded the AWS way, and sorted by name then value.
    static func canonicalQuery(_ query: String) -> String {
        var pairs: [(name: String, value: String)] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = uriEncode(percentDecode(String(parts[0])))
            let value = parts.count > 1 ? uriEncode(percentDecode(String(parts[1]))) : ""
            pairs.append((name, value))
        }
        pairs.sort { $0.name != $1.name ? $0.name < $1.name : $0.value < $1.value }
        return pairs.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    /// Lower-case names, sorted; values trimmed with inner runs of spaces collapsed; repeated
    /// headers joined with commas in the order given.
    static func canonicalHeaders(_ headers: [HTTPHeader]) -> [(name: String, value: String)] {
        var order: [String] = []
        var values: [String: [String]] = [:]
        for header in headers {
            let name = header.name.lowercased()
            if values[name] == nil { order.append(name) }
            let collapsed = header.value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
            values[name, default: []].append(collapsed)
        }
        return order.sorted().map { ($0, values[$0]!.joined(separator: ",")) }
    }

    /// RFC 3986 encoding of everything but the unreserved characters, upper-case hex.
    static func uriEncode(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0f)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func percentDecode(_ text: String) -> String {
        text.removingPercentEncoding ?? text
    }
}
