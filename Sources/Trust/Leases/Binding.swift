/// What a service occupies on a gateway: a port of one of its addresses, whole or for one host name.
///
/// The conflict rule (DESIGN.md): an exclusive binding (raw TCP, or a gateway named by its address)
/// holds the whole port. Host-routed bindings (a gateway named by a domain that resolves to it)
/// share a port and conflict only on the same host name, compared case-insensitively with any
/// trailing dot ignored.
public struct Binding: Hashable, Codable, Sendable, CustomStringConvertible {
    /// The gateway's public address, as services name it (an IP address).
    public var address: String
    public var port: Int
    /// nil for an exclusive binding; otherwise the normalised host name it routes.
    public private(set) var host: String?

    public init(address: String, port: Int, host: String? = nil) {
        self.address = address
        self.port = port
        self.host = host.map(Binding.normalize)
    }

    public var isExclusive: Bool { host == nil }

    /// Whether two bindings can't both be held at once.
    public func conflicts(with other: Binding) -> Bool {
        guard address == other.address, port == other.port else { return false }
        guard let host, let otherHost = other.host else { return true }
        return host == otherHost
    }

    /// Lower case, no trailing dot: `API.Example.com.` and `api.example.com` are one host.
    public static func normalize(_ host: String) -> String {
        var h = host.lowercased()
        while h.hasSuffix(".") { h.removeLast() }
        return h
    }

    public var description: String {
        if let host { return "\(host):\(port) (on gateway \(address))" }
        return "port \(port) on gateway \(address)"
    }
}
