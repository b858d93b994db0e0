// The routing table: which route serves each listen address, and on shared ports, each host name.

/// What a listen address serves.
public enum Binding: Hashable, Sendable {
    /// The whole port belongs to one route; bytes are spliced without looking at them.
    case exclusive(Route)
    /// The port is shared; each connection is routed by HTTP `Host` header or TLS SNI.
    /// Keys are normalized host names (see `HostName.normalize`).
    case hostRouted([String: Route])
}

/// The answer of a routing-table lookup.
public enum RouteLookup: Hashable, Sendable {
    case route(Route)
    /// A shared port with no binding for this host name (normalized).
    case unknownHost(String)
    /// Nothing listens here (the binding was removed after the connection was accepted).
    case noBinding
}

/// Why a binding could not be added.
public enum RoutingTableError: Error, Hashable, CustomStringConvertible {
    /// The address (or an overlapping one) is held by another binding.
    case addressHeld(ListenAddress, by: Binding)
    /// The host name on this address is held by another route.
    case hostHeld(String, on: ListenAddress, by: Route)
    /// The host name is empty once normalized.
    case invalidHost(String)
    case invalidPort(Int)

    public var description: String {
        switch self {
        case .addressHeld(let address, let binding):
            switch binding {
            case .exclusive(let route):
                "\(address) is held exclusively by \(route); use another port"
            case .hostRouted(let hosts):
                "\(address) is shared by host-routed bindings (\(hosts.keys.sorted().joined(separator: ", "))); "
                    + "use another port, or bind by host name"
            }
        case .hostHeld(let host, let address, let route):
            "host \"\(host)\" on \(address) is held by \(route); use another host name"
        case .invalidHost(let host):
            "host name \"\(host)\" is empty; give a domain name"
        case .invalidPort(let port):
            "port \(port) is outside 0...65535"
        }
    }
}

/// The bindings of one gateway: a value fed from outside (MeshNode derives it from leases).
///
/// Conflict policy belongs to the caller; the table only refuses to hold two bindings that could
/// not both be served, with a typed error.
public struct RoutingTable: Hashable, Sendable {
    public private(set) var bindings: [ListenAddress: Binding] = [:]

    public init() {}

    /// Gives the whole of `address` to `route`. Adding the same binding again is a no-op.
    public mutating func addExclusive(_ route: Route, on address: ListenAddress) throws(RoutingTableError) {
        try Self.check(address.port)
        if case .exclusive(route) = self.bindings[address] { return }
        if let binding = self.overlapping(address, allowingHostRouted: false) {
            throw .addressHeld(address, by: binding)
        }
        self.bindings[address] = .exclusive(route)
    }

    /// Routes connections for `host` on the shared `address` to `route`. Adding the same binding
    /// again is a no-op.
    public mutating func addHost(_ host: String, route: Route, on address: ListenAddress) throws(RoutingTableError) {
        try Self.check(address.port)
        let name = HostName.normalize(host)
        guard !name.isEmpty else { throw .invalidHost(host) }
        if let binding = self.overlapping(address, allowingHostRouted: true) {
            throw .addressHeld(address, by: binding)
        }
        var hosts: [String: Route] = [:]
        if case .hostRouted(let existing) = self.bindings[address] { hosts = existing }
        if let holder = hosts[name], holder != route { throw .hostHeld(name, on: address, by: holder) }
        hosts[name] = route
        self.bindings[address] = .hostRouted(hosts)
    }

    /// Removes the exclusive binding on `address`, if any.
    public mutating func removeExclusive(on address: ListenAddress) {
        if case .exclusive = self.bindings[address] { self.bindings[address] = nil }
    }

    /// Removes `host` from the shared `address`; the listener goes when its last host does.
    public mutating func removeHost(_ host: String, on address: ListenAddress) {
        guard case .hostRouted(var hosts) = self.bindings[address] else { return }
        hosts[HostName.normalize(host)] = nil
        self.bindings[address] = hosts.isEmpty ? nil : .hostRouted(hosts)
    }

    /// Removes every binding of a run (its leases ended).
    public mutating func removeRun(_ runID: String) {
        for (address, binding) in self.bindings {
            switch binding {
            case .exclusive(let route) where route.runID == runID:
                self.bindings[address] = nil
            case .hostRouted(var hosts):
                hosts = hosts.filter { $0.value.runID != runID }
                self.bindings[address] = hosts.isEmpty ? nil : .hostRouted(hosts)
            default:
                break
            }
        }
    }

    /// The route for a connection accepted on `address`; `host` is the HTTP Host or TLS SNI name,
    /// ignored on exclusive bindings.
    public func lookup(_ address: ListenAddress, host: String?) -> RouteLookup {
        switch self.bindings[address] {
        case nil:
            return .noBinding
        case .exclusive(let route):
            return .route(route)
        case .hostRouted(let hosts):
            let name = HostName.normalize(host ?? "")
            if let route = hosts[name] { return .route(route) }
            return .unknownHost(name)
        }
    }

    /// Another address that would fight with `address` for its socket, or the same address when it
    /// holds a binding of the wrong kind.
    private func overlapping(_ address: ListenAddress, allowingHostRouted: Bool) -> Binding? {
        for (held, binding) in self.bindings where held.overlaps(address) {
            if held == address, allowingHostRouted, case .hostRouted = binding { continue }
            return binding
        }
        return nil
    }

    private static func check(_ port: Int) throws(RoutingTableError) {
        guard (0...65535).contains(port) else { throw .invalidPort(port) }
    }
}
