public import Gossip
internal import NIOCore
internal import Sodium

/// What a completed link handshake established.
struct LinkHandshakeResult {
    let peer: NodeID
    let suite: LinkSuite
    let send: NoiseCipherState
    let receive: NoiseCipherState
    let handshakeHash: [UInt8]
}

/// The link handshake as a state machine with no channel: bytes in, bytes out.
///
/// Wire layout (all lengths big-endian):
/// ```
/// initiator → responder: suite (1 byte) ‖ len (2) ‖ Noise XX message 1 (e)
/// responder → initiator: len (2) ‖ message 2 (e, ee, s, es; payload = identity)
/// initiator → responder: len (2) ‖ message 3 (s, se; payload = identity)
/// identity payload: link protocol version (1) ‖ Ed25519 public key (32) ‖ Ed25519 signature (64)
/// ```
/// The prologue binds the suite byte, the mesh ID and the protocol version. Each side checks that
/// the peer's Noise static key is the X25519 form of the Ed25519 key in its payload, and that the
/// signature, made with that Ed25519 key, covers `identityContext ‖ h ‖ s`: the handshake hash
/// before the message that carries the payload, and the sender's Noise static key. The static key
/// alone does not prove the node ID: two Ed25519 keys (x and -x, bit 7 of byte 31 flipped) map
/// to one X25519 key, so without the signature one key pair could link under two node IDs. The
/// hash makes the signature good for this handshake only.
struct LinkHandshake {
    /// Handshake messages of XX are a few dozen bytes; anything longer is not a warren peer.
    static let maxFrameLength = 1024

    enum Role {
        case initiator(suite: LinkSuite, expecting: NodeID?)
        case responder(admit: @Sendable (NodeID) -> Bool)
    }

    enum Action {
        case send([UInt8])
        case complete(LinkHandshakeResult)
    }

    private enum State {
        case awaitingSuite
        case handshaking(NoiseHandshakeState, LinkSuite)
        case done
    }

    private let role: Role
    private let identity: NodeIdentity
    private let meshID: String
    private var state: State = .awaitingSuite

    init(role: Role, identity: NodeIdentity, meshID: String) {
        self.role = role
        self.identity = identity
        self.meshID = meshID
    }

    /// Domain separation: this signature can never be taken for an entry's or a record's.
    static let identityContext = Array("warren-link identity v2".utf8) + [0]
    static let signatureLength = 64
    static let payloadLength = 1 + 32 + signatureLength

    /// What the identity signature covers (see the type's comment).
    static func identityBinding(handshakeHash: [UInt8], staticKey: [UInt8]) -> [UInt8] {
        identityContext + handshakeHash + staticKey
    }

    /// This node's identity payload for the message written next; `hashBefore` is the handshake
    /// hash before that message.
    private func payload(hashBefore: [UInt8]) -> [UInt8] {
        [LinkProtocol.version] + identity.id.bytes
            + identity.keyPair.sign(Self.identityBinding(handshakeHash: hashBefore, staticKey: identity.staticKey.publicKey))
    }

    private func makeNoise(suite: LinkSuite, initiator: Bool) throws -> NoiseHandshakeState {
        do {
            return try NoiseHandshakeState(
                protocolName: suite.protocolName, initiator: initiator,
                prologue: LinkProtocol.prologue(suite: suite, meshID: meshID), staticKey: identity.staticKey)
        } catch let error as NoiseError {
            throw LinkError.handshakeFailed(error)
        }
    }

    /// What the initiator sends first: the suite byte and message 1. Nothing for a responder.
    mutating func start() throws -> [Action] {
        guard case .initiator(let suite, _) = role else { return [] }
        var noise = try makeNoise(suite: suite, initiator: true)
        let message = try noiseStep { try noise.writeMessage() }
        state = .handshaking(noise, suite)
        return [.send([suite.rawValue] + Self.frame(message))]
    }

    /// Consumes what it can of `input`; bytes after the last handshake message stay in it (they
    /// are the first transport records).
    mutating func receive(_ input: inout ByteBuffer) throws -> [Action] {
        var actions: [Action] = []
        while true {
            switch state {
            case .done:
                return actions
            case .awaitingSuite:
                guard case .responder = role else { throw LinkError.handshakeFailed(.outOfOrder) }
                guard let byte = input.readInteger(as: UInt8.self) else { return actions }
                guard let suite = LinkSuite(rawValue: byte) else { throw LinkError.unknownSuite(byte) }
                state = .handshaking(try makeNoise(suite: suite, initiator: false), suite)
            case .handshaking(var noise, let suite):
                guard let length = input.getInteger(at: input.readerIndex, as: UInt16.self) else { return actions }
                guard length > 0, Int(length) <= Self.maxFrameLength else { throw LinkError.badHandshakeFrame(length: Int(length)) }
                guard input.readableBytes >= 2 + Int(length) else { return actions }
                input.moveReaderIndex(forwardBy: 2)
                let message = input.readBytes(length: Int(length))!
                let hashBefore = noise.handshakeHash
                let peerPayload = try noiseStep { try noise.readMessage(message) }
                if case .responder = role, !noise.isComplete {
                    // Message 1 carries no identity; answer with message 2.
                    let mine = payload(hashBefore: noise.handshakeHash)
                    let reply = try noiseStep { try noise.writeMessage(payload: mine) }
                    actions.append(.send(Self.frame(reply)))
                    state = .handshaking(noise, suite)
                    continue
                }
                let peer = try Self.verifyIdentity(peerPayload, remoteStatic: noise.remoteStatic, hashBefore: hashBefore)
                switch role {
                case .initiator(_, let expected):
                    if let expected, expected != peer { throw LinkError.wrongPeer(expected: expected, actual: peer) }
                    let mine = payload(hashBefore: noise.handshakeHash)
                    let final = try noiseStep { try noise.writeMessage(payload: mine) }
                    actions.append(.send(Self.frame(final)))
                case .responder(let admit):
                    guard admit(peer) else { throw LinkError.peerRefused(peer) }
                }
                guard let ciphers = noise.transportCiphers else { throw LinkError.handshakeFailed(.outOfOrder) }
                state = .done
                actions.append(.complete(LinkHandshakeResult(
                    peer: peer, suite: suite, send: ciphers.send, receive: ciphers.receive, handshakeHash: noise.handshakeHash)))
                return actions
            }
        }
    }

    /// The peer's node ID, once its payload proves it (see the type's comment).
    static func verifyIdentity(_ payload: [UInt8], remoteStatic: [UInt8]?, hashBefore: [UInt8]) throws -> NodeID {
        guard payload.count == payloadLength, payload[0] == LinkProtocol.version,
              let id = NodeID(bytes: Array(payload[1..<33])),
              let remoteStatic,
              let derived = try? Ed25519.x25519PublicKey(from: id.bytes),
              Sodium.constantTimeEqual(derived, remoteStatic),
              Ed25519.verify(signature: Array(payload[33...]),
                             message: identityBinding(handshakeHash: hashBefore, staticKey: remoteStatic), publicKey: id.bytes)
        else { throw LinkError.badIdentity }
        return id
    }

    private func noiseStep<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as NoiseError {
            throw LinkError.handshakeFailed(error)
        }
    }

    static func frame(_ message: [UInt8]) -> [UInt8] {
        [UInt8(message.count >> 8), UInt8(message.count & 0xff)] + message
    }
}
