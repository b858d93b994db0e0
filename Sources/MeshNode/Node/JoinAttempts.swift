import Link
import Trust
/// What a joining node learned from dialling the members its invite token lists, and the message
/// it gives when none admitted it.
///
/// A member of another mesh cannot say so: the mesh ID is bound into the link handshake, so it
/// fails before the member could answer the token. The joiner can only tell a member that refused
/// the handshake (up, but not linking in this mesh's name) from one it could not reach (down or
/// unreachable), and say both.
struct JoinAttempts {
    let meshID: MeshID
    let addresses: [String]
    /// Handshakes refused, by address.
    private(set) var refusedHandshakes: [String: Int] = [:]
    /// The last other failure, by address: nil when the member linked but did not answer the token.
    private(set) var otherFailures: [String: String] = [:]
    /// Addresses that linked but did not answer the token.
    private(set) var linkedButSilent: Set<String> = []

    init(meshID: MeshID, addresses: [String]) {
        self.meshID = meshID
        self.addresses = addresses
    }

    /// Records a failed attempt at `address`: the dial's error, or nil when the link came up but
    /// the token went unanswered.
    mutating func record(_ address: String, linkError: (any Error)?) {
        switch linkError {
        case .some(LinkError.handshakeFailed):
            refusedHandshakes[address, default: 0] += 1
        case .some(let error):
            otherFailures[address] = "\(error)"
        case .none:
            linkedButSilent.insert(address)
        }
    }

    /// Whether every listed member refused the handshake at least `count` times and did nothing
    /// else: retrying will not help.
    func allRefusedHandshakes(atLeast count: Int) -> Bool {
        !addresses.isEmpty && addresses.allSatisfy { (refusedHandshakes[$0] ?? 0) >= count && otherFailures[$0] == nil && !linkedButSilent.contains($0) }
    }

    /// The message for a join that no member admitted.
    var failure: String {
        let mesh = "mesh \(meshID.short)…"
        guard !addresses.isEmpty else { return "the invite token lists no member address to contact; ask for a token from `warren invite` on a running member" }
        var parts: [String] = []
        let refused = addresses.filter { refusedHandshakes[$0] != nil && otherFailures[$0] == nil && !linkedButSilent.contains($0) }
        if !refused.isEmpty {
            parts.append("\(Self.list(refused)) refused the link handshake: \(refused.count == 1 ? "it is" : "they are") up but may belong to another mesh")
        }
        let silent = addresses.filter { linkedButSilent.contains($0) }
        if !silent.isEmpty {
            parts.append("\(Self.list(silent)) linked but did not answer the token")
        }
        let unreachable = addresses.filter { !refused.contains($0) && !silent.contains($0) }
        if !unreachable.isEmpty {
            let reasons = unreachable.compactMap { a in otherFailures[a].map { "\(a): \($0)" } }.prefix(3)
            parts.append("\(Self.list(unreachable)) could not be reached, \(unreachable.count == 1 ? "it" : "they") may be down"
                + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))"))
        }
        return "no member listed in the invite token accepted a link for \(mesh): \(parts.joined(separator: "; ")); "
            + "check that one of \(addresses.joined(separator: ", ")) is running, reachable and a member of \(mesh) (\(meshID))"
    }

    private static func list(_ addresses: [String]) -> String { addresses.joined(separator: ", ") }
}
