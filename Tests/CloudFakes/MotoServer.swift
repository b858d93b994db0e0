public import Foundation

/// moto's AWS fake (PyPI `moto[server]`) in a python3 child process on a free loopback port, with
/// boto3 for a test's own look at what it holds.
public final class MotoServer {
    let process = Process()
    /// `http://127.0.0.1:PORT`
    public let endpoint: String
    private let stdin = Pipe()

    public struct StartFailure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Whether moto's server and boto3 can be imported; tests needing them are skipped otherwise.
    public static let isInstalled: Bool = {
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        check.arguments = ["python3", "-c", "import moto.server, flask, boto3"]
        check.standardError = FileHandle.nullDevice
        guard (try? check.run()) != nil else { return false }
        check.waitUntilExit()
        return check.terminationStatus == 0
    }()
    public static let skipReason = "moto[server] is not installed: `pip install 'moto[server]'` (make test does it) to run the AWS end-to-end tests"

    /// `environment` adds moto settings, e.g. `INITIAL_NO_AUTH_ACTION_COUNT` to check signatures.
    public init(environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.script]
        let settings = ["MOTO_ALLOW_NONEXISTENT_REGION": "true", "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true"]
        process.environment = ProcessInfo.processInfo.environment.merging(settings.merging(environment) { $1 }) { $1 }
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = stdin
        process.standardError = FileHandle.nullDevice
        try process.run()
        var bytes: [UInt8] = []
        while bytes.count < 100, let chunk = try out.fileHandleForReading.read(upToCount: 1), let byte = chunk.first, byte != 10 {
            bytes.append(byte)
        }
        guard let port = Int(String(decoding: bytes, as: UTF8.self)) else {
            throw StartFailure(description: "moto did not start: \(String(decoding: bytes, as: UTF8.self))")
        }
        endpoint = "http://127.0.0.1:\(port)"
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Runs `code` with `ec2` a boto3 client of this moto; returns what it prints.
    public func boto(_ code: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", """
            import base64, boto3, json
            ec2 = boto3.client("ec2", endpoint_url="\(endpoint)", region_name="us-east-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing")
            \(code)
            """]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static let script = """
        import os, signal, sys
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
