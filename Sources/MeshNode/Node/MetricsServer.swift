public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import ServiceLifecycle

/// Serves `GET /metrics` (Prometheus text format) on an address of the operator's choice; off
/// unless `warren node start --metrics ADDR:PORT`.
public struct MetricsServer: Service {
    public typealias Emit = @Sendable () -> [UInt8]

    private let channel: any Channel

    public static func bind(host: String, port: Int, emit: @escaping Emit, logger: Logger) async throws -> MetricsServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(emit: emit))
                }
            }
            .bind(host: host, port: port).get()
        logger.info("metrics served", metadata: ["metrics.address": "\(host):\(channel.localAddress?.port ?? port)"])
        return MetricsServer(channel: channel)
    }

    public var port: Int? { channel.localAddress?.port }

    public func close() async {
        try? await channel.close()
    }

    /// Serves until graceful shutdown (or cancellation), then closes the listening socket. Its
    /// connections are plain NIO handlers that answer one request and need no draining; one
    /// still open ends when its client closes it.
    public func run() async {
        try? await gracefulShutdown()
        await close()
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let emit: Emit
        private var path = ""

        init(emit: @escaping Emit) {
            self.emit = emit
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): path = head.uri
            case .body: break
            case .end:
                let found = path == "/metrics" || path.hasPrefix("/metrics?")
                let body = found ? emit() : Array("not found: metrics are at /metrics\n".utf8)
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: found ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
                headers.add(name: "content-length", value: String(body.count))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: found ? .ok : .notFound, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

@available(*, unavailable)
extension MetricsServer.Handler: Sendable {}
