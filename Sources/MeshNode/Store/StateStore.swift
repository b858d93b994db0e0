public import Foundation
import GRDB
public import Logging

/// The node's persistent state: replicated entries, runs, leases and settings, in SQLite
/// (`<stateDir>/state.sqlite`, mode 0600).
///
/// Every write is one transaction. Reads see a consistent snapshot (WAL mode), so the local API can
/// list runs while gossip writes entries.
public final class StateStore: Sendable {
    /// The database file's name inside the state directory.
    public static let fileName = "state.sqlite"

    public let path: String
    private let pool: DatabasePool
    private let logger: Logger

    /// Opens (creating and migrating if needed) the store in `stateDirectory`.
    public init(stateDirectory: String, logger: Logger) throws {
        try PrivateFiles.ensureDirectory(stateDirectory)
        let path = stateDirectory.hasSuffix("/") ? stateDirectory + Self.fileName : stateDirectory + "/" + Self.fileName
        // Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the same mode.
        try PrivateFiles.ensureFile(path)

        var configuration = Configuration()
        configuration.label = "warren.state"
        // Another process (a second node started by mistake, a CLI reading) may hold the lock briefly.
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch {
            throw StoreError.cannotOpen(path: path, reason: String(describing: error))
        }
        self.path = path
        self.logger = logger
        logger.debug("state store open", metadata: ["store.path": "\(path)"])
    }

    // MARK: Replicated entries

    /// Inserts or replaces the entry with the same (kind, key).
    public func upsertEntry(_ entry: ReplicatedEntryRecord) async throws {
        try await upsertEntries([entry])
    }

    /// Inserts or replaces several entries in one transaction (a push-pull batch).
    public func upsertEntries(_ entries: [ReplicatedEntryRecord]) async throws {
        guard !entries.isEmpty else { return }
        try await pool.write { db in
            for entry in entries {
                try EntryRow(entry).insert(db, onConflict: .replace)
            }
        }
    }

    /// The entry with this kind and key, tombstone or not.
    public func entry(kind: Int, key: String) async throws -> ReplicatedEntryRecord? {
        try await pool.read { db in
            try EntryRow.filter(Column("kind") == kind && Column("key") == key).fetchOne(db)?.record
        }
    }

    /// All entries of a kind (tombstones included), ordered by key.
    public func entries(kind: Int) async throws -> [ReplicatedEntryRecord] {
        try await pool.read { db in
            try EntryRow.filter(Column("kind") == kind).order(Column("key")).fetchAll(db).map(\.record)
        }
    }

    /// Every entry, for loading the replicated map at start.
    public func allEntries() async throws -> [ReplicatedEntryRecord] {
        try await pool.read { db in
            try EntryRow.order(Column("kind"), Column("key")).fetchAll(db).map(\.record)
        }
    }

    /// Removes entries for good (tombstones past their grace period). Returns how many went.
    @discardableResult
    public func removeEntries(_ keys: [(kind: Int, key: String)]) async throws -> Int {
        guard !keys.isEmpty else { return 0 }
        let pairs = keys.map { ($0.kind, $0.key) }
        return try await pool.write { db in
            var removed = 0
            for (kind, key) in pairs {
                removed += try EntryRow.filter(Column("kind") == kind && Column("key") == key).deleteAll(db)
            }
            return removed
        }
    }

    // MARK: Runs

    /// Inserts or replaces the run with the same ID.
    public func saveRun(_ run: RunRecord) async throws {
        try await pool.write { db in
            try RunRow(run).insert(db, onConflict: .replace)
        }
    }

    /// The run with this ID.
    public func run(id: String) async throws -> RunRecord? {
        try await pool.read { db in
            try RunRow.fetchOne(db, key: id)
        }?.record()
    }

    /// All runs, oldest first.
    public func runs() async throws -> [RunRecord] {
        try await pool.read { db in
            try RunRow.order(Column("createdAt"), Column("id")).fetchAll(db)
        }.map { try $0.record() }
    }

    /// Forgets a run. Returns whether it existed.
    @discardableResult
    public func deleteRun(id: String) async throws -> Bool {
        try await pool.write { db in
            try RunRow.deleteOne(db, key: id)
        }
    }

    // MARK: Leases

    /// Inserts or replaces the lease on the same (gateway address, port, host). The host is kept
    /// lower-cased and without a trailing dot.
    public func saveLease(_ lease: LeaseRecord) async throws {
        try await pool.write { db in
            try LeaseRow(lease).insert(db, onConflict: .replace)
        }
    }

    /// Removes the lease on (gateway address, port, host). Returns whether it existed.
    @discardableResult
    public func deleteLease(gatewayAddress: String, port: Int, host: String?) async throws -> Bool {
        try await pool.write { db in
            try LeaseRow
                .filter(Column("gatewayAddress") == gatewayAddress && Column("port") == port && Column("host") == LeaseRow.normalizedHost(host))
                .deleteAll(db) > 0
        }
    }

    /// All leases, ordered by gateway, port and host.
    public func leases() async throws -> [LeaseRecord] {
        try await pool.read { db in
            try LeaseRow.order(Column("gatewayAddress"), Column("port"), Column("host")).fetchAll(db).map(\.record)
        }
    }

    /// Removes the leases that expired before `date`. Returns them.
    public func removeLeases(expiredBefore date: Date) async throws -> [LeaseRecord] {
        try await pool.write { db in
            let expired = LeaseRow.filter(Column("expiresAt") < date)
            let rows = try expired.fetchAll(db)
            try expired.deleteAll(db)
            return rows.map(\.record)
        }
    }

    // MARK: Settings

    /// A node setting's raw value.
    public func setting(_ key: String) async throws -> Data? {
        try await pool.read { db in
            try SettingRow.fetchOne(db, key: key)?.value
        }
    }

    /// Sets (or, with nil, removes) a node setting.
    public func setSetting(_ key: String, to value: Data?) async throws {
        try await pool.write { db in
            if let value {
                try SettingRow(key: key, value: value).insert(db, onConflict: .replace)
            } else {
                _ = try SettingRow.deleteOne(db, key: key)
            }
        }
    }

    /// A node setting as UTF-8 text.
    public func stringSetting(_ key: String) async throws -> String? {
        try await setting(key).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Sets (or, with nil, removes) a node setting as UTF-8 text.
    public func setStringSetting(_ key: String, to value: String?) async throws {
        try await setSetting(key, to: value.map { Data($0.utf8) })
    }

    /// Several changes in one transaction, e.g. a run that stops and releases its lease.
    public func transaction(_ changes: [StoreChange]) async throws {
        try await pool.write { db in
            for change in changes {
                switch change {
                case .upsertEntry(let entry): try EntryRow(entry).insert(db, onConflict: .replace)
                case .saveRun(let run): try RunRow(run).insert(db, onConflict: .replace)
                case .deleteRun(let id): _ = try RunRow.deleteOne(db, key: id)
                case .saveLease(let lease): try LeaseRow(lease).insert(db, onConflict: .replace)
                case .deleteLease(let address, let port, let host):
                    _ = try LeaseRow
                        .filter(Column("gatewayAddress") == address && Column("port") == port && Column("host") == LeaseRow.normalizedHost(host))
                        .deleteAll(db)
                case .setSetting(let key, let value):
                    if let value {
                        try SettingRow(key: key, value: value).insert(db, onConflict: .replace)
                    } else {
                        _ = try SettingRow.deleteOne(db, key: key)
                    }
                }
            }
        }
    }

    /// Closes the database; later calls fail. Closing is also done when the store is released.
    public func close() throws {
        try pool.close()
    }
}

/// One change of a `StateStore.transaction(_:)`.
public enum StoreChange: Sendable {
    case upsertEntry(ReplicatedEntryRecord)
    case saveRun(RunRecord)
    case deleteRun(id: String)
    case saveLease(LeaseRecord)
    case deleteLease(gatewayAddress: String, port: Int, host: String?)
    case setSetting(key: String, value: Data?)
}
