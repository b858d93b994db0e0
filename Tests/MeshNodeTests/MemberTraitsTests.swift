@testable import MeshNode
@testable import Provisioning
@testable import Trust
@testable import Link
import Testing

@Suite struct MemberTraitsTests {
    @Test func metadataRoundTripsAndOlderMetadataReadsAsReachable() {
        for (gateway, linksOnly) in [(false, false), (true, false), (false, true), (true, true)] {
            let traits = MemberTraits(isGateway: gateway, linksOnly: linksOnly)
            #expect(MemberTraits(metadata: traits.metadata) == traits)
        }
        // A node of the previous version announced one byte: its gateway flag.
        #expect(MemberTraits(metadata: [1]) == MemberTraits(isGateway: true, linksOnly: false))
        #expect(MemberTraits(metadata: []) == MemberTraits(isGateway: false, linksOnly: false))
    }

    @Test(arguments: ["10.213.0.2", "192.168.1.5", "172.16.0.1", "172.31.255.1", "100.64.0.1", "fd00::1", "fe80::1"])
    func privateAddressesAreTakenToBeBehindNAT(host: String) {
        #expect(MemberTraits.isPrivate(host: host))
    }

    @Test(arguments: ["127.0.0.2", "198.18.0.10", "203.0.113.10", "172.32.0.1", "100.128.0.1", "::1", "2001:db8::1", "example.com"])
    func otherAddressesAreNot(host: String) {
        #expect(!MemberTraits.isPrivate(host: host))
    }

    @Test func onlyARunnerAdvertisingAPrivateAddressGossipsOverLinks() {
        #expect(AgentOptions(stateDirectory: "/s", listenHost: "10.213.0.2").linksOnly)
        #expect(!AgentOptions(stateDirectory: "/s", listenHost: "127.0.0.3").linksOnly)
        #expect(!AgentOptions(stateDirectory: "/s", listenHost: "10.0.0.5", isGateway: true, publicAddress: "10.0.0.5").linksOnly)
        #expect(!AgentOptions(stateDirectory: "/s", listenHost: "10.0.0.5", advertise: "203.0.113.7:7420").linksOnly)
    }
}
