// A real pebble (Let's Encrypt's test CA) and pebble-challtestsrv as its DNS, started per test.

public import Foundation
import Curl
#if canImport(Glibc)
import Glibc
#endif

/// Loopback addresses and ports for tests that start servers.
public enum TestNet {
    /// A loopback address of the form 127.x.y.z, different each call.
    public static func randomLoopback() -> String {
        "127.\(Int.random(in: 1...250)).\(Int.random(in: 1...250)).\(Int.random(in: 2...250))"
    }

    /// A TCP port free on `host` now (bound to port 0, then released).
    public static func freePort(on host: String) throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        inet_pton(AF_INET, host, &address.sin_addr)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw PebbleError.setup("no free port on \(host): errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A TCP port free now on every one of `hosts` (gateways on several loopback addresses that
    /// share pebble's one HTTP-01 port).
    public static func freePort(onAll hosts: [String]) throws -> Int {
        for _ in 0..<50 {
            let port = try freePort(on: hosts[0])
            if hosts.dropFirst().allSatisfy({ isFree(port, on: $0) }) { return port }
        }
        throw PebbleError.setup("no port free on all of \(hosts.joined(separator: ", ")) in 50 tries")
    }

    static func isFree(_ port: Int, on host: String) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

public enum PebbleError: Error, CustomStringConvertible {
    case setup(String)
    public var description: String { if case .setup(let text) = self { return text }; return "" }
}

/// Where `pebble` is installed, nil when it is not (tests then skip).
public let pebbleBinary: String? = ["/usr/bin/pebble", "/usr/local/bin/pebble"].first { FileManager.default.isExecutableFile(atPath: $0) }
public let pebbleMissing = "pebble is not installed (apt-get install pebble, or scripts/deps.sh); ACME tests need a real test CA"

/// One pebble with its DNS. Every name resolves to `challengeHost`, where HTTP-01 is fetched on `httpPort`.
public final class Pebble: @unchecked Sendable {
    public let directory: URL
    public let host: String
    public let challengeHost: String
    public let httpPort: Int
    public let acmePort: Int
    public let managementPort: Int
    /// The CA certificate pebble's own https listeners use (for the client's caBundlePath).
    public let listenerCA: String
    private var processes: [Process] = []

    public var directoryURL: String { "https://\(self.host):\(self.acmePort)/dir" }

    /// - Parameter certificateValidity: the lifetime of the certificates it issues, in seconds
    ///   (pebble's `certificateValidityPeriod`); nil keeps its default (five years).
    public init(challengeHost: String, httpPort: Int, environment: [String: String] = [:], certificateValidity: Int? = nil) throws {
        guard let pebbleBinary else { throw PebbleError.setup(pebbleMissing) }
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("warren-pebble-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.host = TestNet.randomLoopback()
        self.challengeHost = challengeHost
        self.httpPort = httpPort
        self.acmePort = try TestNet.freePort(on: self.host)
        self.managementPort = try TestNet.freePort(on: self.host)
        let dnsPort = try TestNet.freePort(on: self.host)
        let challengeManagementPort = try TestNet.freePort(on: self.host)
        self.listenerCA = self.directory.appendingPathComponent("cert.pem").path
        let key = self.directory.appendingPathComponent("key.pem").path

        try Self.run("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
            "-out", self.listenerCA, "-days", "2", "-subj", "/CN=pebble test listener", "-addext", "subjectAltName=IP:\(self.host)",
        ])
        let tlsPort = try TestNet.freePort(on: self.host)
        var settings: [String: Any] = [
            "listenAddress": "\(self.host):\(self.acmePort)",
            "managementListenAddress": "\(self.host):\(self.managementPort)",
            "certificate": self.listenerCA,
            "privateKey": key,
            "httpPort": httpPort,
            "tlsPort": tlsPort,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        ]
        if let certificateValidity { settings["certificateValidityPeriod"] = certificateValidity }
        let config: [String: Any] = ["pebble": settings]
        let configPath = self.directory.appendingPathComponent("pebble-config.json")
        try JSONSerialization.data(withJSONObject: config).write(to: configPath)

        let dns = Process()
        dns.executableURL = URL(fileURLWithPath: "/usr/bin/pebble-challtestsrv")
        dns.arguments = [
            "-defaultIPv4", challengeHost, "-defaultIPv6", "", "-dns01", "\(self.host):\(dnsPort)",
            "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", "\(self.host):\(challengeManagementPort)",
        ]
        try self.start(dns, log: "challtestsrv.log")
        // Its DNS answers once its management interface does (both start together).
        let management = HTTPClient(timeout: .seconds(1), connectTimeout: .seconds(1))
        var answering = false
        for _ in 0..<100 where !answering {
            answering = (try? management.perform(HTTPRequest(url: "http://\(self.host):\(challengeManagementPort)/"))) != nil
            if !answering { usleep(100_000) }
        }
        guard answering, dns.isRunning else {
            throw PebbleError.setup("pebble-challtestsrv did not start; see \(self.directory.appendingPathComponent("challtestsrv.log").path)")
        }

        let pebble = Process()
        pebble.executableURL = URL(fileURLWithPath: pebbleBinary)
        pebble.arguments = ["-config", configPath.path, "-dnsserver", "\(self.host):\(dnsPort)"]
        var env = ProcessInfo.processInfo.environment
        env["PEBBLE_VA_NOSLEEP"] = "1"
        for (name, value) in environment { env[name] = value }
        pebble.environment = env
        try self.start(pebble, log: "pebble.log")
        try self.waitUntilReady()
    }

    private func start(_ process: Process, log: String) throws {
        let logURL = self.directory.appendingPathComponent(log)
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logURL)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.processes.append(process)
    }

    private func waitUntilReady() throws {
        let client = HTTPClient(timeout: .seconds(2), connectTimeout: .seconds(1), caBundlePath: self.listenerCA)
        for _ in 0..<100 {
            if let response = try? client.perform(HTTPRequest(url: self.directoryURL)), response.isSuccess { return }
            usleep(100_000)
        }
        throw PebbleError.setup("pebble did not answer at \(self.directoryURL) within 10 s; see \(self.log)")
    }

    /// Pebble's log, for failure messages.
    public var log: String {
        (try? String(contentsOf: self.directory.appendingPathComponent("pebble.log"), encoding: .utf8)) ?? "(no log)"
    }

    /// The orders pebble accepted so far (each logs "Added order").
    public var orderCount: Int {
        self.log.components(separatedBy: "\n").filter { $0.contains("Added order") }.count
    }

    /// The root certificate pebble issues under (it makes a new one every start), PEM.
    public func rootPEM() throws -> String {
        let client = HTTPClient(timeout: .seconds(5), caBundlePath: self.listenerCA)
        let response = try client.perform(HTTPRequest(url: "https://\(self.host):\(self.managementPort)/roots/0"))
        guard response.isSuccess else { throw PebbleError.setup("pebble's root: status \(response.status)") }
        return response.text
    }

    /// Stops pebble only (the CA goes down; its DNS stays).
    public func stopCA() {
        if let pebble = self.processes.last, pebble.isRunning {
            pebble.terminate()
            pebble.waitUntilExit()
        }
    }

    public func stop() {
        for process in self.processes where process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: self.directory)
    }

    deinit { self.stop() }

    public static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PebbleError.setup("\(executable) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
        }
    }
}
