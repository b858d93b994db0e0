@testable import Curl
import Foundation
import Testing

@Suite("HTTPClient over libcurl")
struct HTTPClientTests {
    struct Echo: Decodable {
        let method: String
        let path: String
        let headers: [[String]]
        let body: String
        func header(_ name: String) -> String? { headers.first { $0[0].lowercased() == name.lowercased() }?[1] }
    }

    @Test func getReturnsStatusHeadersAndBody() throws {
        let server = try PythonHTTPServer()
        let response = try HTTPClient().perform(HTTPRequest(url: server.baseURL + "/echo?a=1", headers: [HTTPHeader("X-Test", "hello")]))
        #expect(response.status == 200)
        #expect(response.header("x-echo") == "yes")
        #expect(response.headers.filter { $0.name == "X-Multi" }.map(\.value) == ["a", "b"])
        let echo = try JSONDecoder().decode(Echo.self, from: Data(response.body))
        #expect(echo.method == "GET")
        #expect(echo.path == "/echo?a=1")
        #expect(echo.header("X-Test") == "hello")
        #expect(echo.header("Expect") == nil)
    }

    @Test(arguments: ["POST", "PUT", "PATCH", "DELETE"])
    func methodsSendTheirBody(method: String) throws {
        let server = try PythonHTTPServer()
        let request = HTTPRequest(method: method, url: server.baseURL + "/echo", headers: [HTTPHeader("Content-Type", "application/json")], text: #"{"k":"v"}"#)
        let response = try HTTPClient().perform(request)
        let echo = try JSONDecoder().decode(Echo.self, from: Data(response.body))
        #expect(echo.method == method)
        #expect(echo.body == #"{"k":"v"}"#)
        #expect(echo.header("Content-Type") == "application/json")
        #expect(echo.header("Content-Length") == "9")
    }

    @Test func postWithoutContentTypeSendsNoneAndLargeBodyHasNoExpect() throws {
        let server = try PythonHTTPServer()
        let big = String(repeating: "z", count: 200_000)
        let response = try HTTPClient().perform(HTTPRequest(method: "POST", url: server.baseURL + "/echo", text: big))
        let echo = try JSONDecoder().decode(Echo.self, from: Data(response.body))
        #expect(echo.body.count == 200_000)
        #expect(echo.header("Content-Type") == nil)
        #expect(echo.header("Expect") == nil)
    }

    @Test func errorStatusIsAResponseNotAnError() throws {
        let server = try PythonHTTPServer()
        let response = try HTTPClient().perform(HTTPRequest(url: server.baseURL + "/status/503"))
        #expect(response.status == 503)
        #expect(!response.isSuccess)
        #expect(response.text == "status body")
    }

    @Test func headHasNoBody() throws {
        let server = try PythonHTTPServer()
        let response = try HTTPClient().perform(HTTPRequest(method: "HEAD", url: server.baseURL + "/bytes/100"))
        #expect(response.status == 200)
        #expect(response.body.isEmpty)
        #expect(response.header("Content-Length") == "100")
    }

    @Test func overUnixSocket() throws {
        let server = try PythonHTTPServer(unixSocket: true)
        let path = try #require(server.socketPath)
        let client = HTTPClient(unixSocketPath: path)
        let response = try client.perform(HTTPRequest(method: "POST", url: "http://localhost/echo", text: "over unix"))
        #expect(response.status == 200)
        let echo = try JSONDecoder().decode(Echo.self, from: Data(response.body))
        #expect(echo.body == "over unix")
        #expect(echo.header("Host") == "localhost")
    }

    @Test func refusedConnectionIsCouldNotConnect() throws {
        // Bind a port, then close it, so nothing listens there.
        let server = try PythonHTTPServer()
        let url = server.baseURL + "/echo"
        kill(server.process.processIdentifier, SIGKILL)
        server.process.waitUntilExit()
        #expect {
            try HTTPClient().perform(HTTPRequest(url: url))
        } throws: { error in
            guard case CurlError.couldNotConnect(let failed, _) = error else { return false }
            return failed == url && "\(error)".contains(url)
        }
    }

    @Test func missingUnixSocketIsCouldNotConnect() throws {
        let client = HTTPClient(unixSocketPath: "/nonexistent-warren-test/node.sock")
        #expect {
            try client.perform(HTTPRequest(url: "http://localhost/v1/status"))
        } throws: { error in
            if case CurlError.couldNotConnect = error { return true }
            return false
        }
    }

    @Test func slowServerTimesOut() throws {
        let server = try PythonHTTPServer()
        #expect {
            try HTTPClient().perform(HTTPRequest(url: server.baseURL + "/sleep/3", timeout: .milliseconds(300)))
        } throws: { error in
            if case CurlError.timedOut = error { return true }
            return false
        }
    }

    @Test func invalidURLAndHeaderAreTypedErrors() throws {
        #expect(throws: CurlError.self) { try HTTPClient().perform(HTTPRequest(url: "nope://x")) }
        #expect {
            try HTTPClient().perform(HTTPRequest(url: "http://127.0.0.1:1/", headers: [HTTPHeader("X-Bad", "a\r\nInjected: 1")]))
        } throws: { error in
            if case CurlError.invalidHeader = error { return true }
            return false
        }
    }

    @Test func responseOverLimitIsRefused() throws {
        let server = try PythonHTTPServer()
        let client = HTTPClient(maxResponseBytes: 1000)
        #expect(try client.perform(HTTPRequest(url: server.baseURL + "/bytes/1000")).body.count == 1000)
        #expect {
            try client.perform(HTTPRequest(url: server.baseURL + "/bytes/5000"))
        } throws: { error in
            if case CurlError.responseTooLarge(_, let limit) = error { return limit == 1000 }
            return false
        }
    }

    @Test func streamingCallbackSeesChunksAndCanStop() throws {
        let server = try PythonHTTPServer()
        var received = ""
        let head = try HTTPClient().perform(HTTPRequest(url: server.baseURL + "/stream/5")) { status, chunk in
            #expect(status == 200)
            received += String(decoding: chunk, as: UTF8.self)
            return true
        }
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        #expect(received == (0..<5).map { "line \($0)\n" }.joined())

        var chunks = 0
        #expect {
            try HTTPClient().perform(HTTPRequest(url: server.baseURL + "/stream/100")) { _, _ in
                chunks += 1
                return chunks < 2
            }
        } throws: { error in
            if case CurlError.cancelled = error { return true }
            return false
        }
        #expect(chunks == 2)
    }

    @Test func asyncSendAndStream() async throws {
        let server = try PythonHTTPServer()
        let response = try await HTTPClient().send(HTTPRequest(url: server.baseURL + "/status/201"))
        #expect(response.status == 201)

        var lines: [String] = []
        var status: Int?
        for try await part in HTTPClient().stream(HTTPRequest(url: server.baseURL + "/stream/100")) {
            switch part {
            case .head(let head): status = head.status
            case .body(let chunk): lines.append(String(decoding: chunk, as: UTF8.self))
            }
            if lines.count == 3 { break }  // ends the transfer early, like ^C on `logs -f`
        }
        #expect(status == 200)
        #expect(lines == ["line 0\n", "line 1\n", "line 2\n"])
    }

    @Test func cancellingTheTaskStopsTheTransfer() async throws {
        let server = try PythonHTTPServer()
        let url = server.baseURL + "/stream/1000"
        let task = Task { try await HTTPClient(timeout: nil).send(HTTPRequest(url: url)) }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        await #expect {
            try await task.value
        } throws: { error in
            if case CurlError.cancelled = error { return true }
            return false
        }
    }
}

@Suite("HTTPClient helpers")
struct HTTPClientHelperTests {
    @Test(arguments: [
        ("http://127.0.0.1:8080/x", true), ("http://127.0.0.2/", true), ("http://localhost/v1", true),
        ("http://[::1]:9000/", true), ("http://user@127.0.0.1/", true),
        ("https://ec2.us-east-1.amazonaws.com/", false), ("http://128.0.0.1/", false), ("nonsense", false),
    ])
    func loopbackURLsAreRecognised(url: String, loopback: Bool) {
        #expect(CurlTransfer.isLoopback(url) == loopback)
    }
}
