public import Foundation

// The local API of admission and projects (see APITypes.swift for the rest):
//
//   GET    /v1/mesh                                  → MeshInfo
//   POST   /v1/mesh/remove                           ← MemberRemoveRequest → MeshInfo
//   POST   /v1/invites                               ← InviteRequest → InviteInfo
//   GET    /v1/projects                              → [ProjectInfo]
//   POST   /v1/projects                              ← ProjectCreateRequest → ProjectInfo
//   POST   /v1/projects/{project}/members            ← ProjectMemberRequest → ProjectInfo
//   DELETE /v1/projects/{project}/members/{node}     (rotates the project key)
//
// `warren mesh init` does not go through the API: it runs on the state directory of a stopped
// node (see `MeshSetup.initialize`).

/// The mesh as this node's roster has it.
public struct MeshInfo: Codable, Sendable, Equatable {
    /// Nil when the node never ran `warren mesh init` nor joined with a token (no admission).
    public var meshID: String?
    public var founder: String?
    public var members: [MemberInfo]
    /// Node IDs removed from the mesh.
    public var removed: [String]

    public init(meshID: String?, founder: String?, members: [MemberInfo], removed: [String]) {
        self.meshID = meshID
        self.founder = founder
        self.members = members
        self.removed = removed
    }
}

public struct MemberInfo: Codable, Sendable, Equatable {
    public var id: String
    public var role: String
    public var addresses: [String]

    public init(id: String, role: String, addresses: [String]) {
        self.id = id
        self.role = role
        self.addresses = addresses
    }
}

public struct InviteRequest: Codable, Sendable, Equatable {
    /// admin, gateway or runner.
    public var role: String
    public var ttlSeconds: Double

    public init(role: String, ttlSeconds: Double) {
        self.role = role
        self.ttlSeconds = ttlSeconds
    }
}

public struct InviteInfo: Codable, Sendable, Equatable {
    /// `warren1.…`: what `warren node start --join` takes.
    public var token: String
    public var role: String
    public var expires: Date

    public init(token: String, role: String, expires: Date) {
        self.token = token
        self.role = role
        self.expires = expires
    }
}

public struct MemberRemoveRequest: Codable, Sendable, Equatable {
    public var node: String

    public init(node: String) { self.node = node }
}

public struct ProjectCreateRequest: Codable, Sendable, Equatable {
    public var name: String

    public init(name: String) { self.name = name }
}

public struct ProjectMemberRequest: Codable, Sendable, Equatable {
    public var node: String

    public init(node: String) { self.node = node }
}

public struct ProjectInfo: Codable, Sendable, Equatable {
    public var name: String
    public var members: [String]
    /// The key generation: 1 at creation, one more at each rotation (a member removed).
    public var generation: UInt32
    /// Whether this node is a member (can read the project's secrets).
    public var isMember: Bool

    public init(name: String, members: [String], generation: UInt32, isMember: Bool) {
        self.name = name
        self.members = members
        self.generation = generation
        self.isMember = isMember
    }
}
