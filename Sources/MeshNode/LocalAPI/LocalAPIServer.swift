import Foundation
public import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
public import NIOPosix
public import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The node's local API: HTTP/1.1 and JSON on the Unix socket `<stateDir>/node.sock` (mode 0600,
/// in a 0700 state directory), for the CLI.
///
/// `bind` claims the socket (removing a stale one, refusing if a node answers on it); `run` serves
/// until graceful shutdown (or cancellation), then closes the socket and removes its file.
public final class LocalAPIServer: Service {
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
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    private let serverChannel: NIOAsyncChannel<Connection, Never>
    private let accepted: AcceptedConnections

    private init(
        socketPath: String, router: APIRouter, configuration: Configuration, logger: Logger,
        serverChannel: NIOAsyncChannel<Connection, Never>, accepted: AcceptedConnections
    ) {
        self.socketPath = socketPath
        self.router = router
        self.configuration = configuration
        self.logger = logger
        self.serverChannel = serverChannel
        self.accepted = accepted
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

        let serverChannel: NIOAsyncChannel<Connection, Never>
        let accepted = AcceptedConnections()
        do {
            serverChannel = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 64)
                .bind(to: address) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        do {
                            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                            return try accepted.wrap(channel)
                        } catch {
                            // NIO neither registers nor closes a connection whose initializer
                            // failed (the server's async wrapping only drops it): unclosed, its
                            // socket would stay open, unread, for the life of the process.
                            channel.close(promise: nil)
                            throw error
                        }
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
            serverChannel: serverChannel, accepted: accepted
        )
    }

    /// Serves connections until graceful shutdown or cancellation, then stops in order: no new
    /// connection is wrapped, the listening socket closes, every connection accepted and not yet
    /// taken by the accept loop is finished and closed, those being served end (a followed log is
    /// cut), and the socket file is removed. Call once.
    ///
    /// NIO wraps an accepted connection in the listening channel's child initializer and hands it
    /// to the listener's inbound sequence; once that sequence has ended (the listener closed, or
    /// its iterator cancelled) a connection handed to it is dropped, and a wrapped connection
    /// dropped before its writer finished traps in `channelActive` ("Deinited NIOAsyncWriter
    /// without calling finish()"). `AcceptedConnections` owns every wrapped connection until the
    /// loop takes it, so none is ever dropped.
    public func run() async throws {
        defer {
            unlink(socketPath)
            logger.info("local API closed", metadata: ["api.socket": "\(socketPath)"])
        }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                try await withThrowingDiscardingTaskGroup { serving in
                    defer { serving.cancelAll() }
                    try await self.serverChannel.executeThenClose { connections in
                        for try await connection in connections where self.accepted.take(connection) {
                            serving.addTask { await self.serve(connection) }
                        }
                    }
                }
            }
            // Graceful shutdown returns; cancellation throws: both stop the server the same way.
            try? await gracefulShutdown()
            let waiting = accepted.stop()
            try? await serverChannel.channel.close()
            for connection in waiting {
                try? await connection.executeThenClose { _, _ in }
            }
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

/// The connections NIO accepted and wrapped for the accept loop, until the loop takes them. After
/// `stop` no connection is wrapped: the child initializer fails and closes it.
final class AcceptedConnections: Sendable {
    private struct State {
        var open = true
        var waiting: [ObjectIdentifier: LocalAPIServer.Connection] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// Wraps an accepted connection (on its event loop, in the child initializer) and keeps it
    /// until `take` or `stop`. Throws once stopped.
    func wrap(_ channel: any Channel) throws -> LocalAPIServer.Connection {
        try state.withLockedValue { state in
            guard state.open else { throw ChannelError.ioOnClosedChannel }
            let connection = try LocalAPIServer.Connection(wrappingChannelSynchronously: channel)
            state.waiting[ObjectIdentifier(channel)] = connection
            return connection
        }
    }

    /// True when the accept loop is to serve `connection`; false when `stop` already took it.
    func take(_ connection: LocalAPIServer.Connection) -> Bool {
        state.withLockedValue { $0.waiting.removeValue(forKey: ObjectIdentifier(connection.channel)) != nil }
    }

    /// Refuses further connections and returns those nobody took, for the caller to close.
    func stop() -> [LocalAPIServer.Connection] {
        state.withLockedValue { state in
            state.open = false
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
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
