import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal HTTP/1.1 client over a Unix socket, for talking to the local API in tests.
struct TestHTTPConnection {
    struct Response {
        var head: HTTPResponseHead
        var body: Data
        var status: Int { Int(head.status.code) }
        var errorMessage: String? {
            (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["error"] as? String
        }
    }

    var inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

    static func with<R>(
        socketPath: String, _ body: (inout TestHTTPConnection) async throws -> R
    ) async throws -> R {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(unixDomainSocketPath: socketPath) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel
                    )
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var connection = TestHTTPConnection(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            return try await body(&connection)
        }
    }

    /// One request on a new connection.
    static func request(
        socketPath: String, _ method: HTTPMethod, _ uri: String, body: Data? = nil
    ) async throws -> Response {
        try await with(socketPath: socketPath) { connection in
            try await connection.send(method, uri, body: body)
            return try await connection.response()
        }
    }

    func send(_ method: HTTPMethod, _ uri: String, body: Data? = nil, headers extra: [(String, String)] = []) async throws {
        var headers = HTTPHeaders([("host", "localhost")] + extra)
        if let body {
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(body.count))
        }
        try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)))
        if let body, !body.isEmpty {
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
        }
        try await outbound.write(.end(nil))
    }

    mutating func readHead() async throws -> HTTPResponseHead {
        while let part = try await inbound.next() {
            if case .head(let head) = part { return head }
        }
        throw TestClientError.closedEarly
    }

    /// The next body chunk, or nil at the end of the response.
    mutating func readChunk() async throws -> Data? {
        while let part = try await inbound.next() {
            switch part {
            case .head: continue
            case .body(let buffer): return Data(buffer.readableBytesView)
            case .end: return nil
            }
        }
        throw TestClientError.closedEarly
    }

    mutating func response() async throws -> Response {
        let head = try await readHead()
        var body = Data()
        while let chunk = try await readChunk() {
            body.append(chunk)
        }
        return Response(head: head, body: body)
    }
}

enum TestClientError: Error {
    case closedEarly
}
