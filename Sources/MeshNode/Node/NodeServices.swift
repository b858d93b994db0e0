import AsyncAlgorithms
import ServiceLifecycle

// The node's parts as services of one `ServiceGroup` (`NodeAgent.services`): each runs until the
// group's graceful shutdown reaches it, then stops its part and returns, so the part started
// before it stops only after it.

/// A part with nothing to run (a socket, a listener): it waits for graceful shutdown, then stops.
struct StopStep: Service, CustomStringConvertible {
    let description: String
    let stop: @Sendable () async -> Void

    init(_ description: String, stop: @escaping @Sendable () async -> Void) {
        self.description = description
        self.stop = stop
    }

    func run() async {
        // Cancellation (the group failing) stops the part the same way.
        try? await gracefulShutdown()
        await stop()
    }
}

/// Work that runs until it ends or graceful shutdown cancels it, then a stop step.
struct UntilShutdown: Service, CustomStringConvertible {
    let description: String
    let body: @Sendable () async throws -> Void
    let stop: @Sendable () async -> Void

    init(_ description: String, _ body: @escaping @Sendable () async throws -> Void, then stop: @escaping @Sendable () async -> Void = {}) {
        self.description = description
        self.body = body
        self.stop = stop
    }

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown(body)
        } catch is CancellationError {
            // Graceful shutdown cancelled the work: what follows is the stop step.
        }
        await stop()
    }
}

/// Work done every `interval` (and at once, with `now`) until graceful shutdown.
struct Periodic: Service, CustomStringConvertible {
    let description: String
    let interval: Duration
    let now: Bool
    let work: @Sendable () async -> Void

    init(_ description: String, every interval: Duration, now: Bool = false, work: @escaping @Sendable () async -> Void) {
        self.description = description
        self.interval = interval
        self.now = now
        self.work = work
    }

    func run() async {
        if now { await work() }
        for await _ in AsyncTimerSequence(interval: interval, clock: .continuous).cancelOnGracefulShutdown() {
            await work()
        }
    }
}

/// Gossip: the state machine's ticks, the datagrams the socket receives and the messages that go
/// over links, until graceful shutdown; then the node leaves the mesh, and the service returns
/// once the departure is sent.
struct MeshService: Service, CustomStringConvertible {
    let mesh: MeshState
    var description: String { "gossip" }

    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await mesh.run() }
            group.addTask { await mesh.receiveDatagrams() }
            group.addTask { await mesh.sendOverLinks() }
            try? await gracefulShutdown()
            await mesh.leave()
            group.cancelAll()
        }
    }
}

/// The streams peers open on links, answered by the router until graceful shutdown.
struct StreamRouterService: Service, CustomStringConvertible {
    let inbox: StreamInbox
    let router: StreamRouter
    var description: String { "link streams" }

    func run() async {
        await inbox.run(router)
    }
}
