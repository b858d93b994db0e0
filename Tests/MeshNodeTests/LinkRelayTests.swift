import Gossip
import Logging
@testable import Link
import LinkTestSupport
@testable import MeshNode
import NIOConcurrencyHelpers
import NIOCore
import Proxy
import Testing

/// One relay hop, in process: a gateway G and a runner R that hold no link to each other, both
/// linked to a member M. Real links (Noise over loopback TCP), the real `LinkRelay`, `LinkPool`
/// and `LinkConnector`.
@Suite(.timeLimit(.minutes(1)))
struct LinkRelayTests {
    /// A node of the test: an endpoint whose streams go to its `LinkRelay` (`/relay`,
    /// `/relay/accept`) or are echoed (`/proxy`, as a runner's app would answer).
    final class TestNode: Sendable {
        let identity: NodeIdentity
        let endpoint: LinkEndpoint
        let pool: LinkPool
        let port: Int
        private let relay: NIOLockedValueBox<LinkRelay?>
        var id: NodeID { identity.id }

        init(gateways: NIOLockedValueBox<Set<NodeID>>, relayIdleTimeout: Duration = LinkPool.defaultRelayIdleTimeout) async throws {
            let identity = NodeIdentity.generate()
            let relay = NIOLockedValueBox<LinkRelay?>(nil)
            self.identity = identity
            self.relay = relay
            let endpoint = LinkEndpoint(identity: identity, meshID: "relay-test", acceptStream: { headers, stream in
                let path = headers.first { $0.0 == ":path" }?.1
                guard let relay = relay.withLockedValue({ $0 }) else { return 503 }
                switch path {
                case LinkRelay.openPath: return await relay.serve(headers, stream)
                case LinkRelay.acceptPath: return await relay.accept(headers, stream)
                case "/proxy":
                    do {
                        try await stream.channel.pipeline.addHandler(CollectHandler(eventLoop: stream.channel.eventLoop, echo: true))
                        return 200
                    } catch {
                        return 500
                    }
                default: return 404
                }
            })
            let known: @Sendable () async -> Set<NodeID> = { gateways.withLockedValue { $0 } }
            let pool = LinkPool(endpoint: endpoint, logger: Logger(label: "test"), relayIdleTimeout: relayIdleTimeout, gateways: known)
            self.endpoint = endpoint
            self.pool = pool
            port = try await endpoint.listen(host: "127.0.0.1", port: 0)
            relay.withLockedValue {
                $0 = LinkRelay(localID: identity.id, pool: pool, endpoint: endpoint, gateways: known, logger: Logger(label: "test"))
            }
        }

        func dial(_ other: TestNode) async throws -> Link {
            try await endpoint.dial(host: "127.0.0.1", port: other.port, expecting: other.id)
        }

        func shutdown() async {
            await pool.shutdown()
            await endpoint.shutdown()
        }
    }

    struct Trio {
        let gateways: NIOLockedValueBox<Set<NodeID>>
        let g: TestNode, m: TestNode, r: TestNode

        /// G and R each dial M; G announced a gateway.
        static func make(relayIdleTimeout: Duration = LinkPool.defaultRelayIdleTimeout) async throws -> Trio {
            let gateways = NIOLockedValueBox<Set<NodeID>>([])
            let trio = Trio(gateways: gateways, g: try await TestNode(gateways: gateways, relayIdleTimeout: relayIdleTimeout),
                            m: try await TestNode(gateways: gateways), r: try await TestNode(gateways: gateways))
            gateways.withLockedValue { $0 = [trio.g.id] }
            _ = try await trio.g.dial(trio.m)
            _ = try await trio.r.dial(trio.m)
            return trio
        }

        func shutdown() async {
            for node in [g, m, r] { await node.shutdown() }
        }
    }

    /// Sends `text` on `channel`, half-closes, and returns what came back before the input closed.
    /// A `/proxy` stream on `link` with a handler that collects what comes back.
    static func openCollecting(on link: Link) async throws -> (stream: LinkStream, collect: CollectHandler) {
        let collect = NIOLockedValueBox<CollectHandler?>(nil)
        let stream = try await link.openStream(headers: [(":path", "/proxy")]) { channel in
            let handler = CollectHandler(eventLoop: channel.eventLoop)
            collect.withLockedValue { $0 = handler }
            return channel.pipeline.addHandler(handler)
        }
        return (stream, try #require(collect.withLockedValue { $0 }))
    }

    static func echo(_ text: String, on channel: any Channel, collect: CollectHandler) async throws -> String {
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
        try await channel.close(mode: .output).get()
        return String(decoding: try await collect.inputClosed.futureResult.get(), as: UTF8.self)
    }

    /// The gateway's ingress, given a route to R, opens its stream through M: the link it makes is
    /// R's, proved end to end, and runs through M.
    @Test func aGatewayReachesARunnerItHoldsNoLinkToThroughAMemberLinkedToIt() async throws {
        let trio = try await Trio.make()
        #expect(trio.g.pool.existing(trio.r.id) == nil)
        let connector = LinkConnector(pool: trio.g.pool)
        let route = Route(runID: "run-1", upstream: trio.r.id.description, appPort: 8080)
        let collect = NIOLockedValueBox<CollectHandler?>(nil)
        let channel = try await connector.connect(
            to: route, clientAddress: nil, serverAddress: nil, on: trio.g.endpoint.links[0].eventLoop,
            initializer: { channel in
                let handler = CollectHandler(eventLoop: channel.eventLoop)
                collect.withLockedValue { $0 = handler }
                return channel.pipeline.addHandler(handler)
            }
        ).get()
        let handler = try #require(collect.withLockedValue { $0 })
        #expect(try await Self.echo("through one hop", on: channel, collect: handler) == "through one hop")

        let link = try #require(trio.g.pool.existing(trio.r.id))
        #expect(link.relay == trio.m.id)
        #expect(link.peer == trio.r.id)
        #expect(trio.g.pool.existingDirect(trio.r.id) == nil)
        // R holds the other end, registered as a link from G through M.
        #expect(trio.r.pool.existing(trio.g.id)?.relay == trio.m.id)
        await trio.shutdown()
    }

    /// A runner past its bound of gateway links reaches a gateway through a relay the same way.
    @Test func aRunnerPastItsGatewayLinkBoundIsRelayed() async throws {
        let gateways = NIOLockedValueBox<Set<NodeID>>([])
        let g1 = try await TestNode(gateways: gateways), g2 = try await TestNode(gateways: gateways)
        let r = try await RunnerNode.make(gateways: gateways, limit: 1)
        gateways.withLockedValue { $0 = [g1.id, g2.id] }
        _ = try await g2.dial(g1)
        _ = try await r.endpoint.dial(host: "127.0.0.1", port: g1.port, expecting: g1.id)
        let link = try await r.pool.gatewayLink(to: g2.id, address: "127.0.0.1:\(g2.port)")
        #expect(link.relay == g1.id)
        #expect(r.pool.existingDirect(g2.id) == nil)
        for node in [g1, g2] { await node.shutdown() }
        await r.pool.shutdown(); await r.endpoint.shutdown()
    }

    /// Within its bound a runner dials the gateway once, for the call and the link it keeps: the
    /// link returned is direct, and a direct link is kept (made again after it drops), with a
    /// relayed link possible only as a stand-in that never replaces it.
    @Test func aRunnerWithinItsGatewayLinkBoundKeepsADirectLink() async throws {
        let gateways = NIOLockedValueBox<Set<NodeID>>([])
        let g1 = try await TestNode(gateways: gateways), g2 = try await TestNode(gateways: gateways)
        gateways.withLockedValue { $0 = [g1.id, g2.id] }
        _ = try await g2.dial(g1)
        let unbounded = try await RunnerNode.make(gateways: gateways, limit: nil)
        _ = try await unbounded.endpoint.dial(host: "127.0.0.1", port: g1.port, expecting: g1.id)
        let link = try await unbounded.pool.gatewayLink(to: g2.id, address: "127.0.0.1:\(g2.port)")
        #expect(link.relay == nil, "\(link)")
        #expect(unbounded.pool.existing(g2.id) === link)
        #expect(await eventually(within: 10) { unbounded.pool.existingDirect(g2.id) != nil && g2.pool.existingDirect(unbounded.endpoint.identity.id) != nil },
                "no direct link kept: \(unbounded.endpoint.links) / g2: \(g2.endpoint.links)")

        // The gateway drops it: the runner dials again.
        for inbound in g2.endpoint.links where inbound.peer == unbounded.endpoint.identity.id { await inbound.close() }
        #expect(await eventually(within: 10) {
            unbounded.pool.existingDirect(g2.id).map { $0 !== link } == true
        }, "the kept link was not made again: \(unbounded.endpoint.links)")
        for node in [g1, g2] { await node.shutdown() }
        await unbounded.pool.shutdown(); await unbounded.endpoint.shutdown()
    }

    /// A relayed link is a stand-in: a kept link dials even while one is up, a direct link arriving
    /// does not close it, a relayed one arriving does not close the direct one, and the direct one
    /// is used.
    @Test func aRelayedLinkNeitherReplacesNorStandsInForADirectOne() async throws {
        let trio = try await Trio.make()
        let relayed = try await trio.r.pool.relayed(to: trio.g.id)
        #expect(relayed.relay == trio.m.id)

        await trio.r.pool.keep(trio.g.id, address: "127.0.0.1:\(trio.g.port)")
        #expect(await eventually(within: 10) { trio.r.pool.existingDirect(trio.g.id) != nil },
                "the kept link never dialled while a relayed one was up: \(trio.r.endpoint.links)")
        let direct = try #require(trio.r.pool.existingDirect(trio.g.id))
        #expect(trio.r.pool.existing(trio.g.id) === direct, "the direct link is used")
        #expect(await eventually(within: 10) { trio.g.pool.existingDirect(trio.r.id) != nil })
        #expect(trio.g.pool.existing(trio.r.id)?.relay == nil)

        // Another relayed link to G, made by hand while the direct one is up.
        let toM = try #require(trio.r.pool.existingDirect(trio.m.id))
        let stream = try await toM.openStream(headers: [(":path", LinkRelay.openPath), (LinkRelay.toHeader, trio.g.id.description)])
        let second = try await trio.r.endpoint.dialRelayed(over: stream, expecting: trio.g.id)
        #expect(second.relay == trio.m.id)
        // A round trip on the direct link after G registered the second: the direct link still serves.
        let echoed = try await Self.openCollecting(on: direct)
        #expect(try await Self.echo("still direct", on: echoed.stream.channel, collect: echoed.collect) == "still direct")
        #expect(direct.isActive && second.isActive)
        #expect(trio.g.endpoint.links.filter { $0.peer == trio.r.id && $0.relay == nil }.count == 1)
        #expect(await eventually(within: 10) { !relayed.isActive }, "the newer relayed link replaces the older relayed one")
        #expect(trio.r.pool.existing(trio.g.id) === direct)
        await trio.shutdown()
    }

    /// An idle relayed link is closed once a direct link to its peer is up, or once the peer is no
    /// longer wanted; one that carries a stream, or is still needed, stays.
    @Test func anIdleRelayedLinkIsClosedOnceNotNeeded() async throws {
        let trio = try await Trio.make(relayIdleTimeout: .milliseconds(50))
        let pool = trio.g.pool
        let relayed = try await pool.relayed(to: trio.r.id)
        #expect(relayed.relay == trio.m.id)

        // Busy: a stream open on it, the peer not wanted.
        let open = try await Self.openCollecting(on: relayed)
        for _ in 0..<5 {
            #expect(await pool.closeIdleRelayedLinks(wanted: { _ in false }).isEmpty)
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(relayed.isActive, "a relayed link carrying a stream was closed")
        #expect(try await Self.echo("busy", on: open.stream.channel, collect: open.collect) == "busy")
        try await open.stream.channel.closeFuture.get()

        // Idle, still wanted, no direct link: it stays.
        for _ in 0..<5 {
            #expect(await pool.closeIdleRelayedLinks().isEmpty)
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(relayed.isActive, "a relayed link still needed was closed")

        // A direct link is up: the idle relayed one goes.
        let direct = try await trio.r.dial(trio.g)
        #expect(await eventually(within: 10) {
            await pool.closeIdleRelayedLinks().contains { $0 === relayed }
        })
        #expect(await eventually(within: 10) { !relayed.isActive })
        #expect(pool.existing(trio.r.id)?.relay == nil)

        // No direct link again, a new relayed one, and the peer no longer wanted: it goes.
        await direct.close()
        #expect(await eventually(within: 10) { pool.existingDirect(trio.r.id) == nil })
        let again = try await pool.relayed(to: trio.r.id)
        #expect(again.relay == trio.m.id)
        #expect(await eventually(within: 10) {
            await pool.closeIdleRelayedLinks(wanted: { $0 != trio.r.id }).contains { $0 === again }
        })
        await trio.shutdown()
    }

    struct RunnerNode {
        let endpoint: LinkEndpoint
        let pool: LinkPool

        static func make(gateways: NIOLockedValueBox<Set<NodeID>>, limit: Int?) async throws -> RunnerNode {
            let endpoint = LinkEndpoint(identity: NodeIdentity.generate(), meshID: "relay-test")
            let pool = LinkPool(endpoint: endpoint, logger: Logger(label: "test"), gatewayLinkLimit: limit,
                                gateways: { gateways.withLockedValue { $0 } })
            return RunnerNode(endpoint: endpoint, pool: pool)
        }
    }

    /// M refuses: between two members neither of which is a gateway; to a node it holds no link
    /// to; and a stream that came over a relayed link (one hop only).
    @Test func aRelayRefusesWhatItMustNot() async throws {
        let trio = try await Trio.make()
        let toM = try #require(trio.g.pool.existingDirect(trio.m.id))

        trio.gateways.withLockedValue { $0 = [] }
        await #expect(throws: LinkError.streamRefused(status: 403)) {
            _ = try await toM.openStream(headers: [(":path", LinkRelay.openPath), (LinkRelay.toHeader, trio.r.id.description)])
        }
        let refused = await #expect(throws: RelayUnavailable.self) { _ = try await trio.g.pool.relayed(to: trio.r.id) }
        #expect(refused?.description.contains("403") == true, "\(String(describing: refused))")

        trio.gateways.withLockedValue { $0 = [trio.g.id] }
        let stranger = NodeIdentity.generate().id
        await #expect(throws: LinkError.streamRefused(status: 404)) {
            _ = try await toM.openStream(headers: [(":path", LinkRelay.openPath), (LinkRelay.toHeader, stranger.description)])
        }

        // G's relayed link to R, then G asks R, over it, to relay on to M: refused.
        let relayed = try await trio.g.pool.relayed(to: trio.r.id)
        #expect(relayed.relay == trio.m.id)
        await #expect(throws: LinkError.streamRefused(status: 403)) {
            _ = try await relayed.openStream(headers: [(":path", LinkRelay.openPath), (LinkRelay.toHeader, trio.m.id.description)])
        }
        await trio.shutdown()
    }
}
