public import Foundation
public import Gossip

/// Why a member refused to admit a node presenting an invite token. Each case says which check
/// failed and what to do next; the joining node prints it as it is.
public enum AdmissionRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// No token was presented.
    case noToken
    /// The text is not a token (truncated, altered encoding, not a Warren token).
    case malformed(String)
    /// The token is for another mesh than the contacted member's.
    case otherMesh(token: MeshID, local: MeshID)
    /// The signature does not verify against the inviter named in the token.
    case forged(inviter: NodeID)
    /// The inviter is not an admin of this mesh (not a member, removed, or another role).
    case notAnAdmin(inviter: NodeID, role: MeshRole?)
    /// The token's expiry has passed.
    case expired(at: Date)
    /// The token was already used to admit a node.
    case reused(tokenID: String)
    /// The joining node was removed from the mesh; removal is final for a node ID.
    case removedNode(NodeID)

    public var description: String {
        switch self {
        case .noToken:
            return "no invite token was presented; ask an admin to run `warren invite`, then start with `--join TOKEN`"
        case .malformed(let why):
            return "the invite token is malformed (\(why)); copy the whole token again, or ask for a new one"
        case .otherMesh(let token, let local):
            return "the invite token is for mesh \(token), but this member belongs to mesh \(local); use a token of mesh \(local)"
        case .forged(let inviter):
            return "the invite token's signature does not verify against its inviter \(inviter.short)…: the token was forged or altered; ask an admin for a new one"
        case .notAnAdmin(let inviter, let role):
            let what = role.map { "a member with role \($0), not admin" } ?? "not a member of this mesh"
            return "the invite token was issued by node \(inviter.short)…, which is \(what); only admins may invite: ask an admin for a token"
        case .expired(let at):
            return "the invite token expired at \(ISO8601DateFormatter().string(from: at)); ask an admin for a new one"
        case .reused(let id):
            return "the invite token was already used (token \(id.prefix(8))…); each token admits one node: ask an admin for a new one"
        case .removedNode(let id):
            return "node \(id.short)… was removed from this mesh; a removed node rejoins only with a new identity (a new state directory) and a new token"
        }
    }
}

/// A local admission operation that cannot be carried out (bad input from the user or the CLI).
public enum AdmissionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Only admins may invite or remove members.
    case notAnAdmin(NodeID)
    case invalidAddresses(String)
    /// An invitation must be valid for some time.
    case invalidTTL(Double)
    /// The node to remove is not a member.
    case notAMember(NodeID)

    public var description: String {
        switch self {
        case .notAnAdmin(let id):
            return "node \(id.short)… is not an admin of this mesh; only admins may invite or remove members"
        case .invalidAddresses(let why):
            return "invalid member addresses: \(why)"
        case .invalidTTL(let seconds):
            return "an invitation's time to live must be positive and at most 7 days (\(Int(InviteToken.maxTTL)) s), got \(seconds) s: "
                + "a token is a key to the mesh until it expires; use e.g. --ttl 1h, and a new token when it has expired"
        case .notAMember(let id):
            return "node \(id) is not a member of this mesh"
        }
    }
}
