import Gossip
import NIOConcurrencyHelpers
@testable import Link
import LinkTestSupport
import NIOCore
import NIOPosix
import Testing

/// Calls over a link as the node makes them (gossip, leases), answered by a `LinkRPCServer`.
@Suite(.timeLimit(.minutes(1)))
struct LinkRPCTests {
    /// Runs `body` while `server` serves, then finishes the server and waits for its `run` to
    /// return: a call the server left running would hold the test until its time limit.
    static func serving<T: Sendable>(_ server: LinkRPCServer, _ body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await server.run() }
            let result: T
            do {
                result = try await body()
            } catch {
                server.finish()
                throw error
            }
            server.finish()
            try await group.waitForAll()
            return result
        }
    }

    /// A promise that the test fulfils to let held handlers answer.
    static func gate() -> EventLoopPromise<Void> {
        MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
    }

    /// Gossip calls carry empty answers, several at once on one link. Each used to be sent as an
    /// empty DATA frame before the half-close, and NIOHTTP2 closes a connection on the second
    /// empty DATA frame in a row: the link dropped, and a lease call on it failed with Closed().
    @Test func concurrentEmptyCallsKeepTheLinkUp() async throws {
        let server = LinkRPCServer()
        let pair = try await LinkPair.make(acceptStream: { _, stream in
            await server.serve(stream) { _ in
                try? await Task.sleep(for: .milliseconds(20))
                return []
            }
        })
        try await Self.serving(server) {
            let link = try await pair.client.dial(host: "127.0.0.1", port: pair.port, expecting: pair.serverIdentity.id)
            let answers = try await withThrowingTaskGroup(of: [UInt8].self) { group in
                for _ in 0..<20 { group.addTask { try await LinkRPC.call(link, path: "/gossip", body: []) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers == Array(repeating: [], count: 20))
            // A call with a body still gets its answer on the same link.
            let echoed = try await LinkRPC.call(link, path: "/gossip", body: [1, 2, 3])
            #expect(echoed == [])
            #expect(link.isActive)
            #expect(server.refusedCalls == 0)
            await pair.shutdown()
        }
    }

    /// Where the answering side closes things during a call.
    enum ServerStep: String, CaseIterable, Sendable {
        case streamClosedBeforeServe, linkClosedBeforeServe, streamClosedWhileHandling, linkClosedWhileHandling
    }

    /// A stream or link that closes at any step of serving a call: the call fails (it does not
    /// hang, and no promise is left uncompleted, which a debug build would trap on), and the
    /// server reports the failure when the call came too late to be taken.
    @Test(arguments: ServerStep.allCases)
    func answeringSideClosesAtEachStep(_ step: ServerStep) async throws {
        let calls = LinkRPCServer()
        let statuses = NIOLockedValueBox<[Int]>([])
        let server = NIOLockedValueBox<LinkEndpoint?>(nil)
        @Sendable func closeLink(to peer: NodeID) async {
            for link in server.withLockedValue({ $0 })?.links ?? [] where link.peer == peer { await link.close() }
        }
        let pair = try await LinkPair.make(acceptStream: { _, stream in
            switch step {
            case .streamClosedBeforeServe: try? await stream.channel.close()
            case .linkClosedBeforeServe: await closeLink(to: stream.peer)
            default: break
            }
            let status = await calls.serve(stream) { request in
                switch step {
                case .streamClosedWhileHandling: try? await stream.channel.close()
                case .linkClosedWhileHandling: await closeLink(to: stream.peer)
                default: break
                }
                return request
            }
            statuses.withLockedValue { $0.append(status) }
            return status
        })
        server.withLockedValue { $0 = pair.server }
        try await Self.serving(calls) {
            let link = try await pair.client.dial(host: "127.0.0.1", port: pair.port, expecting: pair.serverIdentity.id)
            // The timeout is far beyond the suite's time limit: a call that only ends by it hangs.
            await #expect(throws: (any Error).self) {
                _ = try await LinkRPC.call(link, path: "/gossip", body: [1, 2, 3], timeout: .seconds(600))
            }
            if step == .streamClosedBeforeServe || step == .linkClosedBeforeServe {
                #expect(await eventually(within: 10) { statuses.withLockedValue { $0 } == [500] })
            }
            await pair.shutdown()
        }
    }

    /// Where the calling side gives up or loses the link during a call.
    enum ClientStep: String, CaseIterable, Sendable {
        case linkClosedBeforeCall, linkClosedWhileWaiting, callCancelled, timeout
    }

    /// The caller's side of the same: each way of ending a call early fails it promptly, and the
    /// answering side, which never answers here, is left with nothing running once the link is
    /// gone (`serving` waits for that).
    @Test(arguments: ClientStep.allCases)
    func callingSideEndsAtEachStep(_ step: ClientStep) async throws {
        let (started, starting) = AsyncStream.makeStream(of: Void.self)
        let server = LinkRPCServer()
        let pair = try await LinkPair.make(acceptStream: { _, stream in
            await server.serve(stream) { _ in
                starting.yield()
                // Never answers while the test runs: it ends when the link's close cancels it.
                try? await Task.sleep(for: .seconds(600))
                return [9]
            }
        })
        try await Self.serving(server) {
            let link = try await pair.client.dial(host: "127.0.0.1", port: pair.port, expecting: pair.serverIdentity.id)
            if step == .linkClosedBeforeCall { await link.close() }
            let call = Task {
                try await LinkRPC.call(link, path: "/gossip", body: [1], timeout: step == .timeout ? .milliseconds(300) : .seconds(600))
            }
            if step != .linkClosedBeforeCall {
                var events = started.makeAsyncIterator()
                _ = await events.next()
            }
            switch step {
            case .linkClosedWhileWaiting: await link.close()
            case .callCancelled: call.cancel()
            default: break
            }
            await #expect(throws: (any Error).self) { _ = try await call.value }
            await pair.shutdown()
        }
    }

    /// A call still in its handler when its link closes is cancelled: no handler outlives the
    /// link it answers on, and the link's calls are no longer counted.
    @Test func closingALinkCancelsItsCalls() async throws {
        let (started, starting) = AsyncStream.makeStream(of: Void.self)
        let cancelled = NIOLockedValueBox(false)
        let streams = NIOLockedValueBox<[LinkStream]>([])
        let server = LinkRPCServer()
        let pair = try await LinkPair.make(acceptStream: { _, stream in
            streams.withLockedValue { $0.append(stream) }
            return await server.serve(stream) { _ in
                starting.yield()
                do {
                    try await Task.sleep(for: .seconds(600))
                } catch {
                    cancelled.withLockedValue { $0 = true }
                }
                return []
            }
        })
        try await Self.serving(server) {
            let link = try await pair.client.dial(host: "127.0.0.1", port: pair.port, expecting: pair.serverIdentity.id)
            let call = Task { try await LinkRPC.call(link, path: "/gossip", body: [1], timeout: .seconds(600)) }
            var events = started.makeAsyncIterator()
            _ = await events.next()
            let stream = try #require(streams.withLockedValue { $0.first })
            #expect(server.heldCalls(on: stream) == 1)
            await link.close()
            await #expect(throws: (any Error).self) { _ = try await call.value }
            #expect(await eventually(within: 10) { cancelled.withLockedValue { $0 } },
                    "the handler of a call on a closed link was not cancelled")
            #expect(await eventually(within: 10) { server.heldCalls(on: stream) == 0 })
            await pair.shutdown()
        }
    }

    /// A link holds at most `maxCallsPerLink` calls at once: one more is refused with 503 and
    /// counted, and the link takes calls again once those held have been answered.
    @Test func callsBeyondTheBoundOfALinkAreRefusedAndCounted() async throws {
        let (started, starting) = AsyncStream.makeStream(of: Void.self)
        let gate = Self.gate()
        let refusedPeers = NIOLockedValueBox<[NodeID]>([])
        let streams = NIOLockedValueBox<[LinkStream]>([])
        let server = LinkRPCServer(maxCallsPerLink: 2, refused: { peer in refusedPeers.withLockedValue { $0.append(peer) } })
        let pair = try await LinkPair.make(acceptStream: { _, stream in
            streams.withLockedValue { $0.append(stream) }
            return await server.serve(stream) { request in
                starting.yield()
                try? await gate.futureResult.get()
                return request
            }
        })
        try await Self.serving(server) {
            let link = try await pair.client.dial(host: "127.0.0.1", port: pair.port, expecting: pair.serverIdentity.id)
            let held = [1, 2].map { n in Task { try await LinkRPC.call(link, path: "/gossip", body: [UInt8(n)]) } }
            var events = started.makeAsyncIterator()
            _ = await events.next()
            _ = await events.next()
            await #expect(throws: LinkError.streamRefused(status: 503)) {
                _ = try await LinkRPC.call(link, path: "/gossip", body: [3])
            }
            #expect(server.refusedCalls == 1)
            #expect(refusedPeers.withLockedValue { $0 } == [pair.clientIdentity.id])
            #expect(link.isActive, "a refused call leaves the link up")

            gate.succeed()
            #expect(try await held[0].value == [1])
            #expect(try await held[1].value == [2])
            let stream = try #require(streams.withLockedValue { $0.first })
            #expect(await eventually(within: 10) { server.heldCalls(on: stream) == 0 })
            #expect(try await LinkRPC.call(link, path: "/gossip", body: [4]) == [4])
            #expect(server.refusedCalls == 1)
            await pair.shutdown()
        }
    }

    /// `finish` (the node's graceful shutdown) refuses new calls and lets `run` return only once
    /// the calls already taken have been answered.
    @Test func finishAnswersTheCallsTakenAndRefusesNewOnes() async throws {
        let (started, starting) = AsyncStream.makeStream(of: Void.self)
        let gate = Self.gate()
        let server = LinkRPCServer()
        let pair = try await LinkPair.make(acceptStream: { _, stream in
            await server.serve(stream) { request in
                starting.yield()
                try? await gate.futureResult.get()
                return request
            }
        })
        let link = try await pair.client.dial(host: "127.0.0.1", port: pair.port, expecting: pair.serverIdentity.id)
        let ran = NIOLockedValueBox(false)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                await server.run()
                ran.withLockedValue { $0 = true }
            }
            let taken = Task { try await LinkRPC.call(link, path: "/gossip", body: [1]) }
            var events = started.makeAsyncIterator()
            _ = await events.next()
            server.finish()
            await #expect(throws: LinkError.streamRefused(status: 503)) {
                _ = try await LinkRPC.call(link, path: "/gossip", body: [2])
            }
            #expect(!ran.withLockedValue { $0 }, "run returned with a call still held")
            gate.succeed()
            #expect(try await taken.value == [1])
            try await group.waitForAll()
            #expect(ran.withLockedValue { $0 })
        }
        await pair.shutdown()
    }
}
