import Foundation
public import Trust

/// A gateway as the resolver needs to know it: from its gossiped gateway entry.
public struct KnownGateway: Sendable, Equatable {
    public var name: String
    public var address: String
    public var domains: [String]
    /// The port of its HTTP listeners for names: a run on it without a domain of its own gets a
    /// name under the gateway's first domain.
    public var httpPort: Int
    /// Where it serves HTTPS for the names it terminates TLS for (it has ACME); nil: it does not.
    public var httpsPort: Int?

    public init(name: String, address: String, domains: [String] = [], httpPort: Int = 80, httpsPort: Int? = nil) {
        self.name = name
        self.address = address
        self.domains = domains
        self.httpPort = httpPort
        self.httpsPort = httpsPort
    }

    /// The name a run called `runName` gets under this gateway's first domain, as dstack gives
    /// `<run-name>.<gateway domain>`: lower-case, '_' (not allowed in a host name) as '-'. Nil
    /// for a gateway without a domain.
    public func name(forRun runName: String) -> String? {
        guard let domain = domains.first.map(Binding.normalize), !domain.isEmpty else { return nil }
        return runName.lowercased().replacingOccurrences(of: "_", with: "-") + "." + domain
    }
}

/// Turns a configuration's `gateway:` (and `domain:`) into the binding a service asks for.
///
/// `gateway:` may name a gateway by its address or by its name (the binding then holds the whole
/// port), or by a domain that resolves to a gateway's address (the binding is then host-routed and
/// shares the port with other domains).
public struct GatewayResolver: Sendable {
    public typealias Lookup = @Sendable (String) -> [String]

    public var gateways: [KnownGateway]
    /// Host name → addresses. The default reads `$WARREN_HOSTS` (hosts-file format) first, then DNS.
    public var lookup: Lookup

    public init(gateways: [KnownGateway], lookup: @escaping Lookup = GatewayResolver.systemLookup) {
        self.gateways = gateways
        self.lookup = lookup
    }

    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// The binding for `gateway` (nil: the mesh's only gateway) on `port`, routed by `domain` if given.
    public func binding(gateway: String?, domain: String?, port: Int) throws(Failure) -> Binding {
        let target = try find(gateway)
        if let domain {
            return Binding(address: target.gateway.address, port: port, host: domain)
        }
        return Binding(address: target.gateway.address, port: port, host: target.host)
    }

    /// Every binding the service asks for: one per gateway that serves it. A domain announced by
    /// several gateways (or resolving to several gateways' addresses) is a group, and the service
    /// is published on each member of it, host-routed; an address or name is one gateway.
    ///
    /// A run with no domain of its own (no `domain:`, and `gateway:` absent or naming a gateway by
    /// name or address) on the HTTP port of a gateway that has a domain gets the name
    /// `<runName>.<domain>` there, host-routed, so that runs share the gateway's port by name.
    /// Other ports stay whole-port bindings: they may carry any protocol, not only HTTP.
    public func bindings(gateway: String?, domain: String?, port: Int, runName: String? = nil) throws(Failure) -> [Binding] {
        if domain == nil, let runName {
            let target = try find(gateway)
            if target.host == nil, port == target.gateway.httpPort, let host = target.gateway.name(forRun: runName) {
                return [Binding(address: target.gateway.address, port: port, host: host)]
            }
        }
        if let reference = gateway ?? domain, !gateways.contains(where: { $0.address == reference || $0.name == reference }) {
            // Without `gateway:`, only gateways announcing the domain make it a group: a domain
            // named for routing alone is not looked up.
            let group = serving(Binding.normalize(reference), resolve: gateway != nil)
            if group.count > 1 {
                let host = Binding.normalize(domain ?? reference)
                return group.map { Binding(address: $0.address, port: port, host: host) }
            }
        }
        return [try binding(gateway: gateway, domain: domain, port: port)]
    }

    /// The gateways serving `host`, by name: those announcing it, else those it resolves to.
    private func serving(_ host: String, resolve: Bool) -> [KnownGateway] {
        let announcing = gateways.filter { $0.domains.map(Binding.normalize).contains(host) }
        if !announcing.isEmpty || !resolve { return announcing.sorted { $0.name < $1.name } }
        let addresses = lookup(host)
        return gateways.filter { addresses.contains($0.address) }.sorted { $0.name < $1.name }
    }

    private func find(_ reference: String?) throws(Failure) -> (gateway: KnownGateway, host: String?) {
        guard let reference else {
            switch gateways.count {
            case 1: return (gateways[0], nil)
            case 0: throw Failure(description: "no gateway in the mesh yet: create one with `warren gateway create`, or start a node with `warren node start --gateway`")
            default: throw Failure(description: "the mesh has \(gateways.count) gateways (\(names)); name one with `gateway:` in the configuration")
            }
        }
        if let g = gateways.first(where: { $0.address == reference || $0.name == reference }) { return (g, nil) }
        let host = Binding.normalize(reference)
        if let g = gateways.first(where: { $0.domains.map(Binding.normalize).contains(host) }) { return (g, host) }
        let addresses = lookup(host)
        if let g = gateways.first(where: { addresses.contains($0.address) }) { return (g, host) }
        let resolved = addresses.isEmpty ? "it does not resolve" : "it resolves to \(addresses.joined(separator: ", "))"
        throw Failure(description: """
            `gateway: \(reference)` is not a gateway of the mesh: no gateway has that name or address or announces that \
            domain (a gateway announces its `--domain`s; those need no DNS), and \(resolved) as resolved on the node \
            running the service, \(Self.lookupPlaces). Gateways: \(gateways.isEmpty ? "none" : names)
            """)
    }

    private var names: String { gateways.map { "\($0.name) (\($0.address))" }.joined(separator: ", ") }

    /// Where the node looks names up: the node's environment counts, not the shell that ran `warren`.
    static var lookupPlaces: String {
        if let path = ProcessInfo.processInfo.environment["WARREN_HOSTS"], !path.isEmpty {
            return "in $WARREN_HOSTS (\(path)) of the node's environment, then in DNS"
        }
        return "in DNS (WARREN_HOSTS, a hosts file, is read only from the node's environment, and is not set there)"
    }

    /// `$WARREN_HOSTS` (lines of `ADDRESS NAME…`, as /etc/hosts) first, then the system resolver.
    public static let systemLookup: Lookup = { host in
        if let path = ProcessInfo.processInfo.environment["WARREN_HOSTS"], let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let found = hostsFile(text, host)
            if !found.isEmpty { return found }
        }
        return dns(host)
    }

    static func hostsFile(_ text: String, _ host: String) -> [String] {
        var out: [String] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.prefix { $0 != "#" }.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2 else { continue }
            if fields.dropFirst().contains(where: { Binding.normalize(String($0)) == host }) { out.append(String(fields[0])) }
        }
        return out
    }

    static func dns(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var out: [String] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let n = node {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(n.pointee.ai_addr, n.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                let s = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !out.contains(s) { out.append(s) }
            }
            node = n.pointee.ai_next
        }
        return out
    }
}
