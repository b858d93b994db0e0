import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct NodeStartErrors {
    /// A TCP listener on 127.0.0.96 holding a port the kernel picks; closed by `close(fd)`.
    static func occupiedPort() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.96")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(bound == 0 && listen(fd, 1) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    @Test func aTakenListenAddressIsNamedWithWhatToDo() async throws {
        let (fd, port) = try Self.occupiedPort()
        defer { close(fd) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wns-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try await WarrenProcess.run(["node", "start", "--state-dir", dir, "--listen", "127.0.0.96:\(port)"], timeout: 60)
        #expect(r.status == 1)
        #expect(r.stderr.contains("cannot listen for links (TCP) on 127.0.0.96:\(port): the address is in use"), "\(r.stderr)")
    }
}
