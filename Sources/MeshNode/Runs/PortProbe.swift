import NIOCore
import NIOPosix

/// Whether a TCP port accepts connections, by connecting and closing at once.
enum PortProbe {
    static func accepts(host: String, port: Int, group: MultiThreadedEventLoopGroup, timeout: TimeAmount = .seconds(1)) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .connect(host: host, port: port)
                .get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }
}
