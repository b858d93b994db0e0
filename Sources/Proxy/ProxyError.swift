// The Proxy's errors: what failed, for which value, and what to do next.


/// Errors of the data plane. Connectors (the link layer) report upstream failures with the first two.
public enum ProxyError: Error, Hashable, CustomStringConvertible {
    /// No link to the route's runner (HTTP routes answer 503).
    case upstreamNotConnected(Route)
    /// The runner is there but the app refused the connection (HTTP routes answer 502).
    case upstreamRefused(Route)
    /// The runner could not connect to the app on its loopback port (the link layer answers 502).
    case appRefused(port: Int, reason: String)
    /// The runner did not accept the connection in time (HTTP routes answer 504).
    case upstreamTimedOut(Route, seconds: Int64)
    /// A connection limit of the gateway is reached (HTTP routes answer 503 with Retry-After).
    case overloaded(Route, limit: String)
    /// A gateway listener could not be bound.
    case bindFailed(ListenAddress, reason: String)
    /// A TLS ClientHello that could not be parsed for SNI.
    case malformedClientHello(String)
    /// A client sent more than the configured limit before it could be routed.
    case routingDataTooLarge(limit: Int)
    /// An app answered 101 to a request that came over HTTP/2, where a stream cannot switch protocols.
    case upgradeOverHTTP2

    public var description: String {
        switch self {
        case .upstreamNotConnected(let route):
            "no link to \(route.upstream) for \(route); the runner is not connected, try again when it is"
        case .upstreamRefused(let route):
            "the app of \(route) refused the connection; check that it listens on 127.0.0.1:\(route.appPort)"
        case .appRefused(let port, let reason):
            "cannot connect to the app on 127.0.0.1:\(port): \(reason); check that the app is running"
        case .upstreamTimedOut(let route, let seconds):
            "the runner \(route.upstream) did not accept a connection for \(route) within \(seconds) s; check that it is connected and not overloaded"
        case .overloaded(let route, let limit):
            "\(route) is at the gateway's limit of \(limit); try again later or raise the limit"
        case .bindFailed(let address, let reason):
            "cannot listen on \(address): \(reason); free the port or choose another"
        case .malformedClientHello(let why):
            "malformed TLS ClientHello: \(why)"
        case .routingDataTooLarge(let limit):
            "the client sent more than \(limit) bytes before its host name could be read"
        case .upgradeOverHTTP2:
            "the app switched protocols on a request that came over HTTP/2; clients must upgrade over HTTP/1.1"
        }
    }
}
