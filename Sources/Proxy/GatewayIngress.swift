// The gateway's public side: one listener per bound address, kept in step with the routing table.

public import Logging
import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix

/// Listens on the addresses of a `RoutingTable` and routes each accepted connection: exclusive
/// bindings are spliced, host-routed ones are proxied by HTTP Host or routed by TLS SNI.
///
/// Feed it with `apply(_:)` whenever the table changes; connections already established keep
/// going when their binding is removed.
public actor GatewayIngress {
    private let group: any EventLoopGroup
    private let connector: any UpstreamConnector
    private let configuration: ProxyConfiguration
    private let logger: Logger
    private let limits: ConnectionLimits
    private let table = NIOLockedValueBox(RoutingTable())
    private var listeners: [ListenAddress: any Channel] = [:]

    public init(
        group: any EventLoopGroup,
        connector: any UpstreamConnector,
        configuration: ProxyConfiguration = .init(),
        logger: Logger = Logger(label: "warren.proxy")
    ) {
        self.group = group
        self.connector = connector
        self.configuration = configuration
        self.logger = logger
        self.limits = ConnectionLimits(configuration: configuration)
    }

    /// Connections held now and those the caps refused so far.
    public nonisolated var connectionCounts: ConnectionLimitsSnapshot { self.limits.snapshot }

    /// Makes the listeners match `table`: new addresses are bound, removed ones closed, and new
    /// connections see the new routes at once. Returns the addresses that could not be bound
    /// (the others are applied regardless).
    @discardableResult
    public func apply(_ table: RoutingTable) async -> [ProxyError] {
        // One apply at a time, in the order they were called. The actor alone would interleave
        // them at each await: a port released by one (its listener still closing) and taken again
        // by the next would be bound before the close completed, and refused as in use.
        let previous = self.lastApply
        let applying = Task { [previous] in
            _ = await previous?.value
            return await self.applyNow(table)
        }
        self.lastApply = applying
        return await applying.value
    }

    /// The apply in progress or last done; the next waits for it.
    private var lastApply: Task<[ProxyError], Never>?

    private func applyNow(_ table: RoutingTable) async -> [ProxyError] {
        self.table.withLockedValue { $0 = table }
        for (address, listener) in self.listeners where table.bindings[address] == nil {
            self.listeners[address] = nil
            try? await listener.close()
            self.logger.info("stopped listening", metadata: ["listen.address": "\(address)"])
        }
        var failures: [ProxyError] = []
        for address in table.bindings.keys.sorted(by: { $0.description < $1.description })
        where self.listeners[address] == nil {
            do {
                self.listeners[address] = try await self.bind(address)
                self.logger.info("listening", metadata: ["listen.address": "\(address)"])
            } catch {
                failures.append(.bindFailed(address, reason: "\(error)"))
            }
        }
        return failures
    }

    /// The socket address a listener actually got (useful when the table asked for port 0).
    public func localAddress(of address: ListenAddress) -> SocketAddress? {
        self.listeners[address]?.localAddress
    }

    /// The addresses listened on now.
    public var listening: Set<ListenAddress> { Set(self.listeners.keys) }

    /// Closes every listener (established connections are left to finish).
    public func shutdown() async {
        for listener in self.listeners.values { try? await listener.close() }
        self.listeners = [:]
    }

    private func bind(_ address: ListenAddress) async throws -> any Channel {
        let context = IngressContext(
            address: address,
            table: self.table,
            connector: self.connector,
            configuration: self.configuration,
            limits: self.limits,
            logger: self.logger
        )
        return try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: self.configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.recvAllocator, value: SpliceSocket.receiveAllocator)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try IngressPipeline.configure(channel, context: context)
                }
            }
            .bind(host: address.host == "*" ? "0.0.0.0" : address.host, port: address.port)
            .get()
    }
}
