package import Gossip
package import Link
import NIOConcurrencyHelpers
package import NIOCore
package import NIOPosix

// Helpers for tests of links, shared by LinkTests and MeshNodeTests.

/// Collects what a stream channel reads, and whether its input closed.
package final class CollectHandler: ChannelInboundHandler, @unchecked Sendable {
    package typealias InboundIn = ByteBuffer

    private let lock = NIOLock()
    private var bytes: [UInt8] = []
    package let inputClosed: EventLoopPromise<[UInt8]>
    /// Echo what arrives, and half-close when the input closes.
    package let echo: Bool

    package init(eventLoop: any EventLoop, echo: Bool = false) {
        inputClosed = eventLoop.makePromise()
        self.echo = echo
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        lock.withLock { bytes += buffer.readableBytesView }
        if echo { context.writeAndFlush(data, promise: nil) }
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed.succeed(lock.withLock { bytes })
            if echo { context.close(mode: .output, promise: nil) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    package func channelInactive(context: ChannelHandlerContext) {
        inputClosed.fail(LinkError.closed)
        context.fireChannelInactive()
    }
}

/// Two endpoints on loopback: `server` listens (echoing streams), `client` dials it.
package struct LinkPair {
    package let server: LinkEndpoint
    package let client: LinkEndpoint
    package let port: Int
    package let serverIdentity: NodeIdentity
    package let clientIdentity: NodeIdentity

    package static func make(
        configuration: LinkConfiguration = .init(), serverMesh: String = "mesh-a", clientMesh: String = "mesh-a",
        acceptStream: LinkStreamAcceptor? = nil
    ) async throws -> LinkPair {
        let serverIdentity = NodeIdentity.generate()
        let clientIdentity = NodeIdentity.generate()
        let server = LinkEndpoint(
            identity: serverIdentity, meshID: serverMesh, configuration: configuration,
            acceptStream: acceptStream ?? { _, stream in
                do {
                    try await stream.channel.pipeline.addHandler(CollectHandler(eventLoop: stream.channel.eventLoop, echo: true))
                    return 200
                } catch {
                    return 500
                }
            })
        let client = LinkEndpoint(identity: clientIdentity, meshID: clientMesh, configuration: configuration)
        let port = try await server.listen(host: "127.0.0.1", port: 0)
        return LinkPair(server: server, client: client, port: port, serverIdentity: serverIdentity, clientIdentity: clientIdentity)
    }

    package func shutdown() async {
        await client.shutdown()
        await server.shutdown()
    }
}

/// Opens a plain TCP connection to `port`, writes `bytes`, and returns when the server closes it.
package func rawConnection(port: Int, writing bytes: [UInt8], closeAfterWrite: Bool = false) async throws {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port).get()
    // The server may close first (a short handshake timeout on a loaded machine): what these
    // tests wait for anyway, so a write that finds the connection closed is no failure.
    try? await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    if closeAfterWrite { try? await channel.close(mode: .output).get() }
    try await channel.closeFuture.get()
}

/// Checks `condition` every 20 ms for up to `seconds`; whether it came to hold.
package func eventually(within seconds: Double, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}
