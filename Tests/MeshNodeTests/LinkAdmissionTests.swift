import Foundation
import Gossip
@testable import MeshNode
@testable import Provisioning
@testable import Trust
import TrustTestSupport
@testable import Link
import LinkTestSupport
import NIOCore
import NIOPosix
import Testing

/// Places for handshakes: one source address cannot take them all, and a flood pushes out only
/// its own connections.
struct PendingHandshakesTests {
    @Test func anAddressAtItsShareGivesUpItsOwnOldest() {
        var pending = PendingHandshakes<Int, String>()
        #expect(pending.begin(1, connection: "a1", address: "A", limit: 256, perAddress: 2).isEmpty)
        #expect(pending.begin(2, connection: "a2", address: "A", limit: 256, perAddress: 2).isEmpty)
        let pushed = pending.begin(3, connection: "a3", address: "A", limit: 256, perAddress: 2)
        #expect(pushed.map { $0.0 } == ["a1"])
        #expect(pushed.map { $0.1 } == [LinkError.tooManyHandshakesFrom(address: "A", limit: 2)])
        #expect(pending.begin(4, connection: "b1", address: "B", limit: 256, perAddress: 2).isEmpty)
        #expect(pending.count(from: "A") == 2 && pending.count(from: "B") == 1 && pending.count == 3)
    }

    @Test func fullPlacesGiveUpTheOldestOfAll() {
        var pending = PendingHandshakes<Int, String>()
        for (i, address) in ["X", "Y", "Z"].enumerated() {
            #expect(pending.begin(i, connection: address, address: address, limit: 3, perAddress: 16).isEmpty)
        }
        #expect(pending.begin(3, connection: "W", address: "W", limit: 3, perAddress: 16).map { $0.0 } == ["X"])
        // The pushed-out one ending later changes nothing; another ending frees its place.
        pending.end(0)
        #expect(pending.count == 3)
        pending.end(1)
        #expect(pending.count == 2 && pending.count(from: "Y") == 0)
        #expect(pending.begin(4, connection: "V", address: "V", limit: 3, perAddress: 16).isEmpty)
    }
}

/// A 500-connection half-open flood on the mesh port while a node links.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct HandshakeFloodTests {
    /// A random loopback address of this run (127.0.0.0/8 is all loopback on Linux).
    static func loopback() -> String {
        "127.\(Int.random(in: 1...254)).\(Int.random(in: 0...255)).\(Int.random(in: 1...254))"
    }

    /// From one address (per-address share) and from 50 (all 256 places taken).
    @Test(arguments: [1, 50])
    func aNodeLinksThroughAHalfOpenFlood(sources: Int) async throws {
        raiseOpenFileLimit(to: 4096)
        let host = Self.loopback()
        let serverIdentity = NodeIdentity.generate()
        let server = LinkEndpoint(identity: serverIdentity, meshID: "mesh-flood")
        let port = try await server.listen(host: host, port: 0)
        let addresses = (0..<sources).map { _ in Self.loopback() }
        var flood: [any Channel] = []
        for i in 0..<500 {
            // Connect and stay silent: a half-open handshake each, until the server gives up on it.
            if let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(to: SocketAddress(ipAddress: addresses[i % sources], port: 0))
                .connect(host: host, port: port).get() {
                flood.append(channel)
            }
        }
        #expect(flood.count == 500)
        let client = LinkEndpoint(identity: NodeIdentity.generate(), meshID: "mesh-flood")
        // The flood's connections wait out the 5 s handshake timeout; the node must not.
        let linked = await eventually(within: 5) {
            (try? await client.dial(host: host, port: port, expecting: serverIdentity.id)) != nil
        }
        #expect(linked, "a node could not link within 5 s during a flood from \(sources) address(es)")
        #expect(server.links.contains { $0.peer == client.identity.id })
        for channel in flood { channel.close(promise: nil) }
        await client.shutdown()
        await server.shutdown()
    }

    private func raiseOpenFileLimit(to wanted: rlim_t) {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < wanted else { return }
        limit.rlim_cur = min(wanted, limit.rlim_max)
        _ = setrlimit(resource, &limit)
    }
}
