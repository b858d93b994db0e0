import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import ServiceLifecycle
import Provisioning
import Sodium

/// Serves the release this node was installed from to the gateways being made, so that only the
/// first cloud gateway of a mesh needs a release URL the user hosts. `GET /release/<sha256>`
/// answers the tarball only when its SHA-256 is the one asked for: a gateway fetches by hash, and
/// its first boot checks the hash again before installing. Plain HTTP: the hash, which the
/// creating node puts in the first-boot script, is what makes the download trustworthy.
public struct ReleaseServer: Service {
    /// A release a node can serve: the tarball's bytes and their SHA-256 (64 hex digits).
    public struct Release: Sendable {
        public var sha256: String
        var bytes: ByteBuffer

        public init(bytes: [UInt8]) {
            self.sha256 = ReleaseServer.hex(SHA256.hash(bytes))
            self.bytes = ByteBuffer(bytes: bytes)
        }

        public var size: Int { bytes.readableBytes }
    }

    /// Why a node does not serve its release.
    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The tarball a first boot kept (`release.tar.gz` in the state directory) if its SHA-256 is
    /// the one the first boot recorded and checked (`release.sha256`); nil when there is none.
    public static func installed(stateDirectory: String) throws(Unavailable) -> Release? {
        let directory = URL(fileURLWithPath: stateDirectory)
        let tarball = directory.appendingPathComponent(FirstBootScript.releaseTarballFile).path
        guard FileManager.default.fileExists(atPath: tarball) else { return nil }
        guard let data = FileManager.default.contents(atPath: tarball) else {
            throw Unavailable(description: "the release \(tarball) can't be read; check its permissions")
        }
        let release = Release(bytes: Array(data))
        let recorded = (try? String(contentsOfFile: directory.appendingPathComponent(FirstBootScript.releaseSHA256File).path, encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        guard let recorded else {
            throw Unavailable(description: "the release \(tarball) has no \(FirstBootScript.releaseSHA256File) beside it to check it against; write its SHA-256 there")
        }
        guard recorded == release.sha256 else {
            throw Unavailable(description: "the release \(tarball) has SHA-256 \(release.sha256), not the \(recorded) recorded in \(FirstBootScript.releaseSHA256File): it changed since it was installed; it is not served")
        }
        return release
    }

    /// The path a release is served at.
    public static func path(sha256: String) -> String { "/release/\(sha256)" }

    private let channel: any Channel
    public let release: Release

    public static func bind(host: String, port: Int, release: Release, logger: Logger) async throws -> ReleaseServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(release: release))
                }
            }
            .bind(host: host, port: port).get()
        logger.info("release served", metadata: [
            "release.address": "\(HostPort.format(host, channel.localAddress?.port ?? port))", "release.sha256": "\(release.sha256)",
        ])
        return ReleaseServer(channel: channel, release: release)
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

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let release: Release
        private var head: HTTPRequestHead?

        init(release: Release) {
            self.release = release
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): head = h
            case .body: break
            case .end:
                guard let head else { return }
                let wanted = ReleaseServer.path(sha256: release.sha256)
                let found = (head.method == .GET || head.method == .HEAD) && head.uri == wanted
                var headers = HTTPHeaders()
                let body: ByteBuffer
                if found {
                    body = release.bytes
                    headers.add(name: "content-type", value: "application/gzip")
                } else {
                    // Another hash is another release: this node has only the one it runs.
                    body = ByteBuffer(string: head.uri.hasPrefix("/release/")
                        ? "not found: this node serves only the release with SHA-256 \(release.sha256)\n"
                        : "not found: the release is at \(wanted)\n")
                    headers.add(name: "content-type", value: "text/plain; charset=utf-8")
                }
                headers.add(name: "content-length", value: String(body.readableBytes))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: found ? .ok : .notFound, headers: headers))), promise: nil)
                if head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                self.head = nil
            }
        }
    }
}

@available(*, unavailable)
extension ReleaseServer.Handler: Sendable {}
