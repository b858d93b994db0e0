import Gossip
import LibCrypto
import Logging
@testable import Link
import LinkTestSupport
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Sodium
import Testing

/// The link's handlers and state machines without sockets: hostile input must close the one
/// connection with a clear error.
struct LinkHandlerTests {
    static func cipherPair(_ suite: LinkSuite = .aesGCM, rekeyInterval: UInt64 = 1 << 20) throws -> (LinkRecordCipher, LinkRecordCipher, SecretBytes) {
        let key = SecretBytes(randomCount: 32)
        return (try LinkRecordCipher(suite: suite, direction: .seal, key: key, rekeyInterval: rekeyInterval),
                try LinkRecordCipher(suite: suite, direction: .open, key: key, rekeyInterval: rekeyInterval), key)
    }

    static func sealed(_ encoder: LinkRecordEncoder, _ bytes: [UInt8]) throws -> ByteBuffer {
        try encoder.seal([ByteBuffer(bytes: bytes)], total: bytes.count, allocator: ByteBufferAllocator())
    }

    static func decoderChannel(_ opener: LinkRecordCipher) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(LinkRecordDecoder(cipher: opener))
        return channel
    }

    static func readAll(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var out: [UInt8] = []
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { out += buffer.readableBytesView }
        return out
    }

    @Test(arguments: LinkSuite.allCases)
    func recordsRoundTripAcrossRecordBoundaries(suite: LinkSuite) throws {
        let (sealer, opener, _) = try Self.cipherPair(suite)
        let encoder = LinkRecordEncoder(cipher: sealer)
        let plaintext = Sodium.randomBytes(200_000)  // four records, the last partial
        let wire = try encoder.seal([ByteBuffer(bytes: plaintext[..<1000]), ByteBuffer(bytes: plaintext[1000...])], total: plaintext.count, allocator: ByteBufferAllocator())
        #expect(wire.readableBytes == plaintext.count + 4 * 18)
        let channel = try Self.decoderChannel(opener)
        // Delivered in awkward pieces, as TCP may.
        var rest = wire
        while rest.readableBytes > 0 {
            try channel.writeInbound(rest.readSlice(length: min(7777, rest.readableBytes))!)
        }
        #expect(try Self.readAll(channel) == plaintext)
    }

    @Test func recordsSplitAtEveryByteRoundTrip() throws {
        let (sealer, opener, _) = try Self.cipherPair()
        let encoder = LinkRecordEncoder(cipher: sealer)
        let messages = [Array("first".utf8), [], Array("and the second one".utf8)]
        var wire = ByteBuffer()
        for message in messages { wire.writeImmutableBuffer(try Self.sealed(encoder, message)) }
        let channel = try Self.decoderChannel(opener)
        while let byte = wire.readSlice(length: 1) { try channel.writeInbound(byte) }
        #expect(try Self.readAll(channel) == messages.flatMap { $0 })
    }

    @Test func splitRecordIsHeldUntilItsTagChecks() throws {
        let (sealer, opener, _) = try Self.cipherPair()
        let encoder = LinkRecordEncoder(cipher: sealer)
        let first = try Self.sealed(encoder, Array("whole".utf8))
        var second = try Self.sealed(encoder, Sodium.randomBytes(1000))
        second.setInteger(second.getInteger(at: second.writerIndex - 1, as: UInt8.self)! ^ 1, at: second.writerIndex - 1)
        let channel = try Self.decoderChannel(opener)
        var wire = first
        wire.writeImmutableBuffer(second.readSlice(length: 500)!)
        try channel.writeInbound(wire)
        // The whole record goes on at once; the half-read one is decrypted but not released.
        #expect(try Self.readAll(channel) == Array("whole".utf8))
        #expect(throws: LinkError.recordAuthenticationFailed) { try channel.writeInbound(second) }
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
    }

    @Test func tamperedRecordClosesTheLink() throws {
        let (sealer, opener, _) = try Self.cipherPair()
        var wire = try Self.sealed(LinkRecordEncoder(cipher: sealer), Array("attack at dawn".utf8))
        wire.setInteger(wire.getInteger(at: 5, as: UInt8.self)! ^ 1, at: 5)
        let channel = try Self.decoderChannel(opener)
        #expect(throws: LinkError.recordAuthenticationFailed) { try channel.writeInbound(wire) }
    }

    @Test func reorderedAndReplayedRecordsFail() throws {
        let (sealer, opener, _) = try Self.cipherPair()
        let encoder = LinkRecordEncoder(cipher: sealer)
        let first = try Self.sealed(encoder, [1])
        let second = try Self.sealed(encoder, [2])
        #expect(throws: LinkError.recordAuthenticationFailed) { try Self.decoderChannel(opener).writeInbound(second) }

        let (sealer2, opener2, _) = try Self.cipherPair()
        let encoder2 = LinkRecordEncoder(cipher: sealer2)
        let record = try Self.sealed(encoder2, [1])
        let channel = try Self.decoderChannel(opener2)
        try channel.writeInbound(record)
        #expect(try Self.readAll(channel) == [1])
        #expect(throws: LinkError.recordAuthenticationFailed) { try channel.writeInbound(record) }
        _ = first
    }

    @Test func recordShorterThanItsTagFails() throws {
        let (_, opener, _) = try Self.cipherPair()
        let channel = try Self.decoderChannel(opener)
        #expect(throws: LinkError.recordTooShort(length: 5)) {
            try channel.writeInbound(ByteBuffer(bytes: [0, 5, 1, 2, 3, 4, 5]))
        }
    }

    @Test(arguments: LinkSuite.allCases)
    func libcryptoRecordsAndRekeyMatchNoise(suite: LinkSuite) throws {
        if suite == .aesGCM && !AEAD.aes256GCMAvailable { return }
        let (sealer, _, key) = try Self.cipherPair(suite, rekeyInterval: 2)
        let encoder = LinkRecordEncoder(cipher: sealer)
        var noise = NoiseCipherState(cipher: suite.noiseCipher, key: key)
        for i in 0..<7 {
            var wire = try Self.sealed(encoder, [UInt8](repeating: UInt8(i), count: 100))
            let length = Int(wire.readInteger(as: UInt16.self)!)
            let ciphertext = wire.readBytes(length: length)!
            #expect(try noise.decrypt(ciphertext: ciphertext) == [UInt8](repeating: UInt8(i), count: 100), "record \(i)")
            if noise.nonce % 2 == 0 { try noise.rekey() }
        }
    }

    // MARK: Handshake

    static let mesh = "mesh-test"

    /// Runs the handshake between two state machines, returning the initiator's bytes in order.
    static func genuineHandshake(initiator: NodeIdentity, responder: NodeIdentity) throws -> [[UInt8]] {
        var i = LinkHandshake(role: .initiator(suite: .chaChaPoly, expecting: responder.id), identity: initiator, meshID: mesh)
        var r = LinkHandshake(role: .responder(admit: { _ in true }), identity: responder, meshID: mesh)
        var sentByInitiator: [[UInt8]] = []
        var toResponder: [UInt8] = []
        for case .send(let bytes) in try i.start() { toResponder = bytes; sentByInitiator.append(bytes) }
        var buffer = ByteBuffer(bytes: toResponder)
        var toInitiator: [UInt8] = []
        for case .send(let bytes) in try r.receive(&buffer) { toInitiator = bytes }
        buffer = ByteBuffer(bytes: toInitiator)
        var completed = false
        for action in try i.receive(&buffer) {
            switch action {
            case .send(let bytes): sentByInitiator.append(bytes)
            case .complete(let result): completed = result.peer == responder.id
            }
        }
        #expect(completed)
        return sentByInitiator
    }

    @Test func replayedHandshakeIsRefused() throws {
        let a = NodeIdentity.generate(), b = NodeIdentity.generate()
        let recorded = try Self.genuineHandshake(initiator: a, responder: b)
        var r = LinkHandshake(role: .responder(admit: { _ in true }), identity: b, meshID: Self.mesh)
        var buffer = ByteBuffer(bytes: recorded[0])
        _ = try r.receive(&buffer)  // message 1 alone proves nothing; message 2 is fresh
        buffer = ByteBuffer(bytes: recorded[1])
        #expect(throws: LinkError.handshakeFailed(.decryptionFailed)) { try r.receive(&buffer) }
    }

    @Test func staticKeyThatIsNotTheClaimedNodeIsRefused() throws {
        let responder = NodeIdentity.generate()
        let liar = NodeIdentity.generate(), claimed = NodeIdentity.generate()
        let suite = LinkSuite.chaChaPoly
        var noise = try NoiseHandshakeState(protocolName: suite.protocolName, initiator: true,
                                            prologue: LinkProtocol.prologue(suite: suite, meshID: Self.mesh), staticKey: liar.staticKey)
        var r = LinkHandshake(role: .responder(admit: { _ in true }), identity: responder, meshID: Self.mesh)
        var buffer = ByteBuffer(bytes: [suite.rawValue] + LinkHandshake.frame(try noise.writeMessage()))
        var reply: [UInt8] = []
        for case .send(let bytes) in try r.receive(&buffer) { reply = bytes }
        _ = try noise.readMessage(Array(reply.dropFirst(2)))
        let lie = try noise.writeMessage(payload: [LinkProtocol.version] + claimed.id.bytes)
        buffer = ByteBuffer(bytes: LinkHandshake.frame(lie))
        #expect(throws: LinkError.badIdentity) { try r.receive(&buffer) }
    }

    /// Flipping bit 7 of byte 31 of an Ed25519 key (x to -x) keeps its X25519 form, so the static
    /// key alone would let one key pair link as two node IDs. The identity signature is checked
    /// against the claimed key: the twin is refused, the genuine ID (same key pair, same steps)
    /// is let in.
    @Test func theTwinOfANodeIDIsRefused() throws {
        let responder = NodeIdentity.generate(), attacker = NodeIdentity.generate()
        var twinBytes = attacker.id.bytes
        twinBytes[31] ^= 0x80
        let twin = try #require(NodeID(bytes: twinBytes))
        #expect(try Ed25519.x25519PublicKey(from: twinBytes) == attacker.staticKey.publicKey, "the twin has the same X25519 form")
        for (claimed, genuine) in [(twin, false), (attacker.id, true)] {
            let suite = LinkSuite.chaChaPoly
            var noise = try NoiseHandshakeState(protocolName: suite.protocolName, initiator: true,
                                                prologue: LinkProtocol.prologue(suite: suite, meshID: Self.mesh), staticKey: attacker.staticKey)
            var r = LinkHandshake(role: .responder(admit: { _ in true }), identity: responder, meshID: Self.mesh)
            var buffer = ByteBuffer(bytes: [suite.rawValue] + LinkHandshake.frame(try noise.writeMessage()))
            var reply: [UInt8] = []
            for case .send(let bytes) in try r.receive(&buffer) { reply = bytes }
            _ = try noise.readMessage(Array(reply.dropFirst(2)))
            let binding = LinkHandshake.identityBinding(handshakeHash: noise.handshakeHash, staticKey: attacker.staticKey.publicKey)
            let payload = [LinkProtocol.version] + claimed.bytes + attacker.keyPair.sign(binding)
            buffer = ByteBuffer(bytes: LinkHandshake.frame(try noise.writeMessage(payload: payload)))
            if genuine {
                let peers = try r.receive(&buffer).compactMap { action -> NodeID? in
                    if case .complete(let result) = action { return result.peer }
                    return nil
                }
                #expect(peers == [attacker.id])
            } else {
                #expect(throws: LinkError.badIdentity) { try r.receive(&buffer) }
            }
        }
    }

    /// A signature of another handshake (the hash differs) does not prove the identity.
    @Test func anIdentitySignatureOfAnotherHandshakeIsRefused() throws {
        let responder = NodeIdentity.generate(), initiator = NodeIdentity.generate()
        let suite = LinkSuite.aesGCM
        var noise = try NoiseHandshakeState(protocolName: suite.protocolName, initiator: true,
                                            prologue: LinkProtocol.prologue(suite: suite, meshID: Self.mesh), staticKey: initiator.staticKey)
        var r = LinkHandshake(role: .responder(admit: { _ in true }), identity: responder, meshID: Self.mesh)
        var buffer = ByteBuffer(bytes: [suite.rawValue] + LinkHandshake.frame(try noise.writeMessage()))
        var reply: [UInt8] = []
        for case .send(let bytes) in try r.receive(&buffer) { reply = bytes }
        _ = try noise.readMessage(Array(reply.dropFirst(2)))
        let stale = LinkHandshake.identityBinding(handshakeHash: [UInt8](repeating: 0, count: noise.handshakeHash.count),
                                                  staticKey: initiator.staticKey.publicKey)
        let payload = [LinkProtocol.version] + initiator.id.bytes + initiator.keyPair.sign(stale)
        buffer = ByteBuffer(bytes: LinkHandshake.frame(try noise.writeMessage(payload: payload)))
        #expect(throws: LinkError.badIdentity) { try r.receive(&buffer) }
    }

    @Test func responderRefusesPeersItDoesNotAdmit() throws {
        let a = NodeIdentity.generate(), b = NodeIdentity.generate()
        let recorded = try Self.genuineHandshake(initiator: a, responder: b)
        _ = recorded
        var i = LinkHandshake(role: .initiator(suite: .aesGCM, expecting: nil), identity: a, meshID: Self.mesh)
        var r = LinkHandshake(role: .responder(admit: { $0 != a.id }), identity: b, meshID: Self.mesh)
        var buffer = ByteBuffer()
        for case .send(let bytes) in try i.start() { buffer.writeBytes(bytes) }
        var back = ByteBuffer()
        for case .send(let bytes) in try r.receive(&buffer) { back.writeBytes(bytes) }
        var last = ByteBuffer()
        for case .send(let bytes) in try i.receive(&back) { last.writeBytes(bytes) }
        #expect(throws: LinkError.peerRefused(a.id)) { try r.receive(&last) }
    }

    final class Failures: @unchecked Sendable {
        var errors: [any Error] = []
    }

    static func responderChannel(timeout: TimeAmount = .seconds(5)) throws -> (EmbeddedChannel, Failures) {
        let failures = Failures()
        let channel = EmbeddedChannel()
        let handler = LinkHandshakeHandler(
            machine: LinkHandshake(role: .responder(admit: { _ in true }), identity: .generate(), meshID: mesh),
            timeout: timeout, logger: .init(label: "test"),
            onComplete: { _, _ in }, onFailure: { failures.errors.append($0) })
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, failures)
    }

    @Test func garbageClosesTheConnection() throws {
        let (channel, failures) = try Self.responderChannel()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n"))
        #expect(!channel.isActive)
        #expect(failures.errors.first as? LinkError == .unknownSuite(UInt8(ascii: "G")))
    }

    @Test func oversizedHandshakeFrameClosesTheConnection() throws {
        let (channel, failures) = try Self.responderChannel()
        try channel.writeInbound(ByteBuffer(bytes: [LinkSuite.aesGCM.rawValue, 0xff, 0xff]))
        #expect(!channel.isActive)
        #expect(failures.errors.first as? LinkError == .badHandshakeFrame(length: 65535))
    }

    @Test func silentPeerTimesOut() throws {
        let (channel, failures) = try Self.responderChannel(timeout: .seconds(5))
        try channel.writeInbound(ByteBuffer(bytes: [LinkSuite.aesGCM.rawValue, 0x00]))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(!channel.isActive)
        #expect(failures.errors.first as? LinkError == .handshakeTimeout)
    }

    @Test func backoffGrowsToItsCapWithJitter() {
        var backoff = LinkBackoff()
        var random = SystemRandomNumberGenerator()
        var waits: [Duration] = []
        for _ in 0..<10 { waits.append(backoff.next(using: &random)) }
        #expect(waits[0] >= .milliseconds(250) && waits[0] <= .milliseconds(500))
        #expect(waits[9] >= .seconds(5) && waits[9] <= .seconds(10))
        backoff.reset()
        #expect(backoff.next(using: &random) <= .milliseconds(500))
    }
}

struct LinkKeepaliveTests {
    @Test func silentLinkIsPingedThenClosed() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(LinkKeepaliveHandler(interval: .seconds(10), logger: .init(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))  // heard at start: no ping yet
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(bytes: LinkKeepaliveHandler.pingFrame))
        // An answer keeps it open.
        try channel.writeInbound(ByteBuffer(bytes: [0]))
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        #expect(!channel.isActive)
    }
}

struct LinkStreamHandlerTests {
    @Test func dataFloodBeforeTheAnswerResetsTheStream() throws {
        let channel = EmbeddedChannel()
        let handler = LinkStreamHandler(
            role: .acceptor(decide: { _, _ in
                try? await Task.sleep(for: .seconds(30))
                return 200
            }, peer: NodeIdentity.generate().id, link: channel),
            logger: .init(label: "test"))
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: [":method": "POST", ":path": "/"])))
        #expect(channel.isActive)
        let chunk = ByteBuffer(repeating: 0, count: 16 << 10)
        for _ in 0..<4 { try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(chunk)))) }
        #expect(channel.isActive)  // 64 KiB held
        try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(chunk))))
        #expect(!channel.isActive)
    }
}
