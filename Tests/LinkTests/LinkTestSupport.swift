import Gossip
@testable import Link
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Collects what a stream channel reads, and whether its input closed.
final class CollectHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private let lock = NIOLock()
    private var bytes: [UInt8] = []
    let inputClosed: EventLoopPromise<[UInt8]>
    /// Echo what arrives, and half-close when the input closes.
    let echo: Bool

    init(eventLoop: any EventLoop, echo: Bool = false) {
        inputClosed = eventLoop.makePromise()
        self.echo = echo
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        lock.withLock { bytes += buffer.readableBytesView }
        if echo { context.writeAndFlush(data, promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed.succeed(lock.withLock { bytes })
            if echo { context.close(mode: .output, promise: nil) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        inputClosed.fail(LinkError.closed)
        context.fireChannelInactive()
    }
}

/// Two endpoints on loopback: `server` listens (echoing streams), `client` dials it.
struct LinkPair {
    let server: LinkEndpoint
    let client: LinkEndpoint
    let port: Int
    let serverIdentity: NodeIdentity
    let clientIdentity: NodeIdentity

    static func make(
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

    func shutdown() async {
        await client.shutdown()
        await server.shutdown()
    }
}

/// Opens a plain TCP connection to `port`, writes `bytes`, and returns when the server closes it.
func rawConnection(port: Int, writing bytes: [UInt8], closeAfterWrite: Bool = false) async throws {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port).get()
    // The server may close first (a short handshake timeout on a loaded machine): what these
    // tests wait for anyway, so a write that finds the connection closed is no failure.
    try? await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    if closeAfterWrite { try? await channel.close(mode: .output).get() }
    try await channel.closeFuture.get()
}

/// Checks `condition` every 20 ms for up to `seconds`; whether it came to hold.
func eventually(within seconds: Double, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}
