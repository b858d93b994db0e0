import Foundation
import Logging
import MeshNode
@testable import Provisioning
@testable import Trust
@testable import Link
import Testing

@Suite("StateStore")
struct StateStoreTests {
    @Test("written state is read back after the store is closed and reopened")
    func survivesReopen() async throws {
        let dir = try StateTestDirectory("store")
        defer { dir.remove() }
        let stateDir = dir.path + "/home"

        let entry = ReplicatedEntryRecord(
            kind: 3, key: "lease/203.0.113.10/5001", value: Data("v1".utf8), hlc: UInt64.max - 7,
            author: Data(repeating: 0xAB, count: 32), signature: Data(repeating: 0xCD, count: 64)
        )
        let tombstone = ReplicatedEntryRecord(
            kind: 3, key: "lease/203.0.113.10/5002", value: Data(), hlc: 42,
            author: Data(repeating: 1, count: 32), signature: Data(repeating: 2, count: 64), deleted: true
        )
        let created = Date(timeIntervalSince1970: 1_800_000_000)
        let run = RunRecord(
            id: "r-1", name: "web", project: "local", configJSON: #"{"port":"5001:8000"}"#, directory: "/srv/app",
            pid: 4242, pgid: 4242, state: .running, createdAt: created, updatedAt: created, logPath: "/x/runs/r-1.log"
        )
        let exclusive = LeaseRecord(
            gatewayAddress: "127.0.0.2", port: 5001, host: nil, runID: "r-1", holderNode: "node-a",
            expiresAt: Date(timeIntervalSince1970: 1_800_000_030)
        )
        let routed = LeaseRecord(
            gatewayAddress: "127.0.0.2", port: 80, host: "a.example", runID: "r-2", holderNode: "node-b",
            expiresAt: Date(timeIntervalSince1970: 1_800_000_030)
        )
        // `https: false` survives a restart, so a restarted gateway orders no certificate for it.
        let plain = LeaseRecord(
            gatewayAddress: "127.0.0.2", port: 80, host: "plain.example", runID: "r-3", holderNode: "node-b",
            expiresAt: Date(timeIntervalSince1970: 1_800_000_030), https: false
        )

        do {
            let store = try StateStore(stateDirectory: stateDir, logger: .quiet("store"))
            try await store.upsertEntries([entry, tombstone])
            try await store.saveRun(run)
            try await store.saveLease(exclusive)
            try await store.saveLease(routed)
            try await store.saveLease(plain)
            try await store.setStringSetting("node.listen", to: "127.0.0.1:7946")
            try store.close()
        }

        let store = try StateStore(stateDirectory: stateDir, logger: .quiet("store"))
        #expect(try await store.entries(kind: 3) == [entry, tombstone])
        #expect(try await store.entries(kind: 4).isEmpty)
        #expect(try await store.entry(kind: 3, key: entry.key) == entry)
        #expect(try await store.runs() == [run])
        #expect(try await store.run(id: "r-1")?.state == .running)
        #expect(Set(try await store.leases()) == [exclusive, routed, plain])
        #expect(try await store.leases().first { $0.runID == "r-3" }?.https == false)
        #expect(try await store.stringSetting("node.listen") == "127.0.0.1:7946")
        #expect(try await store.stringSetting("missing") == nil)
    }

    @Test("upserts replace by primary key, deletes remove")
    func upsertAndDelete() async throws {
        let dir = try StateTestDirectory("store")
        defer { dir.remove() }
        let store = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))

        var entry = ReplicatedEntryRecord(kind: 1, key: "k", value: Data([1]), hlc: 1, author: Data([9]), signature: Data([8]))
        try await store.upsertEntry(entry)
        entry.value = Data([2])
        entry.hlc = 2
        try await store.upsertEntry(entry)
        #expect(try await store.allEntries() == [entry])
        #expect(try await store.removeEntries([(kind: 1, key: "k")]) == 1)
        #expect(try await store.allEntries().isEmpty)

        let lease = LeaseRecord(gatewayAddress: "127.0.0.2", port: 5001, host: nil, runID: "a", holderNode: "n", expiresAt: Date(timeIntervalSince1970: 2000))
        try await store.saveLease(lease)
        // A second exclusive lease on the same port replaces the first: the host column is never NULL.
        var second = lease
        second.runID = "b"
        try await store.saveLease(second)
        #expect(try await store.leases() == [second])
        #expect(try await store.deleteLease(gatewayAddress: "127.0.0.2", port: 5001, host: nil))
        #expect(try await !store.deleteLease(gatewayAddress: "127.0.0.2", port: 5001, host: nil))

        // Host names are one binding whatever their case or trailing dot.
        let upper = LeaseRecord(gatewayAddress: "127.0.0.2", port: 80, host: "App.Example.", runID: "c", holderNode: "n", expiresAt: Date(timeIntervalSince1970: 2000))
        try await store.saveLease(upper)
        var lower = upper
        lower.host = "app.example"
        lower.runID = "d"
        try await store.saveLease(lower)
        #expect(try await store.leases() == [lower])
        #expect(try await store.deleteLease(gatewayAddress: "127.0.0.2", port: 80, host: "APP.example."))
        #expect(try await store.leases().isEmpty)

        let old = LeaseRecord(gatewayAddress: "g", port: 1, host: "h", runID: "x", holderNode: "n", expiresAt: Date(timeIntervalSince1970: 10))
        let fresh = LeaseRecord(gatewayAddress: "g", port: 2, host: nil, runID: "y", holderNode: "n", expiresAt: Date(timeIntervalSince1970: 1000))
        try await store.transaction([.saveLease(old), .saveLease(fresh)])
        #expect(try await store.removeLeases(expiredBefore: Date(timeIntervalSince1970: 500)) == [old])
        #expect(try await store.leases() == [fresh])

        let run = RunRecord(id: "r", name: "n", project: "p", configJSON: "{}", directory: "/", logPath: "/l")
        try await store.saveRun(run)
        #expect(try await store.deleteRun(id: "r"))
        #expect(try await store.runs().isEmpty)
    }

    @Test("the database file and state directory are private")
    func filesArePrivate() async throws {
        let dir = try StateTestDirectory("store")
        defer { dir.remove() }
        let stateDir = dir.path + "/nested/home"
        let store = try StateStore(stateDirectory: stateDir, logger: .quiet("store"))
        try await store.setStringSetting("a", to: "b")
        #expect(try posixMode(stateDir) == 0o700)
        #expect(try posixMode(store.path) == 0o600)
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: store.path + suffix) {
            #expect(try posixMode(store.path + suffix) == 0o600)
        }
    }

    @Test("concurrent writers, through one store and through two, lose nothing")
    func concurrentWriters() async throws {
        let dir = try StateTestDirectory("store")
        defer { dir.remove() }
        let first = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))
        // A second connection pool on the same file stands in for a second process.
        let second = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))
        let writers = 8
        let perWriter = 50

        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                let store = writer.isMultiple(of: 2) ? first : second
                group.addTask {
                    for index in 0..<perWriter {
                        let entry = ReplicatedEntryRecord(
                            kind: writer, key: "key-\(index)", value: Data("\(writer)/\(index)".utf8),
                            hlc: UInt64(index), author: Data([UInt8(writer)]), signature: Data([UInt8(index)])
                        )
                        try await store.upsertEntry(entry)
                        let run = RunRecord(
                            id: "run-\(writer)-\(index)", name: "n", project: "p", configJSON: "{}",
                            directory: "/", logPath: "/l"
                        )
                        try await store.saveRun(run)
                    }
                }
            }
            try await group.waitForAll()
        }

        try first.close()
        try second.close()
        let reopened = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))
        #expect(try await reopened.allEntries().count == writers * perWriter)
        #expect(try await reopened.runs().count == writers * perWriter)
        for writer in 0..<writers {
            let entries = try await reopened.entries(kind: writer)
            #expect(entries.map { String(decoding: $0.value, as: UTF8.self) } == (0..<perWriter).map { "\(writer)/\($0)" }.sorted())
        }
    }

    @Test("a state directory path that is a file gives a clear error")
    func directoryIsFile() throws {
        let dir = try StateTestDirectory("store")
        defer { dir.remove() }
        let file = dir.path + "/file"
        _ = FileManager.default.createFile(atPath: file, contents: Data())
        #expect {
            _ = try StateStore(stateDirectory: file, logger: .quiet("store"))
        } throws: { error in
            String(describing: error).contains(file)
        }
    }
}
