/// Errors of the state store, in words that say what to do.
public enum StoreError: Error, CustomStringConvertible, Sendable {
    /// The database could not be opened or migrated.
    case cannotOpen(path: String, reason: String)
    /// A row holds a value this version does not understand.
    case corruptRow(table: String, key: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason):
            "cannot open the state database \(path): \(reason); check the permissions of the state directory, or move the file away to start afresh"
        case .corruptRow(let table, let key, let reason):
            "the state database has an unreadable row in \(table) (\(key)): \(reason)"
        }
    }
}
