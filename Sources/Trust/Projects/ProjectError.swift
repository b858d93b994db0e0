public import Gossip

/// A project or secret operation that cannot be carried out; each says what and what to do next.
public enum ProjectError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidProjectName(String)
    case invalidSecretName(String)
    case noSuchProject(String)
    case projectExists(String)
    /// The node is not a member of the project: it holds the project's secrets only as ciphertext.
    case notAMember(NodeID, project: String)
    case alreadyAMember(NodeID, project: String)
    /// Only members of the mesh can be added to a project.
    case notAMeshMember(NodeID)
    case noSuchSecret(project: String, name: String)
    /// A project keeps at least one member, or its secrets would be lost.
    case lastMember(NodeID, project: String)
    case secretTooLarge(name: String, bytes: Int)
    /// The project key sealed to this node (or a secret) could not be opened.
    case keyUnavailable(project: String, reason: String)
    /// The project's key must be rotated once more before anything is sealed under it: members
    /// rotated it at the same moment, or a late removal still holds it (`Project.needsRekey`).
    case keyRotationContested(project: String)

    public var description: String {
        switch self {
        case .invalidProjectName(let name):
            return "invalid project name \"\(name.prefix(80))\": use 1 to \(ProjectName.maxLength) letters, digits, '-', '_' or '.', starting with a letter or digit"
        case .invalidSecretName(let name):
            return "invalid secret name \"\(name.prefix(80))\": use letters, digits and '_', not starting with a digit, at most 128 characters"
        case .noSuchProject(let p):
            return "there is no project \"\(p)\"; create it with `warren project create \(p)`"
        case .projectExists(let p):
            return "project \"\(p)\" already exists; see `warren project list`"
        case .notAMember(let node, let p):
            return "node \(node) is not a member of project \(p); a member can add it with `warren project add-member \(p) \(node)`"
        case .alreadyAMember(let node, let p):
            return "node \(node) is already a member of project \(p)"
        case .notAMeshMember(let node):
            return "node \(node) is not a member of this mesh; invite it first with `warren invite`"
        case .noSuchSecret(let p, let name):
            return "project \(p) has no secret \(name); see `warren secrets list --project \(p)`"
        case .lastMember(let node, let p):
            return "node \(node) is the last member of project \(p); add another member before removing it"
        case .secretTooLarge(let name, let bytes):
            return "secret \(name) is \(bytes) bytes; at most \(ProjectBook.maxSecretBytes) bytes are allowed"
        case .keyUnavailable(let p, let reason):
            return "the key of project \(p) could not be opened on this node (\(reason)); ask a member to remove and add this node again"
        case .keyRotationContested(let p):
            return "the key of project \(p) is being rotated again (members changed the project at the same moment); try again in a few seconds"
        }
    }
}
