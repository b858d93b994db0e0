// The gateway's connection caps: per client address, per route, per runner.

import NIOConcurrencyHelpers

/// Counts what each client address, route and runner holds open on one gateway, so that one
/// client or one busy service can't take what the others need. Shared by every listener of a
/// `GatewayIngress`; thread-safe.
final class ConnectionLimits: Sendable {
    private struct State {
        var clients: [String: Int] = [:]
        var routes: [Route: Int] = [:]
        var runners: [String: Int] = [:]
        var refusals: [String: Int] = [:]
        var timeouts: [ProxyTimeout: Int] = [:]
    }

    private let state = NIOLockedValueBox(State())
    private let perClient: Int
    private let perRoute: Int
    private let perRunner: Int

    init(configuration: ProxyConfiguration) {
        self.perClient = configuration.maxConnectionsPerClient
        self.perRoute = configuration.maxConnectionsPerRoute
        self.perRunner = configuration.maxConnectionsPerRunner
    }

    /// Takes a place for one connection from `client`; false (and nothing taken) when it holds
    /// the limit already.
    func admitClient(_ client: String) -> Bool {
        self.state.withLockedValue { state in
            guard state.clients[client, default: 0] < self.perClient else {
                state.refusals["client", default: 0] += 1
                return false
            }
            state.clients[client, default: 0] += 1
            return true
        }
    }

    func releaseClient(_ client: String) {
        self.state.withLockedValue { state in
            let left = state.clients[client, default: 1] - 1
            state.clients[client] = left > 0 ? left : nil
        }
    }

    /// Takes a place for one upstream connection of `route`; the limit that refused it otherwise.
    func admitUpstream(_ route: Route) -> String? {
        self.state.withLockedValue { state in
            if state.routes[route, default: 0] >= self.perRoute {
                state.refusals["route", default: 0] += 1
                return "\(self.perRoute) connections per service"
            }
            if state.runners[route.upstream, default: 0] >= self.perRunner {
                state.refusals["runner", default: 0] += 1
                return "\(self.perRunner) connections per runner"
            }
            state.routes[route, default: 0] += 1
            state.runners[route.upstream, default: 0] += 1
            return nil
        }
    }

    func releaseUpstream(_ route: Route) {
        self.state.withLockedValue { state in
            let routeLeft = state.routes[route, default: 1] - 1
            state.routes[route] = routeLeft > 0 ? routeLeft : nil
            let runnerLeft = state.runners[route.upstream, default: 1] - 1
            state.runners[route.upstream] = runnerLeft > 0 ? runnerLeft : nil
        }
    }

    /// Counts an HTTP exchange the gateway ended because `timeout` ran out.
    func countTimeout(_ timeout: ProxyTimeout) {
        self.state.withLockedValue { $0.timeouts[timeout, default: 0] += 1 }
    }

    /// What is held now and how many connections each kind of limit refused so far.
    var snapshot: ConnectionLimitsSnapshot {
        self.state.withLockedValue { state in
            ConnectionLimitsSnapshot(
                clientConnections: state.clients.values.reduce(0, +),
                upstreamConnections: state.routes.values.reduce(0, +),
                refusedByClientLimit: state.refusals["client", default: 0],
                refusedByRouteLimit: state.refusals["route", default: 0],
                refusedByRunnerLimit: state.refusals["runner", default: 0],
                requestHeadTimeouts: state.timeouts[.requestHead, default: 0],
                answerTimeouts: state.timeouts[.answer, default: 0]
            )
        }
    }
}

/// The gateway's connection counts at one moment (for metrics and tests).
public struct ConnectionLimitsSnapshot: Sendable, Equatable {
    /// Client connections open on every listener.
    public var clientConnections: Int
    /// Connections to apps (streams to runners) open.
    public var upstreamConnections: Int
    public var refusedByClientLimit: Int
    public var refusedByRouteLimit: Int
    public var refusedByRunnerLimit: Int
    /// Clients answered `408`: their request head was not complete in time.
    public var requestHeadTimeouts: Int = 0
    /// Clients answered `504`: the app accepted but sent no response head in time.
    public var answerTimeouts: Int = 0
}

/// The HTTP timeouts that end an exchange with an answer from the gateway.
enum ProxyTimeout: Hashable {
    case requestHead
    case answer
}
