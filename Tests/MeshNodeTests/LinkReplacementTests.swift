import Gossip
import Logging
@testable import MeshNode
@testable import Provisioning
@testable import Trust
import TrustTestSupport
@testable import Link
import LinkTestSupport
import NIOCore
import NIOEmbedded
import Testing

/// One live link per peer: a peer's redial replaces its older link, and a link whose peer stopped
/// answering is found dead in seconds.
@Suite(.timeLimit(.minutes(1)))
struct LinkReplacementTests {
    /// As after a NAT rebinding: the peer dials again while its old link still looks up here.
    @Test func aRedialReplacesThePeersOlderLinkAtOnce() async throws {
        let pair = try await LinkPair.make()
        var serverEvents = pair.server.events.makeAsyncIterator()
        let first = try await pair.client.dial(host: "127.0.0.1", port: pair.port, expecting: pair.serverIdentity.id)
        guard case .up(let firstInbound) = await serverEvents.next() else { Issue.record("no first link"); return }
        let second = try await pair.client.dial(host: "127.0.0.1", port: pair.port, expecting: pair.serverIdentity.id)
        guard case .up(let secondInbound) = await serverEvents.next() else { Issue.record("no second link"); return }
        #expect(firstInbound !== secondInbound)
        // The server closes the older one as the newer registers, not after a keepalive.
        #expect(await eventually(within: 10) { !firstInbound.isActive && !first.isActive })
        #expect(secondInbound.isActive && second.isActive)
        #expect(pair.server.links.filter { $0.peer == pair.clientIdentity.id }.map { ObjectIdentifier($0) } == [ObjectIdentifier(secondInbound)])
        #expect(LinkPool.newest(pair.server.links, to: pair.clientIdentity.id) === secondInbound)
        #expect(LinkPool.newest(pair.client.links, to: pair.serverIdentity.id) === second)
        // A stream on the old link fails at once; the new one carries streams.
        await #expect(throws: (any Error).self) { _ = try await first.openStream(headers: []) }
        let stream = try await second.openStream(headers: [])
        #expect(stream.peer == pair.serverIdentity.id)
        await pair.shutdown()
    }

    /// Callers that need the same peer at once share one dial.
    @Test func concurrentCallersShareOneDial() async throws {
        let pair = try await LinkPair.make()
        let pool = LinkPool(endpoint: pair.client, logger: Logger(label: "test"))
        let links = try await withThrowingTaskGroup(of: ObjectIdentifier.self) { group in
            for _ in 0..<8 {
                group.addTask { ObjectIdentifier(try await pool.link(to: pair.serverIdentity.id, address: "127.0.0.1:\(pair.port)")) }
            }
            return try await group.reduce(into: Set<ObjectIdentifier>()) { $0.insert($1) }
        }
        #expect(links.count == 1)
        #expect(pair.client.links.count == 1)
        await pool.shutdown()
        await pair.shutdown()
    }
}

/// The answer timeout of `LinkKeepaliveHandler`, on a virtual clock.
struct LinkAnswerTimeoutTests {
    static func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            LinkKeepaliveHandler(interval: .seconds(10), answerTimeout: .seconds(5), logger: .init(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test func sentBytesWithoutAnswerArePingedThenCloseTheLink() throws {
        let channel = try Self.channel()
        try channel.writeOutbound(ByteBuffer(bytes: [1, 2, 3]))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(bytes: [1, 2, 3]))
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(bytes: LinkKeepaliveHandler.pingFrame))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(3900))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(100))
        #expect(!channel.isActive, "closed 5 s after the unanswered write, not after three 10 s keepalive intervals")
    }

    @Test func anAnswerEndsTheWait() throws {
        let channel = try Self.channel()
        for _ in 0..<3 {
            try channel.writeOutbound(ByteBuffer(bytes: [1]))
            _ = try channel.readOutbound(as: ByteBuffer.self)
            channel.embeddedEventLoop.advanceTime(by: .seconds(2))
            #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(bytes: LinkKeepaliveHandler.pingFrame))
            try channel.writeInbound(ByteBuffer(bytes: [0]))
            channel.embeddedEventLoop.advanceTime(by: .seconds(4))
            #expect(channel.isActive)
        }
        // Many writes while one wait runs: one PING, and the verdict still counts from the first.
        try channel.writeOutbound(ByteBuffer(bytes: [1]))
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        try channel.writeOutbound(ByteBuffer(bytes: [2]))
        var frames: [ByteBuffer] = []
        while let frame = try channel.readOutbound(as: ByteBuffer.self) { frames.append(frame) }
        #expect(frames.filter { $0 == ByteBuffer(bytes: LinkKeepaliveHandler.pingFrame) }.count == 1)
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(!channel.isActive)
    }
}
