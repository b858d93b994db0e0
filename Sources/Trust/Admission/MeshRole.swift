/// What a member may do in the mesh. Only admins invite and remove members.
public enum MeshRole: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case admin = 1
    case gateway = 2
    case runner = 3

    public var description: String {
        switch self {
        case .admin: return "admin"
        case .gateway: return "gateway"
        case .runner: return "runner"
        }
    }

    /// Parses `admin`, `gateway` or `runner` (case-insensitive).
    public init?(_ text: String) {
        guard let role = MeshRole.allCases.first(where: { $0.description == text.lowercased() }) else { return nil }
        self = role
    }
}
