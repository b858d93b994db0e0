// A minimal HTTP server for the tests: answers GET /.well-known/acme-challenge/TOKEN as an HTTP-01
// responder, and any other path as a small app that tells what it saw.

import Acme
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

final class ChallengeServer: AcmeChallengeResponder, @unchecked Sendable {
    let tokens = NIOLockedValueBox<[String: String]>([:])
    /// Names the CA asked about, in order, and how many answers were fetched.
    let fetched = NIOLockedValueBox<Int>(0)
    private var channel: (any Channel)?

    func publish(token: String, keyAuthorization: String, for name: String) async {
        self.tokens.withLockedValue { $0[token] = keyAuthorization }
    }

    func withdraw(token: String) async {
        self.tokens.withLockedValue { $0[token] = nil }
    }

    func start(host: String, port: Int) async throws {
        let tokens = self.tokens
        let fetched = self.fetched
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(tokens: tokens, fetched: fetched))
                }
            }
            .bind(host: host, port: port).get()
    }

    func stop() async {
        try? await self.channel?.close()
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let tokens: NIOLockedValueBox<[String: String]>
        let fetched: NIOLockedValueBox<Int>
        var path = ""
        var proto = ""
        init(tokens: NIOLockedValueBox<[String: String]>, fetched: NIOLockedValueBox<Int>) {
            self.tokens = tokens
            self.fetched = fetched
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.path = head.uri
                self.proto = head.headers.first(name: "x-forwarded-proto") ?? "none"
            case .body: break
            case .end:
                let prefix = "/.well-known/acme-challenge/"
                let isChallenge = self.path.hasPrefix(prefix)
                let token = isChallenge ? String(self.path.dropFirst(prefix.count)) : ""
                let answer = self.tokens.withLockedValue { $0[token] }
                if answer != nil { self.fetched.withLockedValue { $0 += 1 } }
                let body = isChallenge ? (answer ?? "no such token\n") : "hello from the app; proto=\(self.proto) path=\(self.path)\n"
                var headers = HTTPHeaders([("content-type", "text/plain"), ("content-length", "\(body.utf8.count)")])
                headers.add(name: "connection", value: "close")
                let status: HTTPResponseStatus = isChallenge && answer == nil ? .notFound : .ok
                context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                let channel = context.channel
                context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}
