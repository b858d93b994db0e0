import NIOCore
import Testing
@testable import Proxy

/// The PROXY protocol v2 header byte for byte, as HAProxy's spec lays it out.
@Suite struct ProxyProtocolHeaderTests {
    @Test func anIPv4ConnectionIs28Bytes() throws {
        let header = try #require(ProxyProtocolHeader(
            source: try SocketAddress(ipAddress: "192.0.2.10", port: 51_234),
            destination: try SocketAddress(ipAddress: "203.0.113.7", port: 443)
        ))
        let expected: [UInt8] = ProxyProtocolHeader.signature + [0x21, 0x11, 0x00, 0x0C]
            + [192, 0, 2, 10] + [203, 0, 113, 7] + [0xC8, 0x22] + [0x01, 0xBB]
        #expect(Array(header.bytes.readableBytesView) == expected)
    }

    @Test func anIPv6ConnectionIs52Bytes() throws {
        let header = try #require(ProxyProtocolHeader(
            source: try SocketAddress(ipAddress: "2001:db8::1", port: 40_000),
            destination: try SocketAddress(ipAddress: "::1", port: 8080)
        ))
        let source: [UInt8] = [0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [1]
        let destination: [UInt8] = Array(repeating: 0, count: 15) + [1]
        let expected: [UInt8] = ProxyProtocolHeader.signature + [0x21, 0x21, 0x00, 0x24]
            + source + destination + [0x9C, 0x40] + [0x1F, 0x90]
        #expect(Array(header.bytes.readableBytesView) == expected)
    }

    @Test func mixedFamiliesAreSentAsIPv6WithTheIPv4EndMapped() throws {
        let header = try #require(ProxyProtocolHeader(
            source: try SocketAddress(ipAddress: "10.1.2.3", port: 1),
            destination: try SocketAddress(ipAddress: "::1", port: 2)
        ))
        let bytes = Array(header.bytes.readableBytesView)
        #expect(bytes.count == 52)
        #expect(bytes[13] == 0x21)
        #expect(Array(bytes[16..<32]) == Array(repeating: 0, count: 10) + [0xFF, 0xFF, 10, 1, 2, 3])
    }

    @Test func endpointTextRoundTripsBothFamilies() throws {
        for (ip, port) in [("127.0.0.1", 5000), ("::1", 443), ("2001:db8::2", 65535)] {
            let address = try SocketAddress(ipAddress: ip, port: port)
            let text = try #require(EndpointText.format(address))
            #expect(EndpointText.parse(text) == address, "\(text)")
        }
        #expect(EndpointText.format(try SocketAddress(ipAddress: "::1", port: 443)) == "[::1]:443")
        #expect(EndpointText.parse("127.0.0.1") == nil)
        #expect(EndpointText.parse("example.com:80") == nil)
        #expect(EndpointText.parse("127.0.0.1:99999") == nil)
    }
}

/// The gateway's timeouts from the node's environment.
@Suite struct ProxyConfigurationEnvironmentTests {
    @Test func setTimeoutsReplaceTheDefaults() throws {
        let configuration = try ProxyConfiguration(environment: [
            "WARREN_PROXY_ANSWER_TIMEOUT_SECONDS": "600", "WARREN_PROXY_REQUEST_HEAD_TIMEOUT_SECONDS": "2.5",
        ])
        #expect(configuration.answerTimeout == .seconds(600))
        #expect(configuration.requestHeadTimeout == .milliseconds(2500))
        #expect(configuration.idleTimeout == ProxyConfiguration().idleTimeout)
    }

    @Test func aValueThatIsNotPositiveSecondsIsRefusedNamingIt() {
        for bad in ["0", "-1", "ten", ""] {
            #expect {
                _ = try ProxyConfiguration(environment: ["WARREN_PROXY_IDLE_TIMEOUT_SECONDS": bad])
            } throws: { error in
                "\(error)".contains("WARREN_PROXY_IDLE_TIMEOUT_SECONDS=\"\(bad)\" is not a number of seconds above 0")
            }
        }
    }
}
