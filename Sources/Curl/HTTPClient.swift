internal import CCurl

/// A blocking HTTP client over libcurl. Each call uses its own easy handle, so a client can be
/// shared between threads freely. Use `send(_:)` from async code: it runs off the cooperative pool.
public struct HTTPClient: Sendable {
    /// When set, every request goes over this Unix socket (CURLOPT_UNIX_SOCKET_PATH); the URL's
    /// host then only fills the `Host` header. The CLI talks to its local node this way.
    public var unixSocketPath: String?
    /// Limit for a whole exchange when the request sets none; nil means no limit.
    public var timeout: Duration?
    /// Limit for establishing the connection (TCP, and TLS when https).
    public var connectTimeout: Duration
    /// Largest response body kept in memory; a larger one fails with `CurlError.responseTooLarge`.
    public var maxResponseBytes: Int
    /// Follow 3xx redirects (off by default: API clients want to see them).
    public var followRedirects: Bool
    /// A PEM file of the certificate authorities trusted for https (CURLOPT_CAINFO) instead of the
    /// system's: a private ACME CA, or a test CA.
    public var caBundlePath: String?

    public init(
        unixSocketPath: String? = nil,
        timeout: Duration? = .seconds(30),
        connectTimeout: Duration = .seconds(10),
        maxResponseBytes: Int = 64 << 20,
        followRedirects: Bool = false,
        caBundlePath: String? = nil
    ) {
        self.unixSocketPath = unixSocketPath
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.maxResponseBytes = maxResponseBytes
        self.followRedirects = followRedirects
        self.caBundlePath = caBundlePath
    }

    /// Sends `request` and returns the final response with its whole body. HTTP error statuses
    /// (4xx, 5xx) are responses, not errors; transport failures throw `CurlError`.
    public func perform(_ request: HTTPRequest) throws(CurlError) -> HTTPResponse {
        try CurlTransfer(client: self, request: request, onBody: nil, cancellation: nil).run()
    }

    /// Sends `request` and hands the response body to `onBody` piece by piece, as it arrives, with
    /// the response status; the returned response has an empty body. Returning false from `onBody`
    /// stops the transfer, which then throws `CurlError.cancelled`.
    public func perform(_ request: HTTPRequest, onBody: @escaping (_ status: Int, _ chunk: [UInt8]) -> Bool) throws(CurlError) -> HTTPResponse {
        try CurlTransfer(client: self, request: request, onBody: onBody, cancellation: nil).run()
    }

    func perform(_ request: HTTPRequest, onBody: ((Int, [UInt8]) -> Bool)?, cancellation: CurlCancellation?) throws(CurlError) -> HTTPResponse {
        try CurlTransfer(client: self, request: request, onBody: onBody, cancellation: cancellation).run()
    }
}

/// One-time `curl_global_init`, done before the first easy handle is made.
enum CurlGlobal {
    private static let initialized: Bool = warren_curl_global_init() == CURLE_OK

    static func ensureInitialized() throws(CurlError) {
        guard initialized else { throw CurlError.initializationFailed }
    }
}
