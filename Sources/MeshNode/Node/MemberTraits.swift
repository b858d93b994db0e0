import Gossip

/// What a node announces about itself in its gossip metadata.
///
/// ```
///  byte 0: 1 for a gateway, 0 otherwise
///  byte 1: flags; bit 0 = reach me over links (behind NAT: UDP from outside does not arrive)
/// ```
/// Nodes that know only byte 0 ignore the rest.
struct MemberTraits: Hashable, Sendable {
    var isGateway: Bool
    /// Gossip to this node travels over the links it holds (see `MeshState`), not UDP.
    var linksOnly: Bool

    init(isGateway: Bool, linksOnly: Bool) {
        self.isGateway = isGateway
        self.linksOnly = linksOnly
    }

    init(metadata: [UInt8]) {
        isGateway = metadata.first == 1
        linksOnly = metadata.count > 1 && metadata[1] & 1 != 0
    }

    var metadata: [UInt8] { [isGateway ? 1 : 0, linksOnly ? 1 : 0] }

    /// Whether a node advertising `host` is likely behind NAT: an address of a private range
    /// (RFC 1918, shared 100.64/10, IPv6 unique-local and link-local), where members elsewhere
    /// can't send it datagrams. Wrong guesses cost little: gossip then takes a link that is up.
    static func isPrivate(host: String) -> Bool {
        let lower = host.lowercased()
        if lower.contains(":") {
            return lower.hasPrefix("fc") || lower.hasPrefix("fd") || lower.hasPrefix("fe8") || lower.hasPrefix("fe9")
                || lower.hasPrefix("fea") || lower.hasPrefix("feb")
        }
        let parts = host.split(separator: ".").compactMap { UInt8($0) }
        guard parts.count == 4 else { return false }
        switch (parts[0], parts[1]) {
        case (10, _), (192, 168): return true
        case (172, 16...31): return true
        case (100, 64...127): return true
        default: return false
        }
    }
}
