import Foundation
import Link
import Sodium
import Testing

/// The cacophony-format vectors in `../shared/vectors/noise/` (relative to the package root), plus
/// any files named in `NOISE_VECTORS` (separated by `:`), all run through `NoiseHandshakeState`.
struct NoiseVectorTests {
    struct VectorFile: Decodable { let vectors: [Vector] }
    struct Message: Decodable { let payload: String; let ciphertext: String }
    struct Vector: Decodable {
        let protocol_name: String
        let init_prologue: String
        let init_ephemeral: String
        let init_static: String?
        let init_remote_static: String?
        let init_psks: [String]?
        let resp_prologue: String
        let resp_ephemeral: String?
        let resp_static: String?
        let resp_remote_static: String?
        let resp_psks: [String]?
        let handshake_hash: String
        let messages: [Message]
    }

    static func vectorFiles() -> [URL] {
        var root = URL(fileURLWithPath: #filePath)
        while root.path != "/" && !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            root.deleteLastPathComponent()
        }
        let folder = root.deletingLastPathComponent().appendingPathComponent("shared/vectors/noise")
        var files = ((try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [])
            .filter { $0.pathExtension == "json" }
            .sorted { $0.path < $1.path }
        if let extra = ProcessInfo.processInfo.environment["NOISE_VECTORS"] {
            files += extra.split(separator: ":").map { URL(fileURLWithPath: String($0)) }
        }
        return files
    }

    static func loadVectors() throws -> [Vector] {
        try vectorFiles().flatMap { try JSONDecoder().decode(VectorFile.self, from: Data(contentsOf: $0)).vectors }
    }

    @Test func sharedVectorsArePresent() throws {
        // The shared folder holds 118 vectors; a missing folder must fail loudly, not pass vacuously.
        #expect(try Self.loadVectors().count >= 118)
    }

    @Test func everyVectorPasses() throws {
        let vectors = try Self.loadVectors()
        var passed = 0
        for vector in vectors {
            try Self.run(vector)
            passed += 1
        }
        print("Noise vectors passed: \(passed) of \(vectors.count)")
        #expect(passed == vectors.count)
    }

    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var chars = Array(s.utf8)[...]
        while chars.count >= 2 {
            out.append(UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16)!)
            chars = chars.dropFirst(2)
        }
        return out
    }

    static func keyPair(_ s: String?) throws -> X25519.KeyPair? {
        guard let s else { return nil }
        var bytes = hex(s)
        return try X25519.KeyPair(secretKey: SecretBytes(consuming: &bytes))
    }

    static func psks(_ list: [String]?) -> [SecretBytes] {
        (list ?? []).map { var b = hex($0); return SecretBytes(consuming: &b) }
    }

    static func run(_ v: Vector) throws {
        let name = v.protocol_name
        var initiator = try NoiseHandshakeState(
            protocolName: name, initiator: true, prologue: hex(v.init_prologue),
            staticKey: keyPair(v.init_static), ephemeralKey: keyPair(v.init_ephemeral),
            remoteStatic: v.init_remote_static.map(hex), psks: psks(v.init_psks))
        var responder = try NoiseHandshakeState(
            protocolName: name, initiator: false, prologue: hex(v.resp_prologue),
            staticKey: keyPair(v.resp_static), ephemeralKey: keyPair(v.resp_ephemeral),
            remoteStatic: v.resp_remote_static.map(hex), psks: psks(v.resp_psks))

        var initiatorCiphers: (send: NoiseCipherState, receive: NoiseCipherState)?
        var responderCiphers: (send: NoiseCipherState, receive: NoiseCipherState)?
        for (i, message) in v.messages.enumerated() {
            let payload = hex(message.payload)
            let expected = hex(message.ciphertext)
            let initiatorSends = initiator.pattern.isOneWay || i % 2 == 0
            if !initiator.isComplete {
                let ciphertext: [UInt8]
                let received: [UInt8]
                if initiatorSends {
                    ciphertext = try initiator.writeMessage(payload: payload)
                    received = try responder.readMessage(ciphertext)
                } else {
                    ciphertext = try responder.writeMessage(payload: payload)
                    received = try initiator.readMessage(ciphertext)
                }
                #expect(ciphertext == expected, "\(name) message \(i)")
                #expect(received == payload, "\(name) message \(i) payload")
                if initiator.isComplete {
                    #expect(responder.isComplete, "\(name)")
                    #expect(initiator.handshakeHash == hex(v.handshake_hash), "\(name) handshake hash")
                    #expect(responder.handshakeHash == hex(v.handshake_hash), "\(name) responder handshake hash")
                    initiatorCiphers = initiator.transportCiphers
                    responderCiphers = responder.transportCiphers
                }
            } else {
                let ciphertext: [UInt8]
                let received: [UInt8]
                if initiatorSends {
                    ciphertext = try initiatorCiphers!.send.encrypt(plaintext: payload)
                    received = try responderCiphers!.receive.decrypt(ciphertext: ciphertext)
                } else {
                    ciphertext = try responderCiphers!.send.encrypt(plaintext: payload)
                    received = try initiatorCiphers!.receive.decrypt(ciphertext: ciphertext)
                }
                #expect(ciphertext == expected, "\(name) transport message \(i)")
                #expect(received == payload, "\(name) transport message \(i) payload")
            }
        }
        #expect(initiator.isComplete, "\(name) handshake did not complete")
    }
}
