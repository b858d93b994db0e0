import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

/// A fresh private directory under the system temporary directory, removed by `remove()`.
struct StateTestDirectory {
    let path: String

    init(_ label: String = "warren-test") throws {
        let base = FileManager.default.temporaryDirectory.path
        let path = base + "/" + label + "-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        self.path = path
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

extension Logger {
    /// A logger that prints nothing unless WARREN_TEST_LOG is set.
    static func quiet(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = ProcessInfo.processInfo.environment["WARREN_TEST_LOG"] == nil ? .critical : .trace
        return logger
    }
}

/// The permission bits of a file.
func posixMode(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

/// A loopback port that was free a moment ago.
func freePort(host: String = "127.0.0.1") async throws -> Int {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: host, port: 0).get()
    let port = try #require(channel.localAddress?.port)
    try await channel.close()
    return port
}
