/// One header field. Order and repetition are kept as given.
public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// An HTTP request for `HTTPClient`.
public struct HTTPRequest: Sendable {
    /// The method, sent as given (`GET`, `POST`, `PUT`, `DELETE`, `PATCH`, `HEAD`, ...).
    public var method: String
    /// An absolute URL. With a Unix socket, the host part only fills the `Host` header.
    public var url: String
    public var headers: [HTTPHeader]
    /// The request body; sent (with a `Content-Length`) when non-empty or when the method is not GET/HEAD.
    public var body: [UInt8]
    /// Limit for the whole exchange, connection included; nil uses the client's default.
    public var timeout: Duration?

    public init(method: String = "GET", url: String, headers: [HTTPHeader] = [], body: [UInt8] = [], timeout: Duration? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }

    /// The `Content-Length` libcurl sends with this request, nil when it sends none: curl adds the
    /// header itself unless the caller gave one, so a signer (SigV4) must know it to sign what is
    /// sent. The rule is `CurlTransfer`'s choice of method options: no body for HEAD, nor for GET,
    /// DELETE and OPTIONS without a body; every other request posts its body, even an empty one.
    public var sentContentLength: Int? {
        switch method.uppercased() {
        case "HEAD": return nil
        case "GET" where body.isEmpty, "DELETE" where body.isEmpty, "OPTIONS" where body.isEmpty: return nil
        default: return body.count
        }
    }

    /// A request whose body is the UTF-8 of `text`.
    public init(method: String, url: String, headers: [HTTPHeader] = [], text: String, timeout: Duration? = nil) {
        self.init(method: method, url: url, headers: headers, body: Array(text.utf8), timeout: timeout)
    }
}
