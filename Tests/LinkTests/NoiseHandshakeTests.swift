import Link
import LinkTestSupport
import Sodium
import Testing

struct NoiseHandshakeTests {
    static let name = "Noise_XX_25519_ChaChaPoly_BLAKE2b"

    @Test func unknownProtocolsAreRefused() {
        for bad in ["Noise_ZZ_25519_ChaChaPoly_BLAKE2b", "Noise_XX_448_ChaChaPoly_BLAKE2b",
                    "Noise_XX_25519_ChaChaPoly_SHA256", "Noise_XXfallback_25519_AESGCM_BLAKE2b", "garbage"] {
            #expect(throws: NoiseError.self) { try NoiseHandshakeState(protocolName: bad, initiator: true) }
        }
    }

    @Test func tamperedSecondMessageFails() throws {
        var i = try NoiseHandshakeState(protocolName: Self.name, initiator: true, staticKey: .generate())
        var r = try NoiseHandshakeState(protocolName: Self.name, initiator: false, staticKey: .generate())
        _ = try r.readMessage(try i.writeMessage())
        var m2 = try r.writeMessage()
        m2[40] ^= 1
        #expect(throws: NoiseError.decryptionFailed) { try i.readMessage(m2) }
    }

    @Test func truncatedMessagesFail() throws {
        var i = try NoiseHandshakeState(protocolName: Self.name, initiator: true, staticKey: .generate())
        var r = try NoiseHandshakeState(protocolName: Self.name, initiator: false, staticKey: .generate())
        let m1 = try i.writeMessage()
        #expect(throws: NoiseError.messageTooShort) { try r.readMessage(Array(m1.prefix(31))) }
    }

    @Test func outOfTurnIsRefused() throws {
        var i = try NoiseHandshakeState(protocolName: Self.name, initiator: true, staticKey: .generate())
        _ = try i.writeMessage()
        #expect(throws: NoiseError.outOfOrder) { try i.writeMessage() }
    }

    @Test func prologueMismatchFailsTheHandshake() throws {
        var i = try NoiseHandshakeState(protocolName: Self.name, initiator: true, prologue: [1], staticKey: .generate())
        var r = try NoiseHandshakeState(protocolName: Self.name, initiator: false, prologue: [2], staticKey: .generate())
        _ = try r.readMessage(try i.writeMessage())
        #expect(throws: NoiseError.decryptionFailed) { try i.readMessage(try r.writeMessage()) }
    }

    @Test func transportRekeyStaysInStepAndReplayFails() throws {
        var i = try NoiseHandshakeState(protocolName: Self.name, initiator: true, staticKey: .generate())
        var r = try NoiseHandshakeState(protocolName: Self.name, initiator: false, staticKey: .generate())
        _ = try r.readMessage(try i.writeMessage())
        _ = try i.readMessage(try r.writeMessage())
        _ = try r.readMessage(try i.writeMessage())
        var send = try #require(i.transportCiphers).send
        var receive = try #require(r.transportCiphers).receive
        let first = try send.encrypt(plaintext: [1, 2, 3])
        #expect(try receive.decrypt(ciphertext: first) == [1, 2, 3])
        // A replayed record is under an old nonce: refused.
        #expect(throws: NoiseError.decryptionFailed) { try receive.decrypt(ciphertext: first) }
        try send.rekey()
        try receive.rekey()
        let second = try send.encrypt(plaintext: [4])
        #expect(try receive.decrypt(ciphertext: second) == [4])
        #expect(send.nonce == 2)
    }
}
