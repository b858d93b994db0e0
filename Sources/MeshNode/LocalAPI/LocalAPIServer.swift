import Foundation
public import Logging
import NIOCore
import NIOHTTP1
public import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The node's local API: HTTP/1.1 and JSON on the Unix socket `<stateDir>/node.sock` (mode 0600,
/// in a 0700 state directory), for the CLI.
///
/// `bind` claims the socket (removing a stale one, refusing if a node answers on it); `run` serves
/// until its task is cancelled, then closes the socket and removes its file.
public final class LocalAPIServer: Sendable {
    /// The socket's file name inside the state directory.
    public static let socketName = "node.sock"

    /// Limits of the server.
    public struct Configuration: Sendable {
        /// Request bodies larger than this get a 413.
        public var maxBodyBytes: Int

        public init(maxBodyBytes: Int = 1 << 20) {
            self.maxBodyBytes = maxBodyBytes
        }
    }

    public let socketPath: String
    let router: APIRouter
    let configuration: Configuration
    let logger: Logger
    private let serverChannel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>

    private init(
        socketPath: String, router: APIRouter, configuration: Configuration, logger: Logger,
        serverChannel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
    ) {
        self.socketPath = socketPath
        self.router = router
        self.configuration = configuration
        self.logger = logger
        self.serverChannel = serverChannel
    }

    /// Claims `<stateDirectory>/node.sock` and starts accepting (connections wait until `run`).
    ///
    /// - Throws: `LocalAPIError.alreadyRunning` if a node answers on the socket;
    ///   `LocalAPIError.cannotBind` if the socket cannot be made.
    public static func bind(
        stateDirectory: String,
        router: APIRouter,
        configuration: Configuration = Configuration(),
        logger: Logger,
        eventLoopGroup: MultiThreadedEventLoopGroup = .singleton
    ) async throws -> LocalAPIServer {
        do {
            try PrivateFiles.ensureDirectory(stateDirectory)
        } catch {
            throw LocalAPIError.cannotBind(path: stateDirectory, reason: error.description)
        }
        let socketPath = (stateDirectory.hasSuffix("/") ? stateDirectory : stateDirectory + "/") + socketName
        let address: SocketAddress
        do {
            address = try SocketAddress(unixDomainSocketPath: socketPath)
        } catch {
            throw LocalAPIError.cannotBind(
                path: socketPath,
                reason: "the path is too long for a Unix socket (\(socketPath.utf8.count) bytes); use a shorter WARREN_HOME"
            )
        }
        try await removeStaleSocket(at: socketPath, stateDirectory: stateDirectory, eventLoopGroup: eventLoopGroup)

        let serverChannel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
        do {
            serverChannel = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 64)
                .bind(to: address) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                            wrappingChannelSynchronously: channel
                        )
                    }
                }
        } catch {
            throw LocalAPIError.cannotBind(path: socketPath, reason: "\(error)")
        }
        // The directory is already 0700; 0600 on the socket keeps it private if the directory's mode
        // is ever loosened.
        if chmod(socketPath, 0o600) != 0 {
            let reason = String(cString: strerror(errno))
            try? await serverChannel.channel.close()
            throw LocalAPIError.cannotBind(path: socketPath, reason: "cannot set mode 0600: \(reason)")
        }
        logger.info("local API listening", metadata: ["api.socket": "\(socketPath)"])
        return LocalAPIServer(
            socketPath: socketPath, router: router, configuration: configuration, logger: logger,
            serverChannel: serverChannel
        )
    }

    /// Serves connections until the calling task is cancelled, then closes the socket and removes
    /// its file. Call once.
    ///
    /// Cancellation closes the listening socket; it does not reach the accept loop, which runs in a
    /// task of its own: a cancelled iterator would drop the connections NIO accepted and nobody took
    /// yet, and such a connection traps when it is deinited ("NIOAsyncWriter deinited without
    /// calling finish()", seen when nodes were stopped while answering the CLI). The loop hands
    /// every accepted connection to `serve` (whose `executeThenClose` closes it), then cuts those
    /// still open, such as a followed log.
    public func run() async throws {
        defer {
            unlink(socketPath)
            logger.info("local API closed", metadata: ["api.socket": "\(socketPath)"])
        }
        let accepting = Task { try await self.acceptUntilClosed() }
        try await withTaskCancellationHandler {
            try await accepting.value
        } onCancel: {
            serverChannel.channel.close(promise: nil)
        }
    }

    private func acceptUntilClosed() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            try await serverChannel.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask {
                        await self.serve(connection)
                    }
                }
            }
            group.cancelAll()
        }
    }

    /// A socket file that nothing accepts on is left by a node that died; one that accepts belongs to
    /// a running node, which must not be disturbed.
    private static func removeStaleSocket(
        at path: String, stateDirectory: String, eventLoopGroup: MultiThreadedEventLoopGroup
    ) async throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw LocalAPIError.cannotBind(path: path, reason: "a file that is not a socket is in the way; move it away")
        }
        let probe = try? await ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(.seconds(2))
            .connect(unixDomainSocketPath: path)
            .get()
        if let probe {
            try? await probe.close()
            throw LocalAPIError.alreadyRunning(stateDirectory: stateDirectory)
        }
        if unlink(path) != 0, errno != ENOENT {
            throw LocalAPIError.cannotBind(path: path, reason: "cannot remove the stale socket: \(String(cString: strerror(errno)))")
        }
    }
}

/// Why the local API could not start.
public enum LocalAPIError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Another node answers on the socket of this state directory.
    case alreadyRunning(stateDirectory: String)
    case cannotBind(path: String, reason: String)

    public var description: String {
        switch self {
        case .alreadyRunning(let stateDirectory):
            "a node is already running with state directory \(stateDirectory); stop it first, or set WARREN_HOME to another directory to run a second node"
        case .cannotBind(let path, let reason):
            "cannot open the local API socket \(path): \(reason)"
        }
    }
}
