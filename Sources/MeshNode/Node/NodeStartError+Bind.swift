import NIOCore

#if canImport(Glibc)
import Glibc
#endif

extension NodeStartError {
    /// Runs the bind of `what` on `address`, turning the failures a person can act on into a
    /// sentence that says what to change.
    static func binding<T>(_ what: String, on address: String, _ bind: () async throws -> T) async throws -> T {
        do {
            return try await bind()
        } catch let error as IOError {
            switch error.errnoCode {
            case EADDRINUSE:
                throw NodeStartError(description: "cannot listen for \(what) on \(address): the address is in use (another warren node, or another program); choose another with --listen")
            case EADDRNOTAVAIL:
                throw NodeStartError(description: "cannot listen for \(what) on \(address): no interface of this machine has that address")
            case EACCES:
                throw NodeStartError(description: "cannot listen for \(what) on \(address): ports below 1024 need root or CAP_NET_BIND_SERVICE")
            default:
                throw error
            }
        }
    }
}
