public import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A local HTTP/1.1 server standing in for a cloud API: each request is recorded and answered by
/// the test's `respond` closure, which also checks the request's shape.
public final class ProvisioningFakeCloud: Sendable {
    public struct Request: Sendable {
        public let method: String
        public let uri: String
        public let headers: [String: String]
        public let body: [UInt8]

        public var path: String { String(uri.split(separator: "?", maxSplits: 1).first ?? "") }
        public var query: [String: String] {
            guard let q = uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return [:] }
            return Dictionary(q.split(separator: "&").map { pair in
                let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
                return (parts[0], parts.count > 1 ? parts[1] : "")
            }, uniquingKeysWith: { a, _ in a })
        }
        public var form: [String: String] {
            Dictionary(String(decoding: body, as: UTF8.self).split(separator: "&").map { pair in
                let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
                return (parts[0], parts.count > 1 ? parts[1] : "")
            }, uniquingKeysWith: { a, _ in a })
        }
        public var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] }
    }

    public struct Response: Sendable {
        public var status: Int
        public var body: String
        public var headers: [(String, String)] = []

        public init(status: Int, body: String, headers: [(String, String)] = []) {
            self.status = status
            self.body = body
            self.headers = headers
        }

        public static func json(_ status: Int, _ object: [String: Any]) -> Response {
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return Response(status: status, body: String(decoding: data, as: UTF8.self), headers: [("Content-Type", "application/json")])
        }
    }

    private final class Recorder: Sendable {
        let requests = Mutex<[Request]>([])
    }

    private let channel: any Channel
    private let recorded = Recorder()
    /// `http://127.0.0.1:PORT`
    public let url: String

    public var requests: [Request] { recorded.requests.withLock { $0 } }

    public init(respond: @escaping @Sendable (Request) -> Response) async throws {
        let recorded = self.recorded
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler { request in
                        recorded.requests.withLock { $0.append(request) }
                        return respond(request)
                    })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        url = "http://127.0.0.1:\(channel.localAddress?.port ?? 0)"
    }

    public func shutdown() async {
        try? await channel.close()
    }

    fileprivate final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let respond: (Request) -> Response
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        init(respond: @escaping (Request) -> Response) { self.respond = respond }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                head = h
                body = []
            case .body(var buffer):
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                guard let head else { return }
                let headers = Dictionary(head.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
                let response = respond(Request(method: head.method.rawValue, uri: head.uri, headers: headers, body: body))
                var responseHeaders = HTTPHeaders(response.headers)
                responseHeaders.add(name: "Content-Length", value: String(response.body.utf8.count))
                let responseHead = HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: response.status), headers: responseHeaders)
                context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: response.body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

@available(*, unavailable)
extension ProvisioningFakeCloud.Handler: Sendable {}
