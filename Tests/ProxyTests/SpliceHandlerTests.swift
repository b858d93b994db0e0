import NIOCore
import NIOEmbedded
import Testing
@testable import Proxy

@Suite("Splice handler (EmbeddedChannel)")
struct SpliceHandlerTests {
    /// Two embedded channels spliced together.
    func pair() throws -> (EmbeddedChannel, EmbeddedChannel) {
        let loop = EmbeddedEventLoop()
        let a = EmbeddedChannel(loop: loop)
        let b = EmbeddedChannel(loop: loop)
        try a.pipeline.syncOperations.addHandler(SpliceHandler(partner: nil))
        try b.pipeline.syncOperations.addHandler(SpliceHandler(partner: nil))
        try a.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try b.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        return (a, b)
    }

    @Test func holdsBytesUntilAttachedThenForwards() throws {
        let (a, b) = try self.pair()
        try a.writeInbound(ByteBuffer(string: "early"))
        #expect(try b.readOutbound(as: ByteBuffer.self) == nil)
        Splice.attach(a, b)
        #expect(try b.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "early"))
        try b.writeInbound(ByteBuffer(string: "reply"))
        #expect(try a.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "reply"))
    }

    @Test func readsWaitWhileThePartnerIsNotWritable() throws {
        let (a, b) = try self.pair()
        Splice.attach(a, b)
        let reads = ReadCounter()
        try a.pipeline.syncOperations.addHandler(reads, position: .first)
        b.isWritable = false
        a.read()
        #expect(reads.count == 0)
        b.isWritable = true
        b.pipeline.fireChannelWritabilityChanged()
        #expect(reads.count == 1)
        a.read()
        #expect(reads.count == 2)
    }

    @Test func halfCloseCrossesOverAndBothHalvesCloseTheChannel() throws {
        let (a, b) = try self.pair()
        let closesA = CloseRecorder()
        let closesB = CloseRecorder()
        try a.pipeline.syncOperations.addHandler(closesA, position: .first)
        try b.pipeline.syncOperations.addHandler(closesB, position: .first)
        Splice.attach(a, b)
        a.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(closesB.modes == [.output])
        #expect(closesA.modes == [])
        // The other direction ends too: b's input, so a's output, and a has both halves done.
        b.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(closesA.modes.first == .all)
        #expect(closesB.modes.first == .output)
        #expect(closesB.modes.contains(.all))
    }

    @Test func aFullCloseEndsTheOtherSide() throws {
        let (a, b) = try self.pair()
        Splice.attach(a, b)
        try a.close().wait()
        #expect(!b.isActive)
    }
}

/// Counts `read()` calls reaching the head of the pipeline.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    var count = 0
    func read(context: ChannelHandlerContext) {
        self.count += 1
        context.read()
    }
}

/// Records close requests; lets only full closes through (EmbeddedChannel has no half-close).
final class CloseRecorder: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    var modes: [CloseMode] = []
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        self.modes.append(mode)
        if mode == .all {
            context.close(mode: mode, promise: promise)
        } else {
            promise?.succeed()
        }
    }
}
