import Foundation
import NIOCore
import Testing
@testable import Proxy

@Suite("Gateway: listener changes applied one at a time", .timeLimit(.minutes(5)))
struct GatewayApplyOrderTests {
    /// A port released by one apply and taken again by the next, called back to back (a lease
    /// released, then granted to another run): the second waits for the first's close instead of
    /// binding while the old listener is still open, which the kernel refuses as in use.
    @Test func aPortReleasedAndTakenAgainAtOnceIsBoundAgain() async throws {
        let lab = try await Lab.start()
        let app = try await TestServer.echo()
        // A port the kernel picked, held by the gateway first.
        var initial = RoutingTable()
        try initial.addExclusive(lab.route(app), on: lab.anyPort)
        #expect(await lab.gateway.apply(initial).isEmpty)
        let bound = try await lab.socketAddress(of: lab.anyPort)
        let address = ListenAddress(host: lab.gatewayHost, port: try #require(bound.port))
        var table = RoutingTable()
        try table.addExclusive(lab.route(app), on: address)
        let held = table
        #expect(await lab.gateway.apply(held).isEmpty)
        for round in 0..<50 {
            let gateway = lab.gateway
            let release = Task { await gateway.apply(RoutingTable()) }
            await Task.yield()
            let take = Task { await gateway.apply(held) }
            let failures = await release.value + take.value
            #expect(failures.isEmpty, "round \(round): \(failures)")
            // Whichever ran last decides; put the port back for the next round.
            #expect(await gateway.apply(held).isEmpty, "round \(round)")
            if !failures.isEmpty { break }
        }
        await app.close()
        await lab.stop()
    }
}
