public import Gossip
public import Sodium

/// This node as a (possible) member of projects: its ID and the X25519 form of its identity key,
/// which opens the project keys sealed to it.
public struct LocalMember: Sendable {
    public let nodeID: NodeID
    public let keyAgreement: X25519.KeyPair

    public init(nodeID: NodeID, keyAgreement: X25519.KeyPair) {
        self.nodeID = nodeID
        self.keyAgreement = keyAgreement
    }

    /// From the node's Ed25519 identity: the X25519 keys are its Montgomery form.
    public init(identity: Ed25519.KeyPair) throws {
        self.nodeID = NodeID(bytes: identity.publicKey)!
        self.keyAgreement = try X25519.KeyPair(secretKey: Ed25519.x25519SecretKey(from: identity.secretKey))
    }
}
