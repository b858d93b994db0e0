import Foundation
import Logging
import NIOCore
import NIOHTTP1

extension LocalAPIServer {
    /// Reads requests from one connection and answers them in order, until the client closes,
    /// asks to close, or breaks the protocol.
    func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let newHead):
                        head = newHead
                        body.clear()
                        if let length = newHead.headers.first(name: "content-length").flatMap(Int.init),
                           length > configuration.maxBodyBytes {
                            try await refuseLargeBody(outbound)
                            return
                        }
                        // curl asks before sending bodies over 1 KiB and would wait a second.
                        if newHead.headers["expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                            try await outbound.write(.head(HTTPResponseHead(version: newHead.version, status: .continue)))
                        }
                    case .body(var chunk):
                        if body.readableBytes + chunk.readableBytes > configuration.maxBodyBytes {
                            try await refuseLargeBody(outbound)
                            return
                        }
                        body.writeBuffer(&chunk)
                    case .end:
                        guard let requestHead = head else { continue }
                        head = nil
                        let request = Self.makeRequest(requestHead, body: body)
                        let response = await router.respond(to: request)
                        logger.debug("local API request", metadata: [
                            "api.method": "\(request.method)", "api.path": "\(request.path)",
                            "api.status": "\(response.status)",
                        ])
                        let keepAlive = requestHead.isKeepAlive
                        try await write(response, version: requestHead.version, keepAlive: keepAlive, to: outbound, on: connection.channel)
                        if !keepAlive { return }
                    }
                }
            }
        } catch {
            // A client that goes away mid-response is normal (Ctrl-C on `logs -f`).
            logger.debug("local API connection ended", metadata: ["api.error": "\(error)"])
        }
    }

    /// The request the router sees; internal so the fuzz target parses requests the same way.
    static func makeRequest(_ head: HTTPRequestHead, body: ByteBuffer) -> APIRequest {
        let uri = head.uri
        let (path, queryString) = uri.firstIndex(of: "?").map { (String(uri[..<$0]), String(uri[uri.index(after: $0)...])) }
            ?? (uri, "")
        var query: [String: String] = [:]
        for pair in queryString.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).replacingOccurrences(of: "+", with: " ")
            let value = parts.count > 1 ? String(parts[1]).replacingOccurrences(of: "+", with: " ") : ""
            query[name.removingPercentEncoding ?? name] = value.removingPercentEncoding ?? value
        }
        var headers: [String: String] = [:]
        for (name, value) in head.headers {
            headers[name.lowercased()] = value
        }
        return APIRequest(
            method: head.method.rawValue, path: path, query: query, headers: headers,
            body: Data(body.readableBytesView)
        )
    }

    private func refuseLargeBody(_ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        let response = APIResponse.error(APIError(
            status: 413, "the request body is larger than the limit of \(configuration.maxBodyBytes) bytes"
        ))
        try await write(response, version: .http1_1, keepAlive: false, to: outbound, on: nil)
    }

    private func write(
        _ response: APIResponse, version: HTTPVersion, keepAlive: Bool,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, on channel: (any Channel)?
    ) async throws {
        var headers = HTTPHeaders()
        for (name, value) in response.headers.sorted(by: { $0.key < $1.key }) {
            headers.add(name: name, value: value)
        }
        headers.replaceOrAdd(name: "connection", value: keepAlive ? "keep-alive" : "close")
        let status = HTTPResponseStatus(statusCode: response.status)

        switch response.body {
        case .bytes(let data):
            headers.replaceOrAdd(name: "content-length", value: String(data.count))
            try await outbound.write(.head(HTTPResponseHead(version: version, status: status, headers: headers)))
            if !data.isEmpty {
                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: data))))
            }
            try await outbound.write(.end(nil))

        case .stream(let produce):
            headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
            try await outbound.write(.head(HTTPResponseHead(version: version, status: status, headers: headers)))
            let writer = ChunkWriter { chunk in
                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: chunk))))
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await produce(writer) }
                if let channel {
                    // A follower writes nothing while it waits for new output; without this it
                    // would outlive a client that went away. (Polled: a close future cannot be
                    // cancelled once the body is done.)
                    group.addTask {
                        while channel.isActive {
                            try await Task.sleep(for: .milliseconds(200))
                        }
                        throw ChannelError.ioOnClosedChannel
                    }
                }
                try await group.next()
                group.cancelAll()
            }
            try await outbound.write(.end(nil))
        }
    }
}
