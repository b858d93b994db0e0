import NIOCore

/// Which private addresses this machine can dial: those on a network of its own interfaces.
/// A member behind NAT advertises its private address; from another site (10.250.1.x looking at
/// 10.250.2.11) there is no route to it, and a dial only waits for "Network is unreachable". Such
/// a member is reached over the links it holds instead.
struct LinkReach: Sendable {
    /// Each IPv4 interface's address and netmask, host byte order.
    let networks: [(address: UInt32, mask: UInt32)]

    /// The networks of this machine's interfaces now.
    static func local() -> LinkReach {
        let devices = (try? System.enumerateDevices()) ?? []
        return LinkReach(networks: devices.compactMap { device in
            guard let address = device.address?.ipAddress.flatMap(Self.ipv4), let mask = device.netmask?.ipAddress.flatMap(Self.ipv4) else { return nil }
            return (address, mask)
        })
    }

    /// Whether `host` (an IPv4 address) is on one of this machine's networks.
    func isOnLocalNetwork(_ host: String) -> Bool {
        guard let ip = Self.ipv4(host) else { return false }
        return networks.contains { ($0.address & $0.mask) == (ip & $0.mask) }
    }

    /// Whether to dial `host`, the mesh address of a member that `linksOnly` (behind NAT): not
    /// when it is a private address of another network.
    func mayDial(_ host: String, linksOnly: Bool) -> Bool {
        guard linksOnly, MemberTraits.isPrivate(host: host), Self.ipv4(host) != nil else { return true }
        return isOnLocalNetwork(host)
    }

    static func ipv4(_ host: String) -> UInt32? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false).map { UInt8($0) }
        guard parts.count == 4, parts.allSatisfy({ $0 != nil }) else { return nil }
        return parts.reduce(UInt32(0)) { $0 << 8 | UInt32($1!) }
    }
}
