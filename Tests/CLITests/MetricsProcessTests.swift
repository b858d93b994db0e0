import Foundation
import Testing

/// `warren node start --metrics`: the per-link series move when bytes cross a link. Two real
/// nodes on this test's own loopback addresses (127.0.0.70 and .71), free ports.
@Suite(.serialized) struct MetricsProcessTests {
    static let first = "127.0.0.70"
    static let second = "127.0.0.71"

    @Test func linkBytesAndStreamsShowInMetricsAfterBytesCrossALink() async throws {
        var made = Array("/tmp/warren-metrics-XXXXXX".utf8CString)
        let root = try #require(mkdtemp(&made).map { String(cString: $0) })
        defer { try? FileManager.default.removeItem(atPath: root) }
        let port1 = try freePort(on: Self.first), port2 = try freePort(on: Self.second)
        let metrics1 = try freePort(on: Self.first)
        let a = try NodeProcess(name: "a", arguments: [
            "--state-dir", "\(root)/a", "--listen", "\(Self.first):\(port1)", "--metrics", "\(Self.first):\(metrics1)",
        ], environment: [:], logPath: "\(root)/a.log")
        let b = try NodeProcess(name: "b", arguments: [
            "--state-dir", "\(root)/b", "--listen", "\(Self.second):\(port2)", "--join", "\(Self.first):\(port1)",
        ], environment: [:], logPath: "\(root)/b.log")
        do {
            try await check(root: root, metrics: "http://\(Self.first):\(metrics1)/metrics", a: a, b: b)
        } catch {
            await b.stop()
            await a.stop()
            throw error
        }
        await b.stop()
        await a.stop()
    }

    private func check(root: String, metrics url: String, a: NodeProcess, b: NodeProcess) async throws {
        let bID = try await WarrenProcess.run(["node", "id", "--state-dir", "\(root)/b"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(!bID.isEmpty)
        // The join's push-pull crossed the link from b: a counts it once it samples (every 2 s).
        // The handshake's bytes come before the join's stream, so a sample may hold bytes and no
        // stream yet: wait for both.
        var text = ""
        let counted = try await eventually(within: 30) {
            text = await fetch(url) ?? ""
            return Self.value(text, "warren_link_bytes_total", ["peer": bID, "direction": "received"]) > 0
                && Self.value(text, "warren_link_streams_opened_total", ["peer": bID]) >= 1
        }
        #expect(counted, "no link bytes or stream from b in a's metrics:\n\(text)\n--- a\n\(a.log)")
        try #require(counted)
        #expect(Self.value(text, "warren_link_streams_opened_total", ["peer": bID]) >= 1, "\(text)")
        #expect(text.contains("warren_link_streams_active{"), "\(text)")

        // 8 KiB more: a secret too large for a datagram travels to a over the link.
        let before = Self.value(text, "warren_link_bytes_total", ["peer": bID, "direction": "received"])
        let big = String(repeating: "x", count: 8192)
        let added = try await WarrenProcess.run(["secrets", "add", "BIG", big, "--project", "local"], environment: ["WARREN_HOME": "\(root)/b"])
        #expect(added.status == 0, "\(added.stderr)")
        let grew = try await eventually(within: 30) {
            text = await fetch(url) ?? ""
            return Self.value(text, "warren_link_bytes_total", ["peer": bID, "direction": "received"]) >= before + 8192
        }
        #expect(grew, "a's received bytes from b did not grow by 8 KiB (from \(before)):\n\(text)\n--- b\n\(b.log)")
    }

    /// The sum of the samples of `name` whose labels include `labels`, in Prometheus text format.
    static func value(_ text: String, _ name: String, _ labels: [String: String]) -> Double {
        text.split(separator: "\n").reduce(0) { sum, line in
            guard line.hasPrefix(name + "{"), let close = line.lastIndex(of: "}"),
                  labels.allSatisfy({ line[..<close].contains("\($0.key)=\"\($0.value)\"") }),
                  let v = Double(line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)) else { return sum }
            return sum + v
        }
    }
}
