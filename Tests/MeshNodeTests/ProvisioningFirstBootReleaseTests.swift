import Foundation
@testable import MeshNode
@testable import Provisioning
@testable import Trust
@testable import Link
import Testing

/// The first-boot script `gateway create` writes, run as root in a fresh Debian 12 root (made by
/// debootstrap: Debian's packages, no Swift toolchain) against the release `make release` made,
/// served by an HTTP server on a random loopback address. `make test-release` (scripts/first-boot-test.sh)
/// makes the root and the release and runs this suite; without them it is skipped.
@Suite("First boot of the release in a Debian 12 root", .serialized)
struct ProvisioningFirstBootReleaseTests {
    static let environment = ProcessInfo.processInfo.environment
    static let enabled = environment["WARREN_TEST_RELEASE"] != nil && environment["WARREN_TEST_DEBIAN_ROOT"] != nil && getuid() == 0
    static let skipReason = "needs a release tarball (WARREN_TEST_RELEASE), a debootstrapped Debian 12 root (WARREN_TEST_DEBIAN_ROOT) and root: run `make test-release`"

    @Test(.enabled(if: enabled, Comment(rawValue: skipReason)), .timeLimit(.minutes(10)))
    func theScriptInstallsTheLibrariesAndTheReleaseWhichRuns() throws {
        let release = try TestRelease()
        let server = try TestReleaseServer(files: [release.fileName: release.bytes])
        defer { server.stop() }
        let root = try TestDebianRoot()
        defer { root.remove() }
        let script = try FirstBootScript(releaseURL: "\(server.url)/\(release.fileName)", releaseSHA256: release.sha256, joinToken: "wrn1-test-token",
                                         publicAddress: .literal("203.0.113.9"), meshPort: 7420, name: "gw-release-test")
        let boot = try root.run(script: script.text)
        #expect(boot.status == 0, "the first boot failed:\n\(boot.output)")
        #expect(boot.output.contains("warren first boot: done"), "\(boot.output)")
        for package in FirstBootScript.runtimePackages {
            #expect(try root.run(["dpkg-query", "-W", "-f", "${Status}", package]).output == "install ok installed", "\(package) installed")
        }
        #expect(FileManager.default.isExecutableFile(atPath: root.path + FirstBootScript.binaryPath))
        #expect(try String(contentsOfFile: root.path + "/var/lib/warren/release.sha256", encoding: .utf8) == release.sha256 + "\n")
        // Kept as downloaded, so this gateway can serve it to the next ones.
        #expect(FileManager.default.contents(atPath: root.path + "/var/lib/warren/release.tar.gz").map { Array($0) } == release.bytes)

        let help = try root.run([FirstBootScript.binaryPath, "node", "start", "--help"])
        #expect(help.status == 0, "\(help.output)")
        #expect(help.output.contains("--gateway"), "\(help.output)")
        let version = try root.run([FirstBootScript.binaryPath, "--version"])
        #expect(version.status == 0 && version.output.contains(WarrenVersion.current), "\(version.output)")

        // systemd does not run in the root: the unit is checked as text.
        let unit = try String(contentsOfFile: root.path + "/etc/systemd/system/\(FirstBootScript.unitName)", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/warren node start --gateway --public-address 203.0.113.9 --name gw-release-test --serve-release 0.0.0.0:7421 --join-file /var/lib/warren/join-token\n"))
        #expect(!unit.contains("wrn1-test-token"), "the token is not in the unit's command line")
        // The token is in a file only root reads.
        let tokenFile = root.path + "/var/lib/warren/join-token"
        #expect(try String(contentsOfFile: tokenFile, encoding: .utf8) == "wrn1-test-token\n")
        #expect((try FileManager.default.attributesOfItem(atPath: tokenFile)[.posixPermissions] as? Int) == 0o600)
        #expect(unit.contains("Environment=WARREN_HOME=/var/lib/warren"))
    }

    @Test(.enabled(if: enabled, Comment(rawValue: skipReason)), .timeLimit(.minutes(10)))
    func aTamperedTarballIsRefusedWithTheMismatchNamed() throws {
        let release = try TestRelease()
        var tampered = release.bytes
        tampered[tampered.count / 2] ^= 0x01
        let server = try TestReleaseServer(files: [release.fileName: tampered])
        defer { server.stop() }
        let root = try TestDebianRoot()
        defer { root.remove() }
        let url = "\(server.url)/\(release.fileName)"
        let script = try FirstBootScript(releaseURL: url, releaseSHA256: release.sha256, joinToken: "wrn1-test-token",
                                         publicAddress: .literal("203.0.113.9"), meshPort: 7420)
        let boot = try root.run(script: script.text)
        #expect(boot.status != 0)
        let actual = Self.sha256Hex(tampered)
        #expect(boot.output.contains("warren first boot FAILED: refusing to install the release from \(url): its SHA-256 is \(actual), not the expected \(release.sha256)"),
                "\(boot.output)")
        #expect(!FileManager.default.fileExists(atPath: root.path + FirstBootScript.binaryPath), "nothing installed")
        #expect(!FileManager.default.fileExists(atPath: root.path + "/etc/systemd/system/\(FirstBootScript.unitName)"))
    }

    static func sha256Hex(_ bytes: [UInt8]) -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("warren-sha-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: file.path, contents: Data(bytes))
        defer { try? FileManager.default.removeItem(at: file) }
        return (try? ShellCommand.run(["sha256sum", file.path]).output.split(separator: " ").first.map(String.init)) ?? ""
    }
}

/// The release tarball named by WARREN_TEST_RELEASE and the hash in its .sha256 file.
struct TestRelease {
    let fileName: String
    let bytes: [UInt8]
    let sha256: String

    init() throws {
        let path = try #require(ProcessInfo.processInfo.environment["WARREN_TEST_RELEASE"])
        fileName = URL(fileURLWithPath: path).lastPathComponent
        bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let line = try String(contentsOfFile: path + ".sha256", encoding: .utf8)
        sha256 = try #require(line.split(separator: " ").first.map(String.init))
        #expect(ProvisioningFirstBootReleaseTests.sha256Hex(bytes) == sha256, "the .sha256 file matches the tarball")
    }
}

/// Files served over HTTP by python3 on a random loopback address and a free port.
final class TestReleaseServer {
    let directory: URL
    let process = Process()
    let url: String

    init(files: [String: [UInt8]]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("warren-release-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, bytes) in files { try Data(bytes).write(to: directory.appendingPathComponent(name)) }
        let host = "127.\(Int.random(in: 16...250)).\(Int.random(in: 1...250)).\(Int.random(in: 1...250))"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", """
            import functools, http.server, signal, sys
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
            handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
            server = http.server.ThreadingHTTPServer((sys.argv[1], 0), handler)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """, host, directory.path]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line: [UInt8] = []
        while line.count < 10, let chunk = try out.fileHandleForReading.read(upToCount: 1), let byte = chunk.first, byte != 10 { line.append(byte) }
        let port = try #require(Int(String(decoding: line, as: UTF8.self)), "the release server did not start")
        url = "http://\(host):\(port)"
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A copy of the cached Debian root, entered with chroot in a mount namespace of its own (its
/// /dev and /proc mounted there, gone with it); removed by `remove()`.
struct TestDebianRoot {
    let path: String

    init() throws {
        let template = try #require(ProcessInfo.processInfo.environment["WARREN_TEST_DEBIAN_ROOT"])
        path = FileManager.default.temporaryDirectory.appendingPathComponent("warren-debian-\(UUID().uuidString.prefix(8))").path
        let copy = try ShellCommand.run(["cp", "-a", template, path])
        try #require(copy.status == 0, "could not copy \(template): \(copy.output)")
        try Data(try Data(contentsOf: URL(fileURLWithPath: "/etc/resolv.conf"))).write(to: URL(fileURLWithPath: path + "/etc/resolv.conf"))
    }

    func remove() {
        _ = try? ShellCommand.run(["rm", "-rf", "--one-file-system", path])
    }

    /// `arguments` run as root inside; their status and output (stdout and stderr).
    func run(_ arguments: [String]) throws -> ShellCommand.Result {
        let quoted = arguments.map { "'" + $0.replacingOccurrences(of: "'", with: #"'\''"#) + "'" }.joined(separator: " ")
        return try ShellCommand.run(["unshare", "-m", "--propagation", "private", "bash", "-c",
                                #"mount --bind /dev "$0/dev" && mount -t proc proc "$0/proc" && exec chroot "$0" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "# + quoted,
                                path])
    }

    /// `text` written to a file inside and run by bash, as cloud-init runs user data.
    func run(script text: String) throws -> ShellCommand.Result {
        try text.write(toFile: path + "/root/first-boot.sh", atomically: true, encoding: .utf8)
        return try run(["/bin/bash", "/root/first-boot.sh"])
    }
}

enum ShellCommand {
    struct Result {
        let status: Int32
        let output: String
    }

    static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
