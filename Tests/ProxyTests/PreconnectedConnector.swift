// The fastest upstream there can be: connections made in advance, handed out at once.

import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import Proxy

/// An `UpstreamConnector` whose `connect` succeeds synchronously with a connection to `app` made in
/// advance on `eventLoop`. With the gateway on that same loop, the splice is attached in the very
/// call that starts it (see `UpstreamStartHandler`).
final class PreconnectedConnector: UpstreamConnector {
    private let channels: NIOLockedValueBox<[any Channel]>

    private init(channels: [any Channel]) {
        self.channels = NIOLockedValueBox(channels)
    }

    static func make(to app: TestServer, on eventLoop: any EventLoop, count: Int) async throws -> PreconnectedConnector {
        var channels: [any Channel] = []
        for _ in 0..<count {
            channels.append(
                try await ClientBootstrap(group: eventLoop)
                    .channelOption(.allowRemoteHalfClosure, value: true)
                    .connect(host: "127.0.0.1", port: app.port)
                    .get()
            )
        }
        return PreconnectedConnector(channels: channels)
    }

    func connect(
        to route: Route,
        clientAddress: SocketAddress?,
        serverAddress: SocketAddress?,
        on eventLoop: any EventLoop,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel> {
        guard let channel = self.channels.withLockedValue({ $0.popLast() }), channel.eventLoop === eventLoop else {
            return eventLoop.makeFailedFuture(ProxyError.upstreamNotConnected(route))
        }
        return initializer(channel).map { channel }
    }
}
