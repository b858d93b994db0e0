/// Stand-in signatures for the simulator and tests: a keyed hash of (author, message). Not
/// cryptography; it only lets tests tell a node's own signature from a forgery cheaply.
public enum SimulatedSignature {
    public static func signer(for author: NodeID) -> GossipNode.Signer {
        { message in signature(message, author) }
    }

    public static let verifier: GossipNode.Verifier = { sig, message, author in
        sig == signature(message, author)
    }

    static func signature(_ message: [UInt8], _ author: NodeID) -> [UInt8] {
        let a = FNV1a.hash(message, seed: FNV1a.hash(author.bytes))
        let b = FNV1a.mix(a ^ 0x5157_4152_5245_4e00)
        return (0..<8).map { UInt8((a >> UInt64($0 * 8)) & 0xff) } + (0..<8).map { UInt8((b >> UInt64($0 * 8)) & 0xff) }
    }
}
