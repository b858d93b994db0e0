import Foundation
import Testing

/// README.md's "Walkthrough on one machine", run as written: every `$ ` line of its shell block
/// goes to `sh -c` in the repository, with only what must differ on a shared machine substituted
/// (loopback addresses and ports of the test's own, a temporary state directory, the example
/// file's app port, the run's NAME). Each output line the README shows, and what its comments
/// promise, is checked.
@Suite(.serialized) struct ReadmeWalkthroughTests {
    struct Step {
        var command: String
        var comment: String
        var expected: [String]
    }

    /// The `$ ` lines of the walkthrough's first shell block, each with the lines it shows.
    static func steps() throws -> [Step] {
        let readme = try String(contentsOf: WarrenProcess.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.components(separatedBy: "## Walkthrough on one machine").dropFirst().first)
        let block = try #require(section.components(separatedBy: "```shell\n").dropFirst().first?.components(separatedBy: "```").first)
        var steps: [Step] = []
        for line in block.split(separator: "\n").map(String.init) {
            if line.hasPrefix("$ ") {
                let text = String(line.dropFirst(2))
                let parts = text.components(separatedBy: "  #")
                steps.append(Step(command: parts[0].trimmingCharacters(in: .whitespaces),
                                  comment: parts.dropFirst().joined(separator: "#").trimmingCharacters(in: .whitespaces), expected: []))
            } else if !steps.isEmpty {
                steps[steps.count - 1].expected.append(line)
            }
        }
        return steps
    }

    /// `…` in a README output line stands for any text.
    static func matches(_ pattern: String, _ text: String) -> Bool {
        let pieces = pattern.components(separatedBy: "…").map(NSRegularExpression.escapedPattern(for:))
        guard let regex = try? NSRegularExpression(pattern: pieces.joined(separator: ".*")) else { return false }
        return text.split(separator: "\n").contains { line in
            regex.firstMatch(in: String(line), range: NSRange(line.startIndex..., in: line)) != nil
        }
    }

    @Test func theReadmeWalkthroughAsWritten() async throws {
        let steps = try Self.steps()
        #expect(steps.count >= 10, "the walkthrough block was not found: \(steps)")
        let root = try temporaryDirectory()
        let gw = randomLoopback(), rn = randomLoopback()
        let gwPort = try freePort(on: gw), rnPort = try freePort(on: rn), appPort = try freePort(on: "0.0.0.0")
        let example = try String(contentsOf: WarrenProcess.packageRoot.appendingPathComponent("examples/service.dstack.yml"), encoding: .utf8)
        try example.replacingOccurrences(of: "8000", with: "\(appPort)").write(toFile: root + "/service.dstack.yml", atomically: true, encoding: .utf8)
        var runName = "NAME"
        func substitute(_ text: String) -> String {
            text.replacingOccurrences(of: "127.0.0.2:7420", with: "\(gw):\(gwPort)")
                .replacingOccurrences(of: "127.0.0.3:7420", with: "\(rn):\(rnPort)")
                .replacingOccurrences(of: "127.0.0.2", with: gw).replacingOccurrences(of: "127.0.0.3", with: rn)
                .replacingOccurrences(of: "/tmp/w", with: root)
                .replacingOccurrences(of: "examples/service.dstack.yml", with: root + "/service.dstack.yml")
                .replacingOccurrences(of: "8000", with: "\(appPort)")
                .replacingOccurrences(of: "NAME", with: runName)
        }
        var environment = ["W": WarrenProcess.binary.path, "WARREN_HOME": ""]
        var background: [Process] = []
        defer {
            // Whatever the test reached: stop the runs, then the nodes.
            for home in [root + "/gw", root + "/rn"] {
                let runs = (try? WarrenProcess.runBlocking(["ps", "--json", "--state-dir", home], timeout: 10))?.stdout ?? ""
                for run in ((try? JSONSerialization.jsonObject(with: Data(runs.utf8))) as? [[String: Any]] ?? []).compactMap({ $0["id"] as? String }) {
                    _ = try? WarrenProcess.runBlocking(["stop", run, "--state-dir", home], timeout: 20)
                }
            }
            for process in background where process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
            try? FileManager.default.removeItem(atPath: root)
        }
        func shell(_ command: String) async throws -> WarrenProcess.Result {
            try await launch(URL(fileURLWithPath: "/bin/sh"), ["-c", command], environment: environment, timeout: .seconds(60))
        }

        for step in steps {
            let command = substitute(step.command)
            if command.hasPrefix("W=") { continue }  // the binary the tests built, set above
            if command.hasPrefix("export ") {
                let assignment = command.dropFirst("export ".count).split(separator: "=", maxSplits: 1).map(String.init)
                environment[assignment[0]] = assignment[1]
                continue
            }
            if command.hasSuffix("&") {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/bin/sh")
                process.arguments = ["-c", "exec " + command.dropLast().trimmingCharacters(in: .whitespaces)]
                process.currentDirectoryURL = WarrenProcess.packageRoot
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
                let log = root + "/node\(background.count).log"
                _ = FileManager.default.createFile(atPath: log, contents: nil)
                process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
                process.standardError = process.standardOutput
                try process.run()
                background.append(process)
                continue
            }
            var result = try await shell(command)
            let output = result.stdout + result.stderr
            switch step.comment {
            case let c where c.hasPrefix("both nodes, alive"):
                // The nodes were just started in the background: wait for the runner to see both.
                _ = try await eventually(within: 30) {
                    result = try await shell(command)
                    return result.stdout.components(separatedBy: " alive ").count - 1 == 2
                }
                #expect(result.stdout.components(separatedBy: " alive ").count - 1 == 2, "\(command):\n\(result.stdout)\(result.stderr)")
                #expect(result.stdout.contains("(this node)"), "\(result.stdout)")
            case let c where c.hasPrefix("this node:"):
                #expect(result.status == 0 && result.stdout.contains("version") && result.stdout.contains("uptime"), "\(output)")
            case let c where c.hasPrefix("gw1 at"):
                _ = try await eventually(within: 20) {
                    result = try await shell(command)
                    return result.stdout.contains("gw1") && result.stdout.contains(gw)
                }
                #expect(result.stdout.contains("gw1") && result.stdout.contains(gw), "\(result.stdout)\(result.stderr)")
            case let c where c.hasPrefix("the directory listing"):
                #expect(result.status == 0 && result.stdout.contains("Directory listing"), "\(output)")
            case let c where c.hasPrefix("refused:"):
                #expect(result.status == 1, "\(output)")
                #expect(result.stderr.contains("5001") && result.stderr.contains(runName), "\(result.stderr)")
            default:
                #expect(result.status == 0, "`\(command)` failed: \(output)")
            }
            for line in step.expected {
                #expect(Self.matches(substitute(line), output), "`\(command)` did not show `\(line)`:\n\(output)")
            }
            if command.contains(" run "), let name = result.stdout.split(separator: "\n").first(where: { $0.hasPrefix("Run ") })?
                .split(separator: " ").dropFirst().first {
                runName = String(name)
            }
            if command.contains(" stop ") {
                #expect(result.stdout.contains("\(runName) stopped."), "\(output)")
            }
        }
        #expect(runName != "NAME", "no run was started")
    }
}
