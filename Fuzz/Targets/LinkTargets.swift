import Gossip
import LibCrypto
@testable import MeshNode
@testable import Link
@testable import Trust
import NIOCore
import Sodium

/// Fixed identities, so every run of an input does the same.
enum FuzzKeys {
    static func identity(_ seed: UInt8) -> NodeIdentity {
        NodeIdentity(keyPair: try! Ed25519.KeyPair.fromSeed([UInt8](repeating: seed, count: 32)))
    }
    static let local = identity(1)
    static let peer = identity(2)
    static let meshID = "fuzz-mesh"
}

extension FuzzTarget {
    /// The link preamble (suite byte) and Noise XX message 1 as a responder reads them; and
    /// message 2 as an initiator reads it, either raw bytes or a real message 2 whose identity
    /// payload is the fuzzed bytes followed by the real responder's signature (so the identity
    /// check, signature included, is reached).
    static let linkHandshake = FuzzTarget(
        name: "link-handshake",
        summary: "link preamble + Noise XX message 1 (responder) and message 2 (initiator)"
    ) { bytes throws(FuzzFailure) in
        var input = FuzzInput(bytes)
        let mode = input.byte() % 3
        let readSize = Int(input.byte()) + 1
        let data = input.rest
        switch mode {
        case 0:
            var responder = LinkHandshake(role: .responder(admit: { _ in true }), identity: FuzzKeys.local, meshID: FuzzKeys.meshID)
            var sent = 0
            do {
                for read in data.reads(of: readSize) {
                    var buffer = ByteBuffer(bytes: read)
                    for action in try responder.receive(&buffer) {
                        if case .send(let reply) = action { sent += reply.count }
                        if case .complete = action { throw FuzzFailure("a responder completed a handshake from unauthenticated bytes") }
                    }
                }
            } catch let failure as FuzzFailure {
                throw failure
            } catch {
                try expect(error is LinkError, "the responder threw \(type(of: error)), not a LinkError: \(error)")
            }
            try expect(sent <= 2 + LinkHandshake.maxFrameLength, "the responder sent \(sent) bytes")
        case 1, _:
            var initiator = LinkHandshake(role: .initiator(suite: .chaChaPoly, expecting: nil), identity: FuzzKeys.local, meshID: FuzzKeys.meshID)
            var wire: [UInt8]
            do {
                guard case .send(let first) = try initiator.start().first else { throw FuzzFailure("the initiator sent nothing first") }
                if mode == 1 {
                    wire = data
                } else {
                    // A real responder answers with the fuzzed bytes as the start of its identity
                    // payload, and its genuine signature of this handshake after them.
                    var noise = try NoiseHandshakeState(
                        protocolName: LinkSuite.chaChaPoly.protocolName, initiator: false,
                        prologue: LinkProtocol.prologue(suite: .chaChaPoly, meshID: FuzzKeys.meshID), staticKey: FuzzKeys.peer.staticKey)
                    _ = try noise.readMessage(Array(first.dropFirst(3)))
                    let signature = FuzzKeys.peer.keyPair.sign(LinkHandshake.identityBinding(
                        handshakeHash: noise.handshakeHash, staticKey: FuzzKeys.peer.staticKey.publicKey))
                    wire = LinkHandshake.frame(try noise.writeMessage(payload: Array(data.prefix(512)) + signature))
                }
            } catch let failure as FuzzFailure {
                throw failure
            } catch {
                throw FuzzFailure("setting up the handshake failed: \(error)")
            }
            do {
                for read in wire.reads(of: readSize) {
                    var buffer = ByteBuffer(bytes: read)
                    for action in try initiator.receive(&buffer) {
                        if case .complete(let result) = action {
                            // Only the real responder completes it, as its own node ID: not as that
                            // ID's twin (the Ed25519 key with the sign bit of x flipped has the same
                            // X25519 form, but the signature is checked against the claimed key).
                            try expect(mode == 2 && result.peer == FuzzKeys.peer.id,
                                       "a handshake completed as \(result.peer), whose key the responder does not hold")
                            try expect(data.prefix(512) == [LinkProtocol.version] + result.peer.bytes, "a handshake completed with a payload that is not the peer's identity")
                        }
                    }
                }
            } catch let failure as FuzzFailure {
                throw failure
            } catch {
                try expect(error is LinkError, "the initiator threw \(type(of: error)), not a LinkError: \(error)")
            }
        }
    }

    /// The record decoder: raw bytes in arbitrary reads; and records sealed by the encoder (in
    /// fuzzed sizes, read in fuzzed sizes, maybe with one bit flipped) that must open to exactly
    /// what was sealed, or fail on the flipped bit.
    static let linkRecords = FuzzTarget(name: "link-records", summary: "link record decoder (length ‖ ciphertext ‖ tag)") { bytes throws(FuzzFailure) in
        var input = FuzzInput(bytes)
        let mode = input.byte()
        let suite: LinkSuite = mode & 2 == 0 ? .chaChaPoly : .aesGCM
        let readSize = Int(input.byte()) * 4 + 1
        let recordSize = Int(input.byte()) * 8 + 1
        let flip = input.byte()
        let data = input.rest
        let key = { () -> SecretBytes in var k = [UInt8](repeating: 7, count: 32); return SecretBytes(consuming: &k) }
        let allocator = ByteBufferAllocator()
        do {
            let decoder = LinkRecordDecoder(cipher: try LinkRecordCipher(suite: suite, direction: .open, key: key(), rekeyInterval: 3))
            var wire = data
            if mode & 1 == 1 {
                let encoder = LinkRecordEncoder(cipher: try LinkRecordCipher(suite: suite, direction: .seal, key: key(), rekeyInterval: 3))
                wire = []
                for chunk in data.reads(of: recordSize) {
                    let sealed = try encoder.seal([ByteBuffer(bytes: chunk)], total: chunk.count, allocator: allocator)
                    wire += sealed.readableBytesView
                }
                if flip & 1 == 1, !wire.isEmpty { wire[Int(flip) * 37 % wire.count] ^= 1 << (flip % 8) }
            }
            var opened: [UInt8] = []
            var failed = false
            for read in wire.reads(of: readSize) {
                var buffer = ByteBuffer(bytes: read)
                do {
                    if let out = try decoder.open(&buffer, allocator: allocator) { opened += out.readableBytesView }
                } catch {
                    try expect(error is LinkError || error is NoiseError || "\(type(of: error))".contains("LibCrypto"),
                               "the decoder threw \(type(of: error)): \(error)")
                    failed = true
                    break
                }
            }
            try expect(opened.count <= data.count, "opened \(opened.count) bytes from \(data.count)")
            if mode & 1 == 1 {
                try expect(opened == Array(data.prefix(opened.count)), "opened bytes differ from those sealed")
                if flip & 1 == 0 || wire.isEmpty {
                    try expect(!failed && opened == data, "sealed records did not open to the same \(data.count) bytes")
                } else {
                    // A flip in a length may leave the decoder waiting for bytes that never come.
                    try expect(failed || opened.count < data.count, "every record opened though one had a flipped bit")
                }
            } else {
                try expect(opened.isEmpty, "unauthenticated bytes opened to \(opened.count) bytes of plaintext")
            }
        } catch let failure as FuzzFailure {
            throw failure
        } catch {
            throw FuzzFailure("setting up the record ciphers failed: \(error)")
        }
    }
}
