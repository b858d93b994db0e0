@testable import Link
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
}
