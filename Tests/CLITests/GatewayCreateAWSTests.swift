import CloudFakes
import Foundation
import Testing

/// `warren gateway create --backend aws` end to end against moto's EC2 (PyPI `moto[server]`):
/// the node makes the security group and instance; the test plays cloud-init by running the user
/// data's start command as a gateway on loopback (`PlayedCloudGateway`); create completes when that
/// gateway joins; delete leaves no instance or group behind.
@Suite(.serialized) struct GatewayCreateAWSTests {
    /// A malformed --release-sha256 is a usage error before any node is asked anything.
    @Test func aMalformedReleaseHashIsAUsageError() throws {
        let refused = try WarrenProcess.runBlocking(["gateway", "create", "--project", "p", "--backend", "aws", "--release-sha256", "abc123",
                                                     "--state-dir", FileManager.default.temporaryDirectory.appendingPathComponent("wgc-none-\(UUID().uuidString.prefix(8))").path])
        #expect(refused.status == 2, "\(refused.stderr)")
        #expect(refused.stderr.contains("--release-sha256 must be 64 hexadecimal digits"), "\(refused.stderr)")
    }

    @Test(.enabled(if: MotoServer.isInstalled, Comment(rawValue: MotoServer.skipReason)))
    func createPlaysCloudInitJoinsAndDeleteLeavesNothing() throws {
        let moto = try MotoServer()
        // moto has no Canonical image: register one of ours, found with AWS_IMAGE_OWNER=self.
        _ = try moto.boto("""
            print(ec2.register_image(Name="ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240601", Architecture="x86_64",
                                     RootDeviceName="/dev/sda1", VirtualizationType="hvm")["ImageId"])
            """)
        let runner = try BackgroundNode(address: "\(gatewayTestNet).69", port: 7423, foundsMesh: true)
        defer { runner.stop() }
        let environment = [
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_EC2": moto.endpoint, "AWS_IMAGE_OWNER": "self",
            "WARREN_RELEASE_URL": "https://releases.example.com/warren-linux-x86_64.tar.gz",
        ]
        // The release's hash by flag here (by WARREN_RELEASE_SHA256 in the Azure and GCP tests).
        let played = PlayedCloudGateway(runner: runner, backend: "aws", region: "us-east-1", environment: environment,
                                        name: "gw-aws-a", domain: "edge.example.com", vmListen: "\(gatewayTestNet).69:7424",
                                        releaseSHA256Flag: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
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
