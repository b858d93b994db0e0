import Foundation
import Logging
@testable import MeshNode
@testable import Provisioning
@testable import Trust
import TrustTestSupport
@testable import Link
import NIOCore
import NIOPosix
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Whether a process runs (a zombie does not).
private func isRunning(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")")
    else { return true }
    let state = stat[stat.index(after: close)...].split(separator: " ").first
    return state != "Z" && state != "X"
}

/// Polls `condition` up to about five seconds; the caller asserts the result.
private func eventually(_ condition: () -> Bool) async throws -> Bool {
    for _ in 0..<100 {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return condition()
}

@Suite("RunSupervisor", .serialized)
struct RunSupervisorTests {
    @Test("a run that serves http.server becomes ready, logs, and stops")
    func servesAndStops() async throws {
        let dir = try StateTestDirectory("runs")
        defer { dir.remove() }
        let supervisor = RunSupervisor(stateDirectory: dir.path, logger: .quiet("runs"))
        let port = try await freePort()
        let started = try await supervisor.start(RunSpec(
            id: "web-1",
            setup: ["echo setting up"],
            commands: ["echo hello from web-1", "python3 -m http.server \(port) --bind 127.0.0.1"],
            directory: dir.path
        ))
        #expect(started.pgid == started.pid)
        #expect(started.logPath == dir.path + "/runs/web-1.log")

        try await supervisor.waitForPort(id: "web-1", port: port, timeout: .seconds(30))
        #expect(await supervisor.isRunning(id: "web-1"))
        let tail = supervisor.log(id: "web-1").tail(lines: 20)
        #expect(tail.starts(with: ["setting up", "hello from web-1"]))
        #expect(try posixMode(started.logPath) == 0o600)

        let status = try await supervisor.stop(id: "web-1", gracePeriod: .seconds(5))
        #expect(status == .signaled(SIGTERM))
        #expect(!isRunning(started.pid))
    }

    @Test("a command that exits 3 fails waitForPort with the exit code and the log tail")
    func exitBeforeReady() async throws {
        let dir = try StateTestDirectory("runs")
        defer { dir.remove() }
        let supervisor = RunSupervisor(stateDirectory: dir.path, logger: .quiet("runs"))
        let port = try await freePort()
        _ = try await supervisor.start(RunSpec(
            id: "broken", commands: ["echo starting the broken app", "echo 'cannot open config.yml' >&2", "exit 3"],
            directory: dir.path
        ))
        var exits = supervisor.exits.makeAsyncIterator()
        do {
            try await supervisor.waitForPort(id: "broken", port: port, timeout: .seconds(30))
            Issue.record("waitForPort succeeded for a run that exited")
        } catch let error as RunError {
            guard case .exitedBeforeReady(_, _, let errorPort, let status, let tail) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(errorPort == port)
            #expect(status == .exited(3))
            #expect(tail == ["starting the broken app", "cannot open config.yml"])
            let message = error.description
            #expect(message.contains("exited with code 3"))
            #expect(message.contains("cannot open config.yml"))
            #expect(message.contains("127.0.0.1:\(port)"))
        }
        #expect(await exits.next() == RunExit(id: "broken", status: .exited(3)))
        #expect(try await supervisor.waitForExit(id: "broken") == .exited(3))
    }

    @Test("a run that never listens times out, saying it still runs")
    func portTimeout() async throws {
        let dir = try StateTestDirectory("runs")
        defer { dir.remove() }
        let supervisor = RunSupervisor(stateDirectory: dir.path, logger: .quiet("runs"))
        let port = try await freePort()
        _ = try await supervisor.start(RunSpec(id: "idle", commands: ["echo waiting", "sleep 300"], directory: dir.path))
        await #expect {
            try await supervisor.waitForPort(id: "idle", port: port, timeout: .milliseconds(500))
        } throws: { error in
            let message = String(describing: error)
            return message.contains("still running") && message.contains("waiting")
        }
        try await supervisor.stop(id: "idle", gracePeriod: .seconds(5))
    }

    @Test("stop ends the whole process group, children included")
    func stopKillsGroup() async throws {
        let dir = try StateTestDirectory("runs")
        defer { dir.remove() }
        let supervisor = RunSupervisor(stateDirectory: dir.path, logger: .quiet("runs"))
        let started = try await supervisor.start(RunSpec(
            id: "tree", commands: ["sleep 300 &", "echo $! > child.pid", "wait"], directory: dir.path
        ))
        let childFile = dir.path + "/child.pid"
        #expect(try await eventually { ((try? String(contentsOfFile: childFile, encoding: .utf8)) ?? "").hasSuffix("\n") })
        let child = try #require(pid_t(try String(contentsOfFile: childFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(isRunning(child))
        #expect(getpgid(child) == started.pgid)

        try await supervisor.stop(id: "tree", gracePeriod: .seconds(5))
        #expect(!isRunning(started.pid))
        #expect(try await eventually { !isRunning(child) })
    }

    @Test("a group that ignores SIGTERM is killed after the grace period")
    func stopEscalates() async throws {
        let dir = try StateTestDirectory("runs")
        defer { dir.remove() }
        let supervisor = RunSupervisor(stateDirectory: dir.path, logger: .quiet("runs"))
        let started = try await supervisor.start(RunSpec(
            id: "stubborn", commands: ["trap '' TERM", "echo trapped", "sleep 300"], directory: dir.path
        ))
        let log = supervisor.log(id: "stubborn")
        #expect(try await eventually { log.tail(lines: 1) == ["trapped"] })
        let status = try await supervisor.stop(id: "stubborn", gracePeriod: .milliseconds(300))
        #expect(status == .signaled(SIGKILL))
        #expect(!isRunning(started.pid))
    }

    @Test("the environment and working directory are the run's")
    func environmentAndDirectory() async throws {
        let dir = try StateTestDirectory("runs")
        defer { dir.remove() }
        let work = dir.path + "/app dir"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let supervisor = RunSupervisor(stateDirectory: dir.path + "/state", logger: .quiet("runs"))
        _ = try await supervisor.start(RunSpec(
            id: "env",
            commands: [#"echo "dir=$(pwd)""#, #"echo "greeting=$GREETING""#, #"echo "run=$WARREN_RUN_ID""#, #"echo "path=${PATH:+set}""#],
            directory: work,
            environment: ["GREETING": "hello 'quoted' world"]
        ))
        #expect(try await supervisor.waitForExit(id: "env") == .exited(0))
        let lines = supervisor.log(id: "env").tail(lines: 10)
        #expect(lines == ["dir=\(work)", "greeting=hello 'quoted' world", "run=env", "path=set"])
    }

    @Test("`python` in a command runs python3 where only python3 is installed, and a real python wins")
    func pythonFallsBackToPython3() async throws {
        let dir = try StateTestDirectory("runs")
        defer { dir.remove() }
        // A PATH like a fresh Debian's: python3, no python.
        let onlyPython3 = dir.path + "/only-python3"
        try FileManager.default.createDirectory(atPath: onlyPython3, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: onlyPython3 + "/python3", withDestinationPath: "/usr/bin/python3")
        let supervisor = RunSupervisor(
            stateDirectory: dir.path + "/state", configuration: .init(path: onlyPython3), logger: .quiet("runs"))
        _ = try await supervisor.start(RunSpec(
            id: "py", commands: [#"python -c 'import sys; print("python", sys.version_info[0])'"#], directory: dir.path))
        #expect(try await supervisor.waitForExit(id: "py") == .exited(0))
        #expect(supervisor.log(id: "py").tail(lines: 5) == ["python 3"])

        // With a `python` of its own on the PATH, that one runs.
        let ownPython = dir.path + "/own-python"
        try FileManager.default.createDirectory(atPath: ownPython, withIntermediateDirectories: true)
        try "#!/bin/sh\necho own python\n".write(toFile: ownPython + "/python", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: ownPython + "/python")
        #expect(PythonFallback.path(ownPython + ":" + onlyPython3, fallbackDirectory: dir.path + "/fb") == ownPython + ":" + onlyPython3)
        #expect(PythonFallback.path(onlyPython3, fallbackDirectory: dir.path + "/fb") == onlyPython3 + ":" + dir.path + "/fb")
        #expect(PythonFallback.path("/nonexistent", fallbackDirectory: dir.path + "/fb") == "/nonexistent")
    }

    @Test("bad input gives clear errors")
    func badInput() async throws {
        let dir = try StateTestDirectory("runs")
        defer { dir.remove() }
        let supervisor = RunSupervisor(stateDirectory: dir.path, logger: .quiet("runs"))
        await #expect(throws: RunError.invalidID("../x")) {
            try await supervisor.start(RunSpec(id: "../x", commands: ["true"], directory: dir.path))
        }
        await #expect(throws: RunError.directoryNotFound(id: "a", directory: dir.path + "/missing")) {
            try await supervisor.start(RunSpec(id: "a", commands: ["true"], directory: dir.path + "/missing"))
        }
        await #expect(throws: RunError.invalidEnvironment(id: "a", name: "A=B")) {
            try await supervisor.start(RunSpec(id: "a", commands: ["true"], directory: dir.path, environment: ["A=B": "x"]))
        }
        await #expect(throws: RunError.unknownRun(id: "nope")) {
            try await supervisor.stop(id: "nope")
        }
    }

    @Test("recover adopts a live group and marks a dead one exited")
    func recovery() async throws {
        let dir = try StateTestDirectory("runs")
        defer { dir.remove() }
        // The node before its restart.
        let before = RunSupervisor(stateDirectory: dir.path, logger: .quiet("runs"))
        let live = try await before.start(RunSpec(id: "live", commands: ["sleep 300"], directory: dir.path))
        let dead = try await before.start(RunSpec(id: "dead", commands: ["true"], directory: dir.path))
        #expect(try await before.waitForExit(id: "dead") == .exited(0))
        await before.detachAll()

        func record(_ id: String, _ started: StartedRun?, state: RunState = .running) -> RunRecord {
            RunRecord(
                id: id, name: id, project: "local", configJSON: "{}", directory: dir.path,
                pid: started?.pid, pgid: started?.pgid, state: state, logPath: dir.path + "/runs/\(id).log"
            )
        }
        // A recorded pid now used by another process (this one) must not be adopted.
        let reused = RunRecord(
            id: "reused", name: "reused", project: "local", configJSON: "{}", directory: dir.path,
            pid: getpid(), pgid: getpgrp(), state: .running, logPath: dir.path + "/runs/reused.log"
        )
        let finished = record("finished", nil, state: .exited)

        let after = RunSupervisor(stateDirectory: dir.path, logger: .quiet("runs"))
        let recovered = await after.recover([record("live", live), record("dead", dead), reused, finished])
        let byID = Dictionary(uniqueKeysWithValues: recovered.map { ($0.id, $0) })
        #expect(byID["live"]?.state == .running)
        #expect(await after.isRunning(id: "live"))
        #expect(byID["dead"]?.state == .exited)
        #expect(byID["dead"]?.detail?.contains("ended while the node was down") == true)
        #expect(byID["reused"]?.state == .exited)
        #expect(byID["finished"] == finished)

        // The adopted run can be stopped, and its end is reported without an exit code.
        var exits = after.exits.makeAsyncIterator()
        let status = try await after.stop(id: "live", gracePeriod: .seconds(5))
        #expect(status == .unknown)
        #expect(await exits.next() == RunExit(id: "live", status: .unknown))
        #expect(try await eventually { !isRunning(live.pid) })
    }

    @Test("follow streams new output until the run ends")
    func followLog() async throws {
        let dir = try StateTestDirectory("runs")
        defer { dir.remove() }
        let supervisor = RunSupervisor(stateDirectory: dir.path, logger: .quiet("runs"))
        _ = try await supervisor.start(RunSpec(
            id: "talker", commands: ["for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done"], directory: dir.path
        ))
        var collected = Data()
        let stream = supervisor.log(id: "talker").follow(from: .beginning, pollInterval: .milliseconds(50)) {
            await !supervisor.isRunning(id: "talker")
        }
        for try await chunk in stream {
            collected.append(chunk)
        }
        #expect(String(decoding: collected, as: UTF8.self) == "line 1\nline 2\nline 3\nline 4\nline 5\n")
    }
}

@Suite("RunLog")
struct RunLogTests {
    @Test("tail reads the last lines across a rotation, and rotation bounds the file")
    func tailAndRotation() async throws {
        let dir = try StateTestDirectory("runlog")
        defer { dir.remove() }
        let path = dir.path + "/r.log"
        let log = RunLog(path: path, capBytes: 1000)
        #expect(log.tail(lines: 5).isEmpty)

        let first = (1...200).map { "line \($0)\n" }.joined()
        try Data(first.utf8).write(to: URL(fileURLWithPath: path))
        #expect(log.tail(lines: 3) == ["line 198", "line 199", "line 200"])

        // A follower that started before the rotation sees every byte once.
        var follower = log.follow(from: .beginning, pollInterval: .milliseconds(20)).makeAsyncIterator()
        var seen = Data()
        while seen.count < first.utf8.count, let chunk = try await follower.next() {
            seen.append(chunk)
        }

        // Appending, as a run's processes do (O_APPEND), so writes after the rotation land at the start.
        let fd = open(path, O_WRONLY | O_APPEND)
        #expect(fd >= 0)
        defer { close(fd) }
        func append(_ text: String) { _ = text.withCString { write(fd, $0, strlen($0)) } }
        append("line 201\n")
        #expect(log.rotateIfNeeded())
        append("line 202\n")

        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)
        #expect(size.intValue < 1000)
        #expect(log.tail(lines: 3) == ["line 200", "line 201", "line 202"])

        let expected = first + "line 201\nline 202\n"
        while seen.count < expected.utf8.count, let chunk = try await follower.next() {
            seen.append(chunk)
        }
        #expect(String(decoding: seen, as: UTF8.self) == expected)
    }
}
