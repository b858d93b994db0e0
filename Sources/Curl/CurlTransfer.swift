internal import CCurl
import Synchronization

/// A flag another thread sets to stop a running transfer (task cancellation, a closed stream).
final class CurlCancellation: Sendable {
    private let flag = Atomic<Bool>(false)
    func cancel() { flag.store(true, ordering: .relaxed) }
    var isCancelled: Bool { flag.load(ordering: .relaxed) }
}

/// One request on one easy handle: sets the options, runs `curl_easy_perform`, and gathers the
/// response through the C callbacks, which reach this object through their user-data pointer.
final class CurlTransfer {
    private let client: HTTPClient
    private let request: HTTPRequest
    private let onBody: ((Int, [UInt8]) -> Bool)?
    private let cancellation: CurlCancellation?

    // Filled by the callbacks.
    private var status = 0
    private var headers: [HTTPHeader] = []
    private var body: [UInt8] = []
    private var stoppedByCaller = false
    private var tooLarge = false

    init(client: HTTPClient, request: HTTPRequest, onBody: ((Int, [UInt8]) -> Bool)?, cancellation: CurlCancellation?) {
        self.client = client
        self.request = request
        self.onBody = onBody
        self.cancellation = cancellation
    }

    func run() throws(CurlError) -> HTTPResponse {
        try CurlGlobal.ensureInitialized()
        for header in request.headers {
            let bad = header.name.isEmpty || header.name.contains(where: { $0 == ":" || $0.isNewline || $0 == " " })
                || header.value.contains(where: \.isNewline)
            if bad { throw CurlError.invalidHeader("\(header.name): \(header.value)") }
        }
        guard let handle = curl_easy_init() else { throw CurlError.initializationFailed }
        defer { curl_easy_cleanup(handle) }

        var list: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(list) }
        for line in headerLines() { list = curl_slist_append(list, line) }

        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let me = Unmanaged.passUnretained(self).toOpaque()
        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errorBytes in
            var code = configure(handle, headers: list, userData: me)
            if code == CURLE_OK {
                code = warren_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBytes.baseAddress)
            }
            if code == CURLE_OK { code = curl_easy_perform(handle) }
            return code
        }
        guard code == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw error(for: code, detail: detail)
        }
        var finalStatus = 0
        if warren_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &finalStatus) == CURLE_OK, finalStatus != 0 {
            status = finalStatus
        }
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    /// The header lines given to curl: the caller's, plus blanks that stop curl adding its own
    /// `Expect: 100-continue` and form `Content-Type`, which the caller did not ask for.
    private func headerLines() -> [String] {
        var lines = request.headers.map { $0.value.isEmpty ? "\($0.name);" : "\($0.name): \($0.value)" }
        let names = Set(request.headers.map { $0.name.lowercased() })
        if !names.contains("expect") { lines.append("Expect:") }
        if !names.contains("content-type") { lines.append("Content-Type:") }
        return lines
    }

    private func configure(_ handle: UnsafeMutableRawPointer, headers: UnsafeMutablePointer<curl_slist>?, userData: UnsafeMutableRawPointer) -> CURLcode {
        var results: [CURLcode] = []
        results.append(warren_curl_setopt_string(handle, CURLOPT_URL, request.url))
        results.append(warren_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        if let path = client.unixSocketPath {
            results.append(warren_curl_setopt_string(handle, CURLOPT_UNIX_SOCKET_PATH, path))
        }
        if client.unixSocketPath != nil || Self.isLoopback(request.url) {
            // A proxy from the environment (http_proxy) must not capture calls to this machine.
            results.append(warren_curl_setopt_string(handle, CURLOPT_NOPROXY, "*"))
        }
        if let caBundle = client.caBundlePath {
            results.append(warren_curl_setopt_string(handle, CURLOPT_CAINFO, caBundle))
        }
        results.append(warren_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(client.connectTimeout)))
        if let timeout = request.timeout ?? client.timeout {
            results.append(warren_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Self.milliseconds(timeout)))
        }
        if client.followRedirects {
            results.append(warren_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 1))
            results.append(warren_curl_setopt_long(handle, CURLOPT_MAXREDIRS, 10))
        }
        results.append(contentsOf: configureMethod(handle))
        results.append(warren_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, headers))

        results.append(warren_curl_setopt_write_function(handle, CURLOPT_HEADERFUNCTION, { data, size, count, me in
            guard let data, let me else { return 0 }
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(me).takeUnretainedValue()
            transfer.receiveHeader(UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }))
        results.append(warren_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, userData))
        results.append(warren_curl_setopt_write_function(handle, CURLOPT_WRITEFUNCTION, { data, size, count, me in
            guard let data, let me else { return 0 }
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(me).takeUnretainedValue()
            // Answering fewer bytes than given makes curl stop with CURLE_WRITE_ERROR.
            return transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
        }))
        results.append(warren_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, userData))
        if cancellation != nil {
            results.append(warren_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0))
            results.append(warren_curl_setopt_xferinfo_function(handle, { me, _, _, _, _ in
                guard let me else { return 0 }
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(me).takeUnretainedValue()
                return transfer.cancellation?.isCancelled == true ? 1 : 0
            }))
            results.append(warren_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, userData))
        }
        return results.first { $0 != CURLE_OK } ?? CURLE_OK
    }

    private func configureMethod(_ handle: UnsafeMutableRawPointer) -> [CURLcode] {
        let method = request.method.uppercased()
        switch method {
        case "HEAD":
            return [warren_curl_setopt_long(handle, CURLOPT_NOBODY, 1)]
        case "GET" where request.body.isEmpty:
            return [warren_curl_setopt_long(handle, CURLOPT_HTTPGET, 1)]
        case "DELETE" where request.body.isEmpty, "OPTIONS" where request.body.isEmpty:
            return [warren_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)]
        default:
            // The body is copied by curl (COPYPOSTFIELDS), so it need not outlive this call.
            var results = [warren_curl_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count))]
            // One byte stands in for an empty body: curl wants a pointer even with a size of 0.
            let bytes = request.body.isEmpty ? [0] : request.body
            results.append(bytes.withUnsafeBytes { warren_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, $0.baseAddress) })
            if method != "POST" {
                results.append(warren_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method))
            }
            return results
        }
    }

    /// One header line. A status line starts a new response (after a 100 Continue or a redirect).
    private func receiveHeader(_ bytes: UnsafeRawBufferPointer) {
        var line = String(decoding: bytes, as: UTF8.self)
        while let last = line.last, last.isNewline { line.removeLast() }
        if line.hasPrefix("HTTP/") {
            let parts = line.split(separator: " ", maxSplits: 2)
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            headers = []
        } else if let colon = line.firstIndex(of: ":") {
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingWhitespace()
            headers.append(HTTPHeader(name, value))
        }
    }

    private func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if cancellation?.isCancelled == true {
            stoppedByCaller = true
            return false
        }
        if let onBody {
            guard onBody(status, Array(bytes)) else {
                stoppedByCaller = true
                return false
            }
            return true
        }
        guard body.count + bytes.count <= client.maxResponseBytes else {
            tooLarge = true
            return false
        }
        body.append(contentsOf: bytes)
        return true
    }

    private func error(for code: CURLcode, detail: String) -> CurlError {
        let url = request.url
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        if tooLarge { return .responseTooLarge(url, limit: client.maxResponseBytes) }
        if stoppedByCaller || code == CURLE_ABORTED_BY_CALLBACK { return .cancelled(url) }
        switch code {
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT:
            return .invalidURL(url, message: message)
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return .couldNotResolve(url, message: message)
        case CURLE_COULDNT_CONNECT:
            return .couldNotConnect(url, message: message)
        case CURLE_OPERATION_TIMEDOUT:
            return .timedOut(url, message: message)
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_ISSUER_ERROR,
             CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CRL_BADFILE, CURLE_SSL_SHUTDOWN_FAILED:
            return .tls(url, message: message)
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_WEIRD_SERVER_REPLY,
             CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_WRITE_ERROR, CURLE_READ_ERROR:
            return .transfer(url, message: message)
        default:
            return .other(url, message: message)
        }
    }

    /// Whether the URL's host is this machine (localhost, 127.0.0.0/8, ::1).
    static func isLoopback(_ url: String) -> Bool {
        guard let schemeEnd = url.firstRange(of: "://") else { return false }
        let authority = url[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let hostAndPort = authority.split(separator: "@").last ?? authority
        let host: Substring
        if hostAndPort.hasPrefix("[") {
            host = hostAndPort.dropFirst().prefix { $0 != "]" }
        } else {
            host = hostAndPort.prefix { $0 != ":" }
        }
        let lower = host.lowercased()
        return lower == "localhost" || lower.hasPrefix("127.") || lower == "::1"
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
              let end = scalars.lastIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        return String(String.UnicodeScalarView(scalars[start...end]))
    }
}
