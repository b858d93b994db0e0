// Routes and listen addresses: the opaque identities the routing table maps connections to.

/// Where a public connection goes: an opaque identity the Proxy passes to its `UpstreamConnector`.
///
/// The Proxy never interprets `upstream`; MeshNode puts the runner's node ID there and uses it to
/// find the runner's link.
public struct Route: Hashable, Sendable, CustomStringConvertible {
    /// The run (service instance) that holds the binding.
    public var runID: String
    /// The node that runs the app (for MeshNode, the runner's node ID).
    public var upstream: String
    /// The app's port on the runner's loopback interface.
    public var appPort: Int
    /// On a host-routed port: the gateway terminates TLS for this name with the certificate of
    /// `ProxyConfiguration.tls` and proxies HTTP; false routes TLS by SNI untouched (passthrough).
    public var terminatesTLS: Bool

    public init(runID: String, upstream: String, appPort: Int, terminatesTLS: Bool = false) {
        self.runID = runID
        self.upstream = upstream
        self.appPort = appPort
        self.terminatesTLS = terminatesTLS
    }

    public var description: String { "run \"\(self.runID)\" on \(self.upstream) port \(self.appPort)" }
}

/// A socket address a gateway listens on, as text (`"0.0.0.0"`, `"127.0.0.2"`, `"::"`) and a port.
public struct ListenAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// True for the any-address of either family: such a listener also holds the port on every
    /// other address.
    public var isWildcard: Bool { self.host == "0.0.0.0" || self.host == "::" || self.host == "*" }

    /// Whether two listeners would fight over the same socket.
    public func overlaps(_ other: ListenAddress) -> Bool {
        self.port == other.port && (self.host == other.host || self.isWildcard || other.isWildcard)
    }

    public var description: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }
}

/// Host names as the routing table compares them: case-insensitive, a trailing dot ignored.
public enum HostName {
    /// The canonical form of a host name: lowercased ASCII, without one trailing dot.
    public static func normalize(_ name: some StringProtocol) -> String {
        var result = name.lowercased()
        if result.hasSuffix(".") { result.removeLast() }
        return result
    }

    /// The host part of an HTTP `Host` header value, normalized: `"Example.COM.:8080"` → `"example.com"`,
    /// `"[::1]:80"` → `"::1"`.
    public static func fromHostHeader(_ value: some StringProtocol) -> String {
        let trimmed = value.trimmingSpaces()
        if trimmed.hasPrefix("["), let close = trimmed.firstIndex(of: "]") {
            return self.normalize(trimmed[trimmed.index(after: trimmed.startIndex)..<close])
        }
        if let colon = trimmed.lastIndex(of: ":") {
            return self.normalize(trimmed[..<colon])
        }
        return self.normalize(trimmed)
    }
}

extension StringProtocol {
    fileprivate func trimmingSpaces() -> Substring {
        let s = Substring(self)
        let start = s.firstIndex(where: { $0 != " " && $0 != "\t" }) ?? s.endIndex
        let end = s.lastIndex(where: { $0 != " " && $0 != "\t" }).map { s.index(after: $0) } ?? start
        return s[start..<Swift.max(start, end)]
    }
}
