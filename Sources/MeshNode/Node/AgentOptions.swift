public import Gossip

/// How `warren node start` runs a node.
public struct AgentOptions: Sendable {
    public static let defaultPort = 7420

    /// `$WARREN_HOME`: identity, state database, logs, the local API socket.
    public var stateDirectory: String
    /// Where links (TCP) and gossip (UDP) listen.
    public var listenHost: String
    public var listenPort: Int
    /// How other members reach this node ("host:port"); by default the listen address, or the
    /// public address when listening on every interface.
    public var advertise: String?
    public var isGateway: Bool
    /// A gateway's public address (what services name in `gateway:`).
    public var publicAddress: String?
    /// The address the gateway's public listeners bind: the public address itself when it is on
    /// this machine (loopback in tests), every interface otherwise (a cloud VM's NATed address).
    public var publicBindHost: String?
    public var gatewayName: String?
    public var domains: [String]
    public var backend: String
    /// Members to join through ("host:port").
    public var join: [String]
    public var meshID: String
    public var gossip: GossipConfig
    /// Where to serve Prometheus metrics, and what to serve (the process's registry).
    public var metrics: (host: String, port: Int, emit: MetricsServer.Emit)?
    /// Where a gateway serves the release it was installed from to new gateways (`ReleaseServer`).
    public var serveRelease: (host: String, port: Int)?
    /// A gateway's own ACME CA and HTTPS port (its `--acme-…` flags): names of host-routed
    /// services on `httpPort` get certificates and are served over HTTPS too. Nil: the mesh's
    /// ACME setting, when an admin made one; no TLS termination without either.
    public var acme: AcmeSettings? = nil
    /// Where a gateway serves HTTPS for names (`--https-port`), with the mesh's ACME setting.
    public var httpsPort: Int = 443
    /// A gateway's HTTP port for names (`--http-port`): a run on it without a domain of its own
    /// gets a name under the gateway's first domain.
    public var httpPort: Int = 80
    /// At most this many gateways are kept linked directly; the others are reached through a
    /// relayed link (`LinkRelay`). Nil: a link to every gateway the node leases from.
    public var maxGatewayLinks: Int? = nil

    public init(
        stateDirectory: String, listenHost: String = "0.0.0.0", listenPort: Int = AgentOptions.defaultPort,
        advertise: String? = nil, isGateway: Bool = false, publicAddress: String? = nil, publicBindHost: String? = nil,
        gatewayName: String? = nil, domains: [String] = [], backend: String = "local", join: [String] = [],
        meshID: String = "warren", gossip: GossipConfig = .lan,
        metrics: (host: String, port: Int, emit: MetricsServer.Emit)? = nil, serveRelease: (host: String, port: Int)? = nil
    ) {
        self.serveRelease = serveRelease
        self.stateDirectory = stateDirectory
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.advertise = advertise
        self.isGateway = isGateway
        self.publicAddress = publicAddress
        self.publicBindHost = publicBindHost
        self.gatewayName = gatewayName
        self.domains = domains
        self.backend = backend
        self.join = join
        self.meshID = meshID
        self.gossip = gossip
        self.metrics = metrics
    }

    var advertisedAddress: String {
        if let advertise { return advertise }
        let wildcard = listenHost == "0.0.0.0" || listenHost == "::"
        let host = wildcard ? (publicAddress ?? "127.0.0.1") : listenHost
        return HostPort.format(host, listenPort)
    }

    /// A runner advertising a private address is taken to be behind NAT: members gossip with it
    /// over the links it holds, and it keeps a link to the members it joined through.
    var linksOnly: Bool {
        guard !isGateway, let (host, _) = HostPort.parse(advertisedAddress) else { return false }
        return MemberTraits.isPrivate(host: host)
    }

    var resolvedPublicBindHost: String? {
        guard let publicAddress else { return nil }
        if let publicBindHost { return publicBindHost }
        return publicAddress.hasPrefix("127.") || publicAddress == "::1" ? publicAddress : "0.0.0.0"
    }
}

/// Why a node can't start, in words a person can act on.
public struct NodeStartError: Error, CustomStringConvertible {
    public var description: String
}
