/// A service as a dstack-style configuration file describes it, after validation and interpolation.
///
/// ```yaml
/// type: service
/// gateway: ${{ secrets.GATEWAY_IP }}
/// port: "5001:8000"        # external 5001 → app 8000; a bare 8000 means external 80
/// commands:
///   - python -m http.server 8000
/// ```
public struct ServiceConfiguration: Sendable, Equatable, Codable {
    /// The run's name (`name:`), if the file gives one.
    public var name: String?
    /// The gateway by address, gateway name or a domain that points at it; nil means "the mesh's only
    /// gateway" (dstack's `gateway: true`, or no `gateway:` at all).
    public var gateway: ResolvedString?
    public var port: PortMapping
    public var setup: [ResolvedString]
    public var commands: [ResolvedString]
    /// Environment of the commands, in file order.
    public var env: [EnvironmentVariable]
    public var python: String?
    public var image: String?
    /// A domain that routes to this service by host name (Host header / TLS SNI).
    public var domain: ResolvedString?
    public var workingDirectory: String?
    /// `proxy_protocol: true`: each connection to the app starts with a PROXY protocol v2 header
    /// naming the client's address and port and the gateway address it reached.
    public var proxyProtocol: Bool
    /// dstack's `https:` (true unless the file says `https: false`): a gateway with ACME terminates
    /// TLS for the service's domain. False opts out: the name is served over plain HTTP only, no
    /// certificate is ordered for it and plain HTTP is not redirected.
    public var https: Bool
    /// dstack fields that Warren accepts but does not act on, with a line to tell the user.
    public var ignoredFields: [String]

    public init(
        name: String? = nil, gateway: ResolvedString?, port: PortMapping, setup: [ResolvedString] = [],
        commands: [ResolvedString], env: [EnvironmentVariable] = [], python: String? = nil,
        image: String? = nil, domain: ResolvedString? = nil, workingDirectory: String? = nil,
        proxyProtocol: Bool = false, https: Bool = true, ignoredFields: [String] = []
    ) {
        self.https = https
        self.name = name
        self.gateway = gateway
        self.port = port
        self.setup = setup
        self.commands = commands
        self.env = env
        self.python = python
        self.image = image
        self.domain = domain
        self.workingDirectory = workingDirectory
        self.proxyProtocol = proxyProtocol
        self.ignoredFields = ignoredFields
    }
}

/// A string after `${{ … }}` interpolation. `display` shows secrets as `***`, for printing.
public struct ResolvedString: Sendable, Equatable, Codable, CustomStringConvertible {
    public var value: String
    public var display: String

    public init(_ value: String, display: String? = nil) {
        self.value = value
        self.display = display ?? value
    }

    public var description: String { display }
}

public struct EnvironmentVariable: Sendable, Equatable, Codable {
    public var name: String
    public var value: ResolvedString

    public init(name: String, value: ResolvedString) {
        self.name = name
        self.value = value
    }
}

/// `port: 8000` (external 80 → app 8000) or `port: "5001:8000"` (external 5001 → app 8000).
public struct PortMapping: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// The default external port when the file gives only the app's.
    public static let defaultExternalPort = 80

    public var external: Int
    public var app: Int

    public init(external: Int = PortMapping.defaultExternalPort, app: Int) {
        self.external = external
        self.app = app
    }

    public var description: String { "\(external) → \(app)" }
}
