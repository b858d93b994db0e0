import Gossip
import NIOConcurrencyHelpers
@testable import Link
import LinkTestSupport
import NIOCore
import Testing

/// Calls over a link as the node makes them (gossip, leases).
@Suite(.timeLimit(.minutes(1)))
struct LinkRPCTests {
    /// Gossip calls carry empty answers, several at once on one link. Each used to be sent as an
    /// empty DATA frame before the half-close, and NIOHTTP2 closes a connection on the second
    /// empty DATA frame in a row: the link dropped, and a lease call on it failed with Closed().
    @Test func concurrentEmptyCallsKeepTheLinkUp() async throws {
        let pair = try await LinkPair.make(acceptStream: { _, stream in
            (try? await LinkRPC.serve(stream) { _ in
                try? await Task.sleep(for: .milliseconds(20))
                return []
            }.get()) != nil ? 200 : 500
        })
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
        await pair.shutdown()
    }

    /// Where the answering side closes things during a call.
    enum ServerStep: String, CaseIterable, Sendable {
        case streamClosedBeforeServe, linkClosedBeforeServe, streamClosedWhileHandling, linkClosedWhileHandling
    }

    /// A stream or link that closes at any step of serving a call: the call fails (it does not
    /// hang, and no promise is left uncompleted, which a debug build would trap on), and the
    /// serving side's set-up reports the failure when it came too late.
    @Test(arguments: ServerStep.allCases)
    func answeringSideClosesAtEachStep(_ step: ServerStep) async throws {
        let setUps = NIOLockedValueBox<[Bool]>([])
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
            let setUp = LinkRPC.serve(stream) { request in
                switch step {
                case .streamClosedWhileHandling: try? await stream.channel.close()
                case .linkClosedWhileHandling: await closeLink(to: stream.peer)
                default: break
                }
                return request
            }
            let ok = (try? await setUp.get()) != nil
            setUps.withLockedValue { $0.append(ok) }
            return ok ? 200 : 500
        })
        server.withLockedValue { $0 = pair.server }
        let link = try await pair.client.dial(host: "127.0.0.1", port: pair.port, expecting: pair.serverIdentity.id)
        // The timeout is far beyond the suite's time limit: a call that only ends by it hangs.
        await #expect(throws: (any Error).self) {
            _ = try await LinkRPC.call(link, path: "/gossip", body: [1, 2, 3], timeout: .seconds(600))
        }
        if step == .streamClosedBeforeServe || step == .linkClosedBeforeServe {
            #expect(await eventually(within: 10) { setUps.withLockedValue { $0 } == [false] })
        }
        await pair.shutdown()
    }

    /// Where the calling side gives up or loses the link during a call.
    enum ClientStep: String, CaseIterable, Sendable {
        case linkClosedBeforeCall, linkClosedWhileWaiting, callCancelled, timeout
    }

    /// The caller's side of the same: each way of ending a call early fails it promptly, and the
    /// answering side, which never answers here, is left with nothing pending.
    @Test(arguments: ClientStep.allCases)
    func callingSideEndsAtEachStep(_ step: ClientStep) async throws {
        let (started, starting) = AsyncStream.makeStream(of: Void.self)
        let pair = try await LinkPair.make(acceptStream: { _, stream in
            let setUp = LinkRPC.serve(stream) { _ in
                starting.yield()
                // Never answers while the test runs; the stream is gone when it wakes.
                try? await Task.sleep(for: .seconds(30))
                return [9]
            }
            return (try? await setUp.get()) != nil ? 200 : 500
        })
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
