import GRDB

extension StateStore {
    /// The schema's history. Only append: a released migration never changes.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "entries") { t in
                t.column("kind", .integer).notNull()
                t.column("key", .text).notNull()
                t.column("value", .blob).notNull()
                t.column("hlc", .integer).notNull()
                t.column("author", .blob).notNull()
                t.column("signature", .blob).notNull()
                t.column("deleted", .boolean).notNull().defaults(to: false)
                t.primaryKey(["kind", "key"])
            }
            try db.create(table: "runs") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull()
                t.column("project", .text).notNull()
                t.column("config", .text).notNull()
                t.column("dir", .text).notNull()
                t.column("pid", .integer)
                t.column("pgid", .integer)
                t.column("state", .text).notNull()
                t.column("exitCode", .integer)
                t.column("detail", .text)
                t.column("createdAt", .datetime).notNull()
                t.column("updatedAt", .datetime).notNull()
                t.column("logPath", .text).notNull()
            }
            try db.create(table: "leases") { t in
                t.column("gatewayAddress", .text).notNull()
                t.column("port", .integer).notNull()
                t.column("host", .text).notNull().defaults(to: "")
                t.column("runID", .text).notNull()
                t.column("holderNode", .text).notNull()
                t.column("runName", .text).notNull().defaults(to: "")
                t.column("appPort", .integer).notNull().defaults(to: 0)
                t.column("expiresAt", .datetime).notNull()
                t.primaryKey(["gatewayAddress", "port", "host"])
            }
            try db.create(table: "settings") { t in
                t.primaryKey("key", .text)
                t.column("value", .blob).notNull()
            }
        }
        migrator.registerMigration("v2-lease-https") { db in
            // NULL: the default (terminated where the gateway has ACME); 0: `https: false`.
            try db.alter(table: "leases") { t in t.add(column: "https", .boolean) }
        }
        return migrator
    }
}
