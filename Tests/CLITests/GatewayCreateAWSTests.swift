import Foundation
import Testing

/// `warren gateway create --backend aws` end to end against moto's EC2 (PyPI `moto[server]`):
/// the node makes the security group and instance; the test plays cloud-init by running the user
/// data's start command as a gateway on loopback (`PlayedCloudGateway`); create completes when that
/// gateway joins; delete leaves no instance or group behind.
@Suite(.serialized) struct GatewayCreateAWSTests {
    /// moto in a python3 child on a free loopback port, driven with boto3 for the test's own checks.
    final class Moto {
        let process = Process()
        let endpoint: String
        private let stdin = Pipe()

        static let isInstalled: Bool = {
            let check = Process()
            check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            check.arguments = ["python3", "-c", "import moto.server, flask, boto3"]
            check.standardError = FileHandle.nullDevice
            guard (try? check.run()) != nil else { return false }
            check.waitUntilExit()
            return check.terminationStatus == 0
        }()

        init() throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", """
                import os, signal, sys
                signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
                from moto.server import ThreadedMotoServer
                server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
                server.start()
                print(server.get_host_and_port()[1], flush=True)
                sys.stdin.read()
                os._exit(0)
                """]
            process.environment = ProcessInfo.processInfo.environment.merging(["MOTO_ALLOW_NONEXISTENT_REGION": "true"]) { $1 }
            let out = Pipe()
            process.standardOutput = out
            process.standardInput = stdin
            process.standardError = FileHandle.nullDevice
            try process.run()
            var bytes: [UInt8] = []
            while bytes.count < 100, let chunk = try out.fileHandleForReading.read(upToCount: 1), let byte = chunk.first, byte != 10 {
                bytes.append(byte)
            }
            let port = try #require(Int(String(decoding: bytes, as: UTF8.self)), "moto did not start")
            endpoint = "http://127.0.0.1:\(port)"
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }

        /// Runs `code` with `ec2` a boto3 client of this moto; returns what it prints.
        func boto(_ code: String) throws -> String {
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
    }

    @Test(.enabled(if: Moto.isInstalled, "moto[server] and boto3 are not installed: `pip install 'moto[server]'`"))
    func createPlaysCloudInitJoinsAndDeleteLeavesNothing() throws {
        let moto = try Moto()
        // moto has no Canonical image: register one of ours, found with AWS_IMAGE_OWNER=self.
        _ = try moto.boto("""
            print(ec2.register_image(Name="ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240601", Architecture="x86_64",
                                     RootDeviceName="/dev/sda1", VirtualizationType="hvm")["ImageId"])
            """)
        let runner = try BackgroundNode(address: "127.0.0.69", port: 7423, foundsMesh: true)
        defer { runner.stop() }
        let environment = [
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_EC2": moto.endpoint, "AWS_IMAGE_OWNER": "self",
            "WARREN_RELEASE_URL": "https://releases.example.com/warren-linux-x86_64.tar.gz",
        ]
        let played = PlayedCloudGateway(runner: runner, backend: "aws", region: "us-east-1", environment: environment,
                                        name: "gw-aws-a", domain: "edge.example.com", vmListen: "127.0.0.69:7424")
        let progress = try played.createJoinAndDelete {
            try moto.boto("""
                r = ec2.describe_instances(Filters=[{"Name": "tag:warren:gateway", "Values": ["gw-aws-a"]}])
                i = r["Reservations"][0]["Instances"][0]["InstanceId"]
                print(base64.b64decode(ec2.describe_instance_attribute(InstanceId=i, Attribute="userData")["UserData"]["Value"]).decode())
                """)
        }
        let left = try moto.boto("""
            r = ec2.describe_instances(Filters=[{"Name": "tag:warren:gateway", "Values": ["gw-aws-a"]},
                                                {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
            g = ec2.describe_security_groups(Filters=[{"Name": "tag:warren:gateway", "Values": ["gw-aws-a"]}])
            print(sum(len(x["Instances"]) for x in r["Reservations"]), len(g["SecurityGroups"]))
            """)
        #expect(progress.contains("resources created: created security group"), "\(progress)")
        #expect(left == "0 0", "instances and groups left: \(left)")
    }
}
