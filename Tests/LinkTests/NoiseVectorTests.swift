import Foundation
import LinkTestSupport
import Link
import Sodium
import Testing

/// The cacophony-format vectors in `../shared/vectors/noise/` (relative to the package root), plus
/// any files named in `NOISE_VECTORS` (separated by `:`), all run through `NoiseHandshakeState`.
///
/// The reader follows the published vector format (the Noise wiki's "Test vectors" page, used by
/// cacophony, snow and noise-c): only `protocol_name`, `init_ephemeral` and each message's
/// `ciphertext` are required. Prologues, payloads and psk lists that are absent are empty; a missing
/// `handshake_hash` is not checked; the older single `init_psk`/`resp_psk` fields are read too.
/// Vectors this implementation cannot run (other curves, hashes or ciphers, hybrid forward secrecy,
/// fallback handshakes, vectors expected to fail) are skipped and counted, never silently passed.
struct NoiseVectorTests {
    struct VectorFile: Decodable { let vectors: [Vector] }

    struct Message: Decodable {
        let payload: [UInt8]
        let ciphertext: [UInt8]

        enum CodingKeys: String, CodingKey { case payload, ciphertext }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            payload = try hex(c.decodeIfPresent(String.self, forKey: .payload) ?? "", key: CodingKeys.payload, in: c)
            ciphertext = try hex(c.decode(String.self, forKey: .ciphertext), key: CodingKeys.ciphertext, in: c)
        }

        init(payload: [UInt8], ciphertext: [UInt8]) {
            self.payload = payload
            self.ciphertext = ciphertext
        }
    }

    struct Vector: Decodable {
        let protocolName: String
        let initPrologue: [UInt8]
        let initEphemeral: [UInt8]?
        let initStatic: [UInt8]?
        let initRemoteStatic: [UInt8]?
        let initRemoteEphemeral: [UInt8]?
        let initPSKs: [[UInt8]]
        let respPrologue: [UInt8]
        let respEphemeral: [UInt8]?
        let respStatic: [UInt8]?
        let respRemoteStatic: [UInt8]?
        let respRemoteEphemeral: [UInt8]?
        let respPSKs: [[UInt8]]
        let handshakeHash: [UInt8]?
        /// Set by suites that test hybrid forward secrecy (`hfs`), fallback, or expected failure.
        let hybrid: String?
        let fallback: Bool
        let fail: Bool
        let messages: [Message]

        enum CodingKeys: String, CodingKey {
            case protocol_name, init_prologue, init_ephemeral, init_static, init_remote_static, init_remote_ephemeral, init_psks, init_psk
            case resp_prologue, resp_ephemeral, resp_static, resp_remote_static, resp_remote_ephemeral, resp_psks, resp_psk
            case handshake_hash, hybrid, fallback, fallback_pattern, fail, messages
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            func bytes(_ key: CodingKeys) throws -> [UInt8]? {
                try c.decodeIfPresent(String.self, forKey: key).map { try hex($0, key: key, in: c) }
            }
            func psks(_ list: CodingKeys, _ single: CodingKeys) throws -> [[UInt8]] {
                if let many = try c.decodeIfPresent([String].self, forKey: list) { return try many.map { try hex($0, key: list, in: c) } }
                return try bytes(single).map { [$0] } ?? []
            }
            protocolName = try c.decode(String.self, forKey: .protocol_name)
            initPrologue = try bytes(.init_prologue) ?? []
            initEphemeral = try bytes(.init_ephemeral)
            initStatic = try bytes(.init_static)
            initRemoteStatic = try bytes(.init_remote_static)
            initRemoteEphemeral = try bytes(.init_remote_ephemeral)
            initPSKs = try psks(.init_psks, .init_psk)
            respPrologue = try bytes(.resp_prologue) ?? []
            respEphemeral = try bytes(.resp_ephemeral)
            respStatic = try bytes(.resp_static)
            respRemoteStatic = try bytes(.resp_remote_static)
            respRemoteEphemeral = try bytes(.resp_remote_ephemeral)
            respPSKs = try psks(.resp_psks, .resp_psk)
            handshakeHash = try bytes(.handshake_hash)
            hybrid = try c.decodeIfPresent(String.self, forKey: .hybrid)
            fallback = try c.decodeIfPresent(Bool.self, forKey: .fallback) ?? (c.contains(.fallback_pattern))
            fail = try c.decodeIfPresent(Bool.self, forKey: .fail) ?? false
            messages = try c.decode([Message].self, forKey: .messages)
        }
    }

    /// What running a file gave: vectors passed, and vectors skipped by reason.
    struct Tally: CustomStringConvertible {
        var passed = 0
        var skipped: [String: Int] = [:]
        var total: Int { passed + skipped.values.reduce(0, +) }
        var description: String {
            let reasons = skipped.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            return "\(passed) of \(total) passed" + (reasons.isEmpty ? "" : "; skipped: \(reasons)")
        }
    }

    static func hex<Key: CodingKey>(_ s: String, key: Key, in container: KeyedDecodingContainer<Key>) throws -> [UInt8] {
        guard let bytes = hexBytes(s) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "\"\(s.prefix(40))\" is not an even number of hex digits")
        }
        return bytes
    }

    static func hexBytes(_ s: String) -> [UInt8]? {
        let chars = Array(s.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let byte = UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(byte)
            i += 2
        }
        return out
    }

    static func packageRoot() -> URL {
        var root = URL(fileURLWithPath: #filePath)
        while root.path != "/" && !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            root.deleteLastPathComponent()
        }
        return root
    }

    static func sharedFiles() -> [URL] {
        let folder = packageRoot().deletingLastPathComponent().appendingPathComponent("shared/vectors/noise")
        return ((try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [])
            .filter { $0.pathExtension == "json" }
            .sorted { $0.path < $1.path }
    }

    static func extraFiles() -> [URL] {
        (ProcessInfo.processInfo.environment["NOISE_VECTORS"] ?? "").split(separator: ":").map { URL(fileURLWithPath: String($0)) }
    }

    static func load(_ file: URL) throws -> [Vector] {
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw VectorFileError(file: file.path, problem: "cannot be read (\(error.localizedDescription)); NOISE_VECTORS names files separated by ':'")
        }
        do { return try JSONDecoder().decode(VectorFile.self, from: data).vectors } catch {
            throw VectorFileError(file: file.path, problem: "is not in the Noise test-vector format ({\"vectors\": [...]}): \(error)")
        }
    }

    struct VectorFileError: Error, CustomStringConvertible {
        let file: String
        let problem: String
        var description: String { "Noise vector file \(file) \(problem)" }
    }

    /// Runs every vector of `file`; a file none of whose vectors could run fails, so a suite for
    /// other primitives does not pass vacuously.
    static func runFile(_ file: URL) throws -> Tally {
        var tally = Tally()
        for vector in try load(file) {
            if let reason = try run(vector) { tally.skipped[reason, default: 0] += 1 } else { tally.passed += 1 }
        }
        print("Noise vectors in \(file.lastPathComponent): \(tally)")
        return tally
    }

    @Test func sharedVectorsArePresent() throws {
        // The shared folder holds 118 vectors; a missing folder must fail loudly, not pass vacuously.
        #expect(try Self.sharedFiles().reduce(0) { $0 + (try Self.load($1).count) } >= 118)
    }

    @Test func everySharedVectorPasses() throws {
        for file in Self.sharedFiles() {
            let tally = try Self.runFile(file)
            #expect(tally.skipped.isEmpty && tally.passed == tally.total, "\(file.lastPathComponent): \(tally)")
        }
    }

    @Test(.enabled(if: !extraFiles().isEmpty, "NOISE_VECTORS is not set"))
    func everyNamedVectorFileRuns() throws {
        for file in Self.extraFiles() {
            let tally = try Self.runFile(file)
            #expect(tally.passed > 0, "\(file.path): no vector uses a protocol this implementation supports (\(tally))")
        }
    }

    static func keyPair(_ bytes: [UInt8]?) throws -> X25519.KeyPair? {
        guard var bytes else { return nil }
        return try X25519.KeyPair(secretKey: SecretBytes(consuming: &bytes))
    }

    static func secrets(_ list: [[UInt8]]) -> [SecretBytes] {
        list.map { var b = $0; return SecretBytes(consuming: &b) }
    }

    /// Runs one vector, recording mismatches as test failures; returns why it was skipped, if it was.
    @discardableResult
    static func run(_ v: Vector) throws -> String? {
        let name = v.protocolName
        if v.hybrid != nil { return "hybrid (hfs)" }
        if v.fallback { return "fallback" }
        if v.fail { return "expected to fail" }
        var initiator: NoiseHandshakeState
        var responder: NoiseHandshakeState
        do {
            initiator = try NoiseHandshakeState(
                protocolName: name, initiator: true, prologue: v.initPrologue,
                staticKey: keyPair(v.initStatic), ephemeralKey: keyPair(v.initEphemeral),
                remoteStatic: v.initRemoteStatic, remoteEphemeral: v.initRemoteEphemeral, psks: secrets(v.initPSKs))
            responder = try NoiseHandshakeState(
                protocolName: name, initiator: false, prologue: v.respPrologue,
                staticKey: keyPair(v.respStatic), ephemeralKey: keyPair(v.respEphemeral),
                remoteStatic: v.respRemoteStatic, remoteEphemeral: v.respRemoteEphemeral, psks: secrets(v.respPSKs))
        } catch NoiseError.unsupportedProtocol {
            return "unsupported protocol"
        }

        var initiatorCiphers: (send: NoiseCipherState, receive: NoiseCipherState)?
        var responderCiphers: (send: NoiseCipherState, receive: NoiseCipherState)?
        for (i, message) in v.messages.enumerated() {
            let initiatorSends = initiator.pattern.isOneWay || i % 2 == 0
            let ciphertext: [UInt8]
            let received: [UInt8]
            if !initiator.isComplete {
                if initiatorSends {
                    ciphertext = try initiator.writeMessage(payload: message.payload)
                    received = try responder.readMessage(ciphertext)
                } else {
                    ciphertext = try responder.writeMessage(payload: message.payload)
                    received = try initiator.readMessage(ciphertext)
                }
                if initiator.isComplete {
                    #expect(responder.isComplete, "\(name)")
                    if let hash = v.handshakeHash {
                        #expect(initiator.handshakeHash == hash, "\(name) handshake hash")
                        #expect(responder.handshakeHash == hash, "\(name) responder handshake hash")
                    }
                    initiatorCiphers = initiator.transportCiphers
                    responderCiphers = responder.transportCiphers
                }
            } else if initiatorSends {
                ciphertext = try initiatorCiphers!.send.encrypt(plaintext: message.payload)
                received = try responderCiphers!.receive.decrypt(ciphertext: ciphertext)
            } else {
                ciphertext = try responderCiphers!.send.encrypt(plaintext: message.payload)
                received = try initiatorCiphers!.receive.decrypt(ciphertext: ciphertext)
            }
            #expect(ciphertext == message.ciphertext, "\(name) message \(i)")
            #expect(received == message.payload, "\(name) message \(i) payload")
        }
        #expect(initiator.isComplete, "\(name) handshake did not complete")
        return nil
    }

    // MARK: - The reader against a hand-made file

    static func hexString(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// Messages for `pattern` with the fixed keys of a published vector and empty payloads, made by
    /// this implementation: the published suites have no empty payload, and the point here is only
    /// that an absent or empty `payload` reads as zero bytes.
    static func emptyPayloadMessages(_ v: [String: Any], count: Int) throws -> [[String: Any]] {
        func bytes(_ key: String) -> [UInt8]? { (v[key] as? String).flatMap(hexBytes) }
        let name = try #require(v["protocol_name"] as? String)
        var initiator = try NoiseHandshakeState(protocolName: name, initiator: true, staticKey: keyPair(bytes("init_static")),
                                                ephemeralKey: keyPair(bytes("init_ephemeral")), remoteStatic: bytes("init_remote_static"))
        var responder = try NoiseHandshakeState(protocolName: name, initiator: false, staticKey: keyPair(bytes("resp_static")),
                                                ephemeralKey: keyPair(bytes("resp_ephemeral")), remoteStatic: bytes("resp_remote_static"))
        var messages: [[String: Any]] = []
        var initiatorCiphers: (send: NoiseCipherState, receive: NoiseCipherState)?
        var responderCiphers: (send: NoiseCipherState, receive: NoiseCipherState)?
        for i in 0..<count {
            let fromInitiator = initiator.pattern.isOneWay || i % 2 == 0
            let ciphertext: [UInt8]
            if initiatorCiphers != nil, responderCiphers != nil {
                if fromInitiator {
                    ciphertext = try initiatorCiphers!.send.encrypt(plaintext: [])
                    _ = try responderCiphers!.receive.decrypt(ciphertext: ciphertext)
                } else {
                    ciphertext = try responderCiphers!.send.encrypt(plaintext: [])
                    _ = try initiatorCiphers!.receive.decrypt(ciphertext: ciphertext)
                }
            } else {
                if fromInitiator {
                    ciphertext = try initiator.writeMessage(payload: [])
                    _ = try responder.readMessage(ciphertext)
                } else {
                    ciphertext = try responder.writeMessage(payload: [])
                    _ = try initiator.readMessage(ciphertext)
                }
                initiatorCiphers = initiator.transportCiphers
                responderCiphers = responder.transportCiphers
            }
            // Alternate the two spellings of an empty payload: absent, and "".
            messages.append(i % 2 == 0 ? ["ciphertext": hexString(ciphertext)] : ["payload": "", "ciphertext": hexString(ciphertext)])
        }
        return messages
    }

    @Test func optionalFieldsMayBeAbsentAndUnknownProtocolsAreCounted() throws {
        let published = try #require(Self.sharedFiles().first { $0.lastPathComponent.contains("chachapoly") }, "shared/vectors/noise is missing")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: published)) as? [String: Any])
        let vectors = try #require(object["vectors"] as? [[String: Any]])
        func vector(_ name: String) throws -> [String: Any] {
            try #require(vectors.first { $0["protocol_name"] as? String == name }, "\(name) is not among the published vectors")
        }
        var handMade: [[String: Any]] = []

        // Published vectors with the optional fields removed: no handshake_hash; no statics or
        // psk lists where the pattern has none; a psk vector with the older single-psk spelling.
        for name in ["Noise_NN_25519_ChaChaPoly_BLAKE2b", "Noise_XX_25519_ChaChaPoly_BLAKE2b", "Noise_N_25519_ChaChaPoly_BLAKE2b"] {
            var v = try vector(name)
            v["handshake_hash"] = nil
            v["init_psks"] = nil
            v["resp_psks"] = nil
            handMade.append(v)
        }
        var psk = try vector("Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b")
        let pskList = try #require(psk["init_psks"] as? [String])
        psk["init_psks"] = nil
        psk["resp_psks"] = nil
        psk["init_psk"] = pskList[0]
        psk["resp_psk"] = pskList[0]
        handMade.append(psk)
        var emptyList = try vector("Noise_NN_25519_ChaChaPoly_BLAKE2b")
        emptyList["init_psks"] = [String]()
        emptyList["resp_psks"] = [String]()
        handMade.append(emptyList)

        // Empty payloads, absent prologues, a one-way pattern with no responder ephemeral.
        for name in ["Noise_NN_25519_ChaChaPoly_BLAKE2b", "Noise_N_25519_ChaChaPoly_BLAKE2b"] {
            var v = try vector(name)
            for key in ["init_prologue", "resp_prologue", "handshake_hash", "init_psks", "resp_psks"] { v[key] = nil }
            if name.hasPrefix("Noise_N_") { v["resp_ephemeral"] = nil }
            v["messages"] = try Self.emptyPayloadMessages(v, count: 4)
            handMade.append(v)
        }

        // Vectors this implementation cannot run: skipped and counted, not passed.
        var otherCurve = try vector("Noise_NN_25519_ChaChaPoly_BLAKE2b")
        otherCurve["protocol_name"] = "Noise_NN_448_ChaChaPoly_BLAKE2b"
        var otherHash = otherCurve
        otherHash["protocol_name"] = "Noise_XX_25519_ChaChaPoly_SHA512"
        var hybrid = otherCurve
        hybrid["protocol_name"] = "Noise_NNhfs_25519+Kyber1024_ChaChaPoly_BLAKE2b"
        hybrid["hybrid"] = "Kyber1024"
        var fallback = try vector("Noise_XX_25519_ChaChaPoly_BLAKE2b")
        fallback["protocol_name"] = "Noise_XXfallback_25519_ChaChaPoly_BLAKE2b"
        fallback["fallback"] = true
        handMade += [otherCurve, otherHash, hybrid, fallback]

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("noise-vectors-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: ["vectors": handMade]).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }

        let decoded = try Self.load(file)
        #expect(decoded[0].handshakeHash == nil && decoded[0].initPSKs.isEmpty && decoded[0].initStatic == nil)
        #expect(decoded[3].initPSKs.count == 1 && decoded[3].respPSKs.count == 1)
        #expect(decoded[5].initPrologue.isEmpty && decoded[5].messages.allSatisfy { $0.payload.isEmpty })
        #expect(decoded[6].respEphemeral == nil)

        let tally = try Self.runFile(file)
        #expect(tally.passed == 7, "\(tally)")
        #expect(tally.skipped == ["unsupported protocol": 2, "hybrid (hfs)": 1, "fallback": 1], "\(tally)")
    }

    @Test func malformedFilesAreNamedWithTheProblem() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("noise-vectors-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(#"{"vectors": [{"protocol_name": "Noise_NN_25519_ChaChaPoly_BLAKE2b", "messages": [{"ciphertext": "abc"}]}]}"#.utf8).write(to: file)
        let error = #expect(throws: VectorFileError.self) { try Self.load(file) }
        #expect(error?.description.contains(file.path) == true)
        #expect(error?.description.contains("hex digits") == true, "\(String(describing: error))")
        #expect(throws: VectorFileError.self) { try Self.load(file.appendingPathExtension("missing")) }
    }
}
