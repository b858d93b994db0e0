// The PROXY protocol version 2 header (HAProxy's spec, "The PROXY protocol", section 2.2): the
// first bytes an app that asked for it reads on each connection, naming the real client.
//
// Layout (all integers big-endian):
//
//     0   12  signature  0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A  ("\r\n\r\n\0\r\nQUIT\n")
//    12    1  version (high nibble, 2) | command (low nibble: 0 LOCAL, 1 PROXY)
//    13    1  address family (high nibble: 1 INET, 2 INET6) | transport (low nibble: 1 STREAM)
//    14    2  length of the address block that follows
//    16        INET:  source address (4), destination address (4), source port (2), destination port (2)
//              INET6: source address (16), destination address (16), source port (2), destination port (2)
//
// Warren sends only PROXY over TCP with no TLVs: 28 bytes for IPv4, 52 for IPv6.

public import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The source (the client) and destination (the gateway address the client reached) of a public
/// connection, as the PROXY protocol v2 header carries them to the app.
public struct ProxyProtocolHeader: Sendable, Equatable {
    public static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    public var source: SocketAddress
    public var destination: SocketAddress

    /// Nil unless both are IP addresses (a Unix socket has no place in the header).
    public init?(source: SocketAddress, destination: SocketAddress) {
        guard source.port != nil, destination.port != nil else { return nil }
        self.source = source
        self.destination = destination
    }

    /// The header's bytes. An IPv4 and an IPv6 end (which one socket never has, but two texts could)
    /// are both sent as IPv6, the IPv4 one mapped (`::ffff:a.b.c.d`).
    public var bytes: ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeBytes(Self.signature)
        buffer.writeInteger(UInt8(0x21))  // version 2, PROXY
        switch (Self.rawIPv4(self.source), Self.rawIPv4(self.destination)) {
        case (let source?, let destination?):
            buffer.writeInteger(UInt8(0x11))  // INET, STREAM
            buffer.writeInteger(UInt16(12))
            buffer.writeBytes(source)
            buffer.writeBytes(destination)
        default:
            buffer.writeInteger(UInt8(0x21))  // INET6, STREAM
            buffer.writeInteger(UInt16(36))
            buffer.writeBytes(Self.rawIPv6(self.source))
            buffer.writeBytes(Self.rawIPv6(self.destination))
        }
        buffer.writeInteger(UInt16(self.source.port ?? 0))
        buffer.writeInteger(UInt16(self.destination.port ?? 0))
        return buffer
    }

    private static func rawIPv4(_ address: SocketAddress) -> [UInt8]? {
        guard case .v4 = address, let ip = address.ipAddress else { return nil }
        return self.presentationToNetwork(ip, family: AF_INET, size: 4)
    }

    private static func rawIPv6(_ address: SocketAddress) -> [UInt8] {
        if let v4 = self.rawIPv4(address) { return Array(repeating: 0, count: 10) + [0xFF, 0xFF] + v4 }
        guard case .v6 = address, let ip = address.ipAddress,
              let raw = self.presentationToNetwork(ip, family: AF_INET6, size: 16) else { return Array(repeating: 0, count: 16) }
        return raw
    }

    /// The address's bytes in network order, from the text NIO gives (`inet_ntop`'s form).
    private static func presentationToNetwork(_ ip: String, family: Int32, size: Int) -> [UInt8]? {
        var raw = [UInt8](repeating: 0, count: size)
        let converted = raw.withUnsafeMutableBytes { inet_pton(family, ip, $0.baseAddress) }
        return converted == 1 ? raw : nil
    }
}

/// An IP endpoint as text in a stream header between gateway and runner: `127.0.0.1:5000`,
/// `[::1]:5000`.
public enum EndpointText {
    public static func format(_ address: SocketAddress) -> String? {
        guard let ip = address.ipAddress, let port = address.port else { return nil }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    /// Nil for text that is not an IP address and a port.
    public static func parse(_ text: String) -> SocketAddress? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return try? SocketAddress(ipAddress: String(host), port: port)
    }
}
