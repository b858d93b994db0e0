import Foundation
import GRDB

// The rows as SQLite holds them. Kept apart from the public records so that the schema can change
// without changing the API, and so that GRDB stays an implementation detail of the store.

struct EntryRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "entries"

    var kind: Int
    var key: String
    var value: Data
    /// The HLC's bits; SQLite integers are signed.
    var hlc: Int64
    var author: Data
    var signature: Data
    var deleted: Bool

    init(_ record: ReplicatedEntryRecord) {
        kind = record.kind
        key = record.key
        value = record.value
        hlc = Int64(bitPattern: record.hlc)
        author = record.author
        signature = record.signature
        deleted = record.deleted
    }

    var record: ReplicatedEntryRecord {
        ReplicatedEntryRecord(
            kind: kind, key: key, value: value, hlc: UInt64(bitPattern: hlc),
            author: author, signature: signature, deleted: deleted
        )
    }
}

struct RunRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "runs"

    var id: String
    var name: String
    var project: String
    var config: String
    var dir: String
    var pid: Int32?
    var pgid: Int32?
    var state: String
    var exitCode: Int32?
    var detail: String?
    var createdAt: Date
    var updatedAt: Date
    var logPath: String

    init(_ record: RunRecord) {
        id = record.id
        name = record.name
        project = record.project
        config = record.configJSON
        dir = record.directory
        pid = record.pid
        pgid = record.pgid
        state = record.state.rawValue
        exitCode = record.exitCode
        detail = record.detail
        createdAt = record.createdAt
        updatedAt = record.updatedAt
        logPath = record.logPath
    }

    func record() throws -> RunRecord {
        guard let state = RunState(rawValue: state) else {
            throw StoreError.corruptRow(table: Self.databaseTableName, key: id, reason: "unknown run state \"\(self.state)\"")
        }
        return RunRecord(
            id: id, name: name, project: project, configJSON: config, directory: dir, pid: pid, pgid: pgid,
            state: state, exitCode: exitCode, detail: detail, createdAt: createdAt, updatedAt: updatedAt,
            logPath: logPath
        )
    }
}

struct LeaseRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "leases"

    var gatewayAddress: String
    var port: Int
    /// "" for an exclusive binding: SQLite lets NULLs repeat in a primary key, which would let two
    /// exclusive leases on one port coexist.
    var host: String
    var runID: String
    var holderNode: String
    var runName: String
    var appPort: Int
    var expiresAt: Date
    var https: Bool?

    init(_ record: LeaseRecord) {
        https = record.https
        gatewayAddress = record.gatewayAddress
        port = record.port
        host = Self.normalizedHost(record.host)
        runID = record.runID
        holderNode = record.holderNode
        runName = record.runName
        appPort = record.appPort
        expiresAt = record.expiresAt
    }

    /// Host names compare case-insensitively and without a trailing dot (the conflict rule), so the
    /// primary key holds them in that form.
    static func normalizedHost(_ host: String?) -> String {
        guard var host = host?.lowercased() else { return "" }
        while host.hasSuffix(".") { host.removeLast() }
        return host
    }

    var record: LeaseRecord {
        LeaseRecord(
            gatewayAddress: gatewayAddress, port: port, host: host.isEmpty ? nil : host,
            runID: runID, holderNode: holderNode, runName: runName, appPort: appPort, expiresAt: expiresAt,
            https: https
        )
    }
}

struct SettingRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "settings"

    var key: String
    var value: Data
}
