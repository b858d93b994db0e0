/// The link protocol's names, for both ends: the `:path` of every kind of stream a node opens on a
/// link. A path is part of the protocol: only append, never rename.
public enum LinkPath: String, Sendable, CaseIterable {
    /// One gossip message that is too large for a datagram, or must not go as one (NAT).
    case gossip = "/gossip"
    /// A runner asks the gateway that owns a binding for its lease, or gives it back.
    case leaseGrant = "/lease/grant"
    case leaseRelease = "/lease/release"
    /// A public connection, gateway → runner, to the app port of a run (headers: `LinkHeader`).
    case proxy = "/proxy"
    /// A node outside a project asks a member to rotate the key without another member.
    case projectRemoveMember = "/project/remove-member"
    /// A node with an invite token asks a member to admit it.
    case admissionJoin = "/admission/join"
    /// The stream that carries the nested HTTP/2 session in which the dialler of a link is the
    /// client (see `LinkEndpoint`).
    case reverse = "/warren/link/reverse"
    /// A member asks another to relay a link to a node it cannot reach directly (`relay-to`).
    case relay = "/relay"
    /// The relaying member offers the far node the relayed link (`relay-from`).
    case relayAccept = "/relay/accept"

    /// The path a stream's request headers name (`/` when they name none).
    public static func of(_ headers: [(String, String)]) -> String {
        headers.first { $0.0 == ":path" }?.1 ?? "/"
    }
}

/// The headers of `LinkPath.proxy` and the relay streams, for both ends.
public enum LinkHeader: String, Sendable, CaseIterable {
    /// The app port of the run the connection is for.
    case appPort = "warren-app-port"
    /// The run's ID: the runner dials the port only for a run it serves.
    case run = "warren-run"
    /// The public client's address and the gateway's listening address ("host:port"), for the
    /// PROXY protocol header of a run that asked for one.
    case client = "warren-client"
    case server = "warren-server"
    /// On a `LinkPath.relay` stream: the node the caller wants a link to.
    case relayTo = "warren-relay-to"
    /// On a `LinkPath.relayAccept` stream: the node the relayed link comes from.
    case relayFrom = "warren-relay-from"

    /// This header's value in `headers`, if it is there.
    public func value(in headers: [(String, String)]) -> String? {
        headers.first { $0.0 == rawValue }?.1
    }
}
