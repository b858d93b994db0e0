import Foundation
@testable import MeshNode
@testable import Provisioning
@testable import Trust
@testable import Link
import Testing

@Suite struct LeaseTableTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    let gw = "203.0.113.10"

    @Test func secondServiceOnSamePortIsRefusedNamingTheHolder() throws {
        var table = LeaseTable()
        try table.grant(Binding(address: gw, port: 5001), runID: "r1", runName: "web-1", holder: "k3x9abcdefgh", appPort: 8000, now: t0)
        do {
            try table.grant(Binding(address: gw, port: 5001), runID: "r2", runName: "web-2", holder: "zzzz", appPort: 8000, now: t0)
            Issue.record("a second lease on the same port was granted")
        } catch {
            #expect(error.holder.runName == "web-1")
            #expect(error.description == "port 5001 on gateway 203.0.113.10 is held by run \"web-1\" on node k3x9abcd…; use another port or a domain")
        }
        // Another port of the same gateway, or the same port of another gateway, is free.
        try table.grant(Binding(address: gw, port: 5002), runID: "r2", runName: "web-2", holder: "zzzz", appPort: 8000, now: t0)
        try table.grant(Binding(address: "203.0.113.11", port: 5001), runID: "r3", runName: "web-3", holder: "zzzz", appPort: 8000, now: t0)
        #expect(table.leases.count == 3)
    }

    @Test func hostRoutedBindingsShareAPortButNotAHost() throws {
        var table = LeaseTable()
        try table.grant(Binding(address: gw, port: 80, host: "api.example.com"), runID: "a", runName: "api", holder: "n", appPort: 1, now: t0)
        try table.grant(Binding(address: gw, port: 80, host: "www.example.com"), runID: "b", runName: "www", holder: "n", appPort: 2, now: t0)
        #expect(throws: LeaseConflict.self) {
            try table.grant(Binding(address: gw, port: 80, host: "API.Example.COM."), runID: "c", runName: "c", holder: "n", appPort: 3, now: t0)
        }
        // An exclusive binding wants the whole port: refused while host routes hold it, and the reverse.
        #expect(throws: LeaseConflict.self) {
            try table.grant(Binding(address: gw, port: 80), runID: "d", runName: "d", holder: "n", appPort: 4, now: t0)
        }
        try table.grant(Binding(address: gw, port: 81), runID: "e", runName: "e", holder: "n", appPort: 5, now: t0)
        #expect(throws: LeaseConflict.self) {
            try table.grant(Binding(address: gw, port: 81, host: "x.example.com"), runID: "f", runName: "f", holder: "n", appPort: 6, now: t0)
        }
    }

    @Test func renewalReleaseAndExpiry() throws {
        var table = LeaseTable()
        let b = Binding(address: gw, port: 5001)
        try table.grant(b, runID: "r1", runName: "web-1", holder: "n", appPort: 8000, now: t0, ttl: 30)
        // The holder asking again is a renewal, not a conflict.
        try table.grant(b, runID: "r1", runName: "web-1", holder: "n", appPort: 8000, now: t0 + 10, ttl: 30)
        #expect(table.leases.count == 1)
        // A renewal is the holder's grant again: the lease then lasts its TTL from then.
        try table.grant(b, runID: "r1", runName: "web-1", holder: "n", appPort: 8000, now: t0 + 35, ttl: 30)
        #expect(table.leases.map(\.expires) == [t0 + 65])
        #expect(table.expire(now: t0 + 60).isEmpty)
        // Not renewed: gone after its TTL, and the port is free again.
        #expect(table.expire(now: t0 + 66).map(\.runID) == ["r1"])
        #expect(table.leases.isEmpty)
        try table.grant(b, runID: "r2", runName: "web-2", holder: "n", appPort: 8000, now: t0 + 66)
        #expect(table.release(runID: "r2", holder: "n").count == 1)
        #expect(table.leases.isEmpty)
    }

    /// A run ID is a name anyone can read (`warren leases --json`), not a capability: another node
    /// naming it can neither take the binding over nor free it.
    @Test func anotherNodeCannotTakeOrFreeALeaseByItsRunID() throws {
        var table = LeaseTable()
        let b = Binding(address: gw, port: 5001)
        try table.grant(b, runID: "r1", runName: "victim", holder: "victim-node", appPort: 8000, now: t0)
        do {
            try table.grant(b, runID: "r1", runName: "attacker", holder: "attacker-node", appPort: 9000, now: t0 + 1)
            Issue.record("a grant naming another node's run ID replaced its lease")
        } catch {
            #expect(error.holder.holder == "victim-node")
            #expect(error.description.contains("run ID r1 already holds a lease"))
        }
        // Nor on another binding under the same run ID (its renewals and release would touch both).
        #expect(throws: LeaseConflict.self) {
            try table.grant(Binding(address: gw, port: 5002), runID: "r1", runName: "x", holder: "attacker-node", appPort: 1, now: t0 + 1)
        }
        #expect(table.release(runID: "r1", holder: "attacker-node").isEmpty)
        #expect(table.leases.map(\.holder) == ["victim-node"])
        #expect(table.leases.first?.appPort == 8000)
        // Its holder still renews and releases it.
        let renewed = try table.grant(b, runID: "r1", runName: "victim", holder: "victim-node", appPort: 8000, now: t0 + 2)
        #expect(renewed.expires == t0 + 2 + LeaseTable.defaultTTL && table.leases.count == 1)
        #expect(table.release(runID: "r1", holder: "victim-node").count == 1)
    }

    @Test func anExpiredButUncollectedLeaseDoesNotBlock() throws {
        var table = LeaseTable()
        let b = Binding(address: gw, port: 5001)
        try table.grant(b, runID: "r1", runName: "a", holder: "n", appPort: 1, now: t0, ttl: 5)
        try table.grant(b, runID: "r2", runName: "b", holder: "n", appPort: 1, now: t0 + 6)
        #expect(table.conflict(for: b, runID: "r3", holder: "n", now: t0 + 6)?.runID == "r2")
    }

    @Test func mergeKeepsTheNewerCopy() {
        var table = LeaseTable()
        let b = Binding(address: gw, port: 1)
        let old = Lease(binding: b, runID: "r", runName: "r", holder: "n", appPort: 1, expires: t0)
        let new = Lease(binding: b, runID: "r", runName: "r", holder: "n", appPort: 1, expires: t0 + 30)
        table.merge(new)
        table.merge(old)
        #expect(table.leases == [new])
    }

    @Test func ttlComesFromTheEnvironmentWhenValid() {
        #expect(LeaseTable.ttl(environment: [:]) == 30)
        #expect(LeaseTable.ttl(environment: ["WARREN_LEASE_TTL_SECONDS": "3"]) == 3)
        #expect(LeaseTable.ttl(environment: ["WARREN_LEASE_TTL_SECONDS": "0.5"]) == 0.5)
        for bad in ["", "0", "-4", "soon", "inf", "nan"] {
            #expect(LeaseTable.ttl(environment: ["WARREN_LEASE_TTL_SECONDS": bad]) == 30, "\(bad)")
        }
    }
}
