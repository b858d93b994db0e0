import Foundation
import Testing

/// moto's AWS fake (PyPI `moto[server]`) in a python3 child process on a free loopback port.
final class ProvisioningMotoServer {
    let process = Process()
    let endpoint: String
    private let stdin = Pipe()

    /// Whether `moto[server]` can be imported; tests needing it are skipped (with this reason) otherwise.
    static let isInstalled: Bool = {
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        check.arguments = ["python3", "-c", "import moto.server, flask"]
        check.standardError = FileHandle.nullDevice
        guard (try? check.run()) != nil else { return false }
        check.waitUntilExit()
        return check.terminationStatus == 0
    }()
    static let skipReason: Comment = "moto[server] is not installed: `pip install 'moto[server]'` (make test does it) to run the AWS end-to-end test"

    /// `environment` adds moto settings, e.g. `INITIAL_NO_AUTH_ACTION_COUNT` to check signatures.
    init(environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.script]
        process.environment = ProcessInfo.processInfo.environment.merging(["MOTO_ALLOW_NONEXISTENT_REGION": "true", "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true"].merging(environment) { _, new in new }) { _, new in new }
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = stdin
        process.standardError = FileHandle.nullDevice
        try process.run()
        var bytes: [UInt8] = []
        while bytes.count < 100, let chunk = try out.fileHandleForReading.read(upToCount: 1), let byte = chunk.first, byte != 10 {
            bytes.append(byte)
        }
        let port = try #require(Int(String(decoding: bytes, as: UTF8.self)), "moto did not start: \(String(decoding: bytes, as: UTF8.self))")
        endpoint = "http://127.0.0.1:\(port)/"
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    private static let script = """
    import os, signal, sys, threading
    # Children inherit the test process's blocked signals; and when it dies, stdin closes.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()
    os._exit(0)
    """
}
