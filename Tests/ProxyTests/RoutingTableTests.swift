import Testing
@testable import Proxy

@Suite("Routing table")
struct RoutingTableTests {
    let web = Route(runID: "web-1", upstream: "runner-a", appPort: 8000)
    let api = Route(runID: "api-1", upstream: "runner-b", appPort: 9000)
    let shared = ListenAddress(host: "0.0.0.0", port: 80)

    @Test func hostNamesAreCaseInsensitiveAndIgnoreTrailingDot() throws {
        var table = RoutingTable()
        try table.addHost("Example.COM.", route: self.web, on: self.shared)
        #expect(table.lookup(self.shared, host: "example.com") == .route(self.web))
        #expect(table.lookup(self.shared, host: "EXAMPLE.com.") == .route(self.web))
        #expect(table.lookup(self.shared, host: "other.example") == .unknownHost("other.example"))
        #expect(table.lookup(ListenAddress(host: "0.0.0.0", port: 81), host: "example.com") == .noBinding)
    }

    @Test(arguments: [
        ("example.com", "example.com"), ("Example.COM.:8080", "example.com"), ("[::1]:80", "::1"),
        (" a.b ", "a.b"), ("127.0.0.1", "127.0.0.1"),
    ])
    func hostHeaderParsing(header: String, expected: String) {
        #expect(HostName.fromHostHeader(header) == expected)
    }

    @Test func sameHostOnSharedPortConflicts() throws {
        var table = RoutingTable()
        try table.addHost("a.example", route: self.web, on: self.shared)
        try table.addHost("a.example", route: self.web, on: self.shared)  // idempotent
        try table.addHost("b.example", route: self.api, on: self.shared)
        #expect(throws: RoutingTableError.hostHeld("a.example", on: self.shared, by: self.web)) {
            try table.addHost("A.example.", route: self.api, on: self.shared)
        }
    }

    @Test func exclusiveHoldsTheWholePort() throws {
        var table = RoutingTable()
        let address = ListenAddress(host: "203.0.113.10", port: 5001)
        try table.addExclusive(self.web, on: address)
        try table.addExclusive(self.web, on: address)  // idempotent
        #expect(throws: RoutingTableError.self) { try table.addExclusive(self.api, on: address) }
        #expect(throws: RoutingTableError.self) { try table.addHost("a.example", route: self.api, on: address) }
        // The wildcard address overlaps every address on the port.
        #expect(throws: RoutingTableError.self) {
            try table.addHost("a.example", route: self.api, on: ListenAddress(host: "0.0.0.0", port: 5001))
        }
        try table.addExclusive(self.api, on: ListenAddress(host: "203.0.113.10", port: 5002))
        #expect(table.lookup(address, host: "anything") == .route(self.web))
    }

    @Test func hostRoutedPortRefusesExclusive() throws {
        var table = RoutingTable()
        try table.addHost("a.example", route: self.web, on: self.shared)
        let error = #expect(throws: RoutingTableError.self) { try table.addExclusive(self.api, on: self.shared) }
        #expect(error?.description.contains("a.example") == true)
    }

    @Test func removals() throws {
        var table = RoutingTable()
        let tcp = ListenAddress(host: "127.0.0.2", port: 5001)
        try table.addHost("a.example", route: self.web, on: self.shared)
        try table.addHost("b.example", route: self.api, on: self.shared)
        try table.addExclusive(self.web, on: tcp)
        table.removeHost("A.EXAMPLE", on: self.shared)
        #expect(table.lookup(self.shared, host: "a.example") == .unknownHost("a.example"))
        table.removeRun("api-1")
        #expect(table.bindings[self.shared] == nil)
        table.removeExclusive(on: tcp)
        #expect(table.bindings.isEmpty)
    }

    @Test func rejectsBadInput() {
        var table = RoutingTable()
        #expect(throws: RoutingTableError.invalidHost(".")) { try table.addHost(".", route: self.web, on: self.shared) }
        #expect(throws: RoutingTableError.invalidPort(70000)) {
            try table.addExclusive(self.web, on: ListenAddress(host: "127.0.0.1", port: 70000))
        }
    }
}
