public import Sodium

/// The HandshakeState of the Noise specification (section 5.3) for `Noise_<pattern>_25519_<cipher>_BLAKE2b`,
/// driven by the pattern's token lists, so every pattern of the specification works, psk modifiers included.
///
/// Call `writeMessage` / `readMessage` in turn; when `isComplete`, take the transport ciphers.
public struct NoiseHandshakeState: Sendable {
    /// The longest Noise message.
    public static let maxMessageLength = 65535

    public let protocolName: String
    public let pattern: NoisePattern
    public let cipher: NoiseCipher
    public let isInitiator: Bool

    private var symmetric: NoiseSymmetricState
    private let localStatic: X25519.KeyPair?
    private var localEphemeral: X25519.KeyPair?
    public private(set) var remoteStatic: [UInt8]?
    public private(set) var remoteEphemeral: [UInt8]?
    private var psks: [SecretBytes]
    private var messageIndex = 0
    private var transport: (NoiseCipherState, NoiseCipherState)?

    /// - Parameters:
    ///   - protocolName: e.g. `Noise_XX_25519_AESGCM_BLAKE2b`.
    ///   - staticKey: this side's static key pair, if the pattern has one.
    ///   - ephemeralKey: a fixed ephemeral key pair (test vectors only); a fresh one otherwise.
    ///   - remoteStatic: the peer's static public key when the pattern has it as a pre-message.
    ///   - psks: pre-shared keys (32 bytes each), in the order the pattern uses them.
    public init(
        protocolName: String, initiator: Bool, prologue: [UInt8] = [],
        staticKey: X25519.KeyPair? = nil, ephemeralKey: X25519.KeyPair? = nil,
        remoteStatic: [UInt8]? = nil, remoteEphemeral: [UInt8]? = nil, psks: [SecretBytes] = []
    ) throws {
        let parts = protocolName.split(separator: "_")
        guard parts.count == 5, parts[0] == "Noise", parts[2] == "25519", parts[4] == "BLAKE2b",
              let pattern = NoisePattern(name: String(parts[1])),
              let cipher = NoiseCipher(rawValue: String(parts[3]))
        else { throw NoiseError.unsupportedProtocol(protocolName) }
        guard psks.count == pattern.pskCount, psks.allSatisfy({ $0.count == 32 }) else {
            throw NoiseError.missingKey("\(pattern.pskCount) pre-shared key(s) of 32 bytes")
        }
        self.protocolName = protocolName
        self.pattern = pattern
        self.cipher = cipher
        self.isInitiator = initiator
        self.localStatic = staticKey
        self.localEphemeral = ephemeralKey
        self.remoteStatic = remoteStatic
        self.remoteEphemeral = remoteEphemeral
        self.psks = psks
        symmetric = NoiseSymmetricState(protocolName: protocolName, cipher: cipher)
        symmetric.mixHash(prologue)

        // Pre-messages: the initiator's first, each side's keys from its own point of view.
        for (tokens, ownedByInitiator) in [(pattern.initiatorPreMessage, true), (pattern.responderPreMessage, false)] {
            let mine = ownedByInitiator == initiator
            for token in tokens {
                switch token {
                case .s:
                    guard let key = mine ? staticKey?.publicKey : remoteStatic, key.count == X25519.keyLength else {
                        throw NoiseError.missingKey(mine ? "this node's static key" : "the peer's static key")
                    }
                    symmetric.mixHash(key)
                case .e:
                    guard let key = mine ? ephemeralKey?.publicKey : remoteEphemeral, key.count == X25519.keyLength else {
                        throw NoiseError.missingKey(mine ? "this node's ephemeral key" : "the peer's ephemeral key")
                    }
                    symmetric.mixHash(key)
                    if pattern.usesPSK { symmetric.mixKey(key) }
                default:
                    throw NoiseError.unsupportedProtocol(protocolName)
                }
            }
        }
    }

    /// True once every handshake message has been written or read.
    public var isComplete: Bool { transport != nil }

    /// True when the next handshake message is this side's to write.
    public var isMyTurn: Bool { (messageIndex % 2 == 0) == isInitiator }

    /// The handshake hash `h`, the channel binding of the session.
    public var handshakeHash: [UInt8] { symmetric.handshakeHash }

    /// The transport ciphers of this side: sending and receiving. Nil before completion.
    public var transportCiphers: (send: NoiseCipherState, receive: NoiseCipherState)? {
        guard let (c1, c2) = transport else { return nil }
        return isInitiator ? (c1, c2) : (c2, c1)
    }

    /// The next handshake message, carrying `payload` (encrypted once a key is set).
    public mutating func writeMessage(payload: [UInt8] = []) throws -> [UInt8] {
        guard !isComplete, isMyTurn else { throw NoiseError.outOfOrder }
        var out: [UInt8] = []
        for token in pattern.messages[messageIndex] {
            switch token {
            case .e:
                let e = localEphemeral ?? X25519.KeyPair.generate()
                localEphemeral = e
                out += e.publicKey
                symmetric.mixHash(e.publicKey)
                if pattern.usesPSK { symmetric.mixKey(e.publicKey) }
            case .s:
                guard let s = localStatic else { throw NoiseError.missingKey("this node's static key") }
                out += try symmetric.encryptAndHash(s.publicKey)
            case .ee, .es, .se, .ss:
                try mixDH(token)
            case .psk:
                try mixPSK()
            }
        }
        out += try symmetric.encryptAndHash(payload)
        guard out.count <= Self.maxMessageLength else { throw NoiseError.messageTooLong(out.count) }
        advance()
        return out
    }

    /// Reads the peer's next handshake message and returns its payload.
    public mutating func readMessage(_ message: [UInt8]) throws -> [UInt8] {
        guard !isComplete, !isMyTurn else { throw NoiseError.outOfOrder }
        guard message.count <= Self.maxMessageLength else { throw NoiseError.messageTooLong(message.count) }
        var rest = message[...]
        func take(_ n: Int) throws -> [UInt8] {
            guard rest.count >= n else { throw NoiseError.messageTooShort }
            defer { rest = rest.dropFirst(n) }
            return Array(rest.prefix(n))
        }
        for token in pattern.messages[messageIndex] {
            switch token {
            case .e:
                let re = try take(X25519.keyLength)
                remoteEphemeral = re
                symmetric.mixHash(re)
                if pattern.usesPSK { symmetric.mixKey(re) }
            case .s:
                let length = X25519.keyLength + (symmetric.cipherState.hasKey ? NoiseCipher.tagLength : 0)
                remoteStatic = try symmetric.decryptAndHash(try take(length))
            case .ee, .es, .se, .ss:
                try mixDH(token)
            case .psk:
                try mixPSK()
            }
        }
        if symmetric.cipherState.hasKey, rest.count < NoiseCipher.tagLength { throw NoiseError.messageTooShort }
        let payload = try symmetric.decryptAndHash(Array(rest))
        advance()
        return payload
    }

    private mutating func advance() {
        messageIndex += 1
        if messageIndex == pattern.messages.count { transport = symmetric.split() }
    }

    private mutating func mixPSK() throws {
        guard !psks.isEmpty else { throw NoiseError.missingKey("a pre-shared key") }
        let psk = psks.removeFirst()
        symmetric.mixKeyAndHash(psk.copyBytes())
    }

    /// `ee`, `es`, `se`, `ss`: the first letter is the initiator's key, the second the responder's.
    private mutating func mixDH(_ token: NoisePattern.Token) throws {
        let (initiatorKey, responderKey): (Character, Character) = {
            let letters = Array(token.rawValue)
            return (letters[0], letters[1])
        }()
        let localKind = isInitiator ? initiatorKey : responderKey
        let remoteKind = isInitiator ? responderKey : initiatorKey
        guard let local = localKind == "e" ? localEphemeral : localStatic else {
            throw NoiseError.missingKey(localKind == "e" ? "this node's ephemeral key" : "this node's static key")
        }
        guard let remote = remoteKind == "e" ? remoteEphemeral : remoteStatic else {
            throw NoiseError.missingKey(remoteKind == "e" ? "the peer's ephemeral key" : "the peer's static key")
        }
        let shared: SecretBytes
        do {
            shared = try X25519.sharedSecret(secretKey: local.secretKey, publicKey: remote)
        } catch {
            throw NoiseError.invalidPublicKey
        }
        symmetric.mixKey(shared.copyBytes())
    }
}
