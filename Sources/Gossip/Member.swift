/// SWIM states of a member, as this node sees it.
public enum MemberState: UInt8, Hashable, Sendable, CustomStringConvertible {
    // On the wire: only append.
    case alive = 0
    case suspect = 1
    case dead = 2
    /// Left on purpose (announced its own departure).
    case left = 3

    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        }
    }
}

/// A member of the mesh as this node sees it.
public struct Member: Hashable, Sendable {
    public var id: NodeID
    /// Opaque to gossip ("host:port" or anything the transport understands).
    public var address: String
    /// Opaque bytes the member announces about itself (roles, version); bounded by the codec.
    public var metadata: [UInt8]
    /// Raised only by the member itself, to refute a suspicion.
    public var incarnation: UInt32
    public var state: MemberState

    public init(id: NodeID, address: String, metadata: [UInt8] = [], incarnation: UInt32 = 0, state: MemberState = .alive) {
        self.id = id
        self.address = address
        self.metadata = metadata
        self.incarnation = incarnation
        self.state = state
    }
}
