/// The accepted connections still in their handshake, with their source addresses, oldest first.
///
/// A new connection always gets a place: when its address already holds `perAddress` places, or
/// all `limit` places are taken, the oldest pending connection of that address (or of all) gives
/// way. A flood's silent connections then push out only each other, while a real peer, whose
/// handshake completes within a round trip, is gone before its turn to give way comes.
struct PendingHandshakes<Key: Hashable & Sendable, Connection: Sendable>: Sendable {
    private struct Entry: Sendable {
        let connection: Connection
        let address: String
        let order: UInt64
    }

    private var entries: [Key: Entry] = [:]
    private var byAddress: [String: Int] = [:]
    private var arrivals: UInt64 = 0

    /// Connections in their handshake.
    var count: Int { entries.count }

    /// Connections from `address` in their handshake.
    func count(from address: String) -> Int { byAddress[address] ?? 0 }

    /// Counts `connection` in; returns the connections it pushes out (to be closed) and why.
    mutating func begin(_ key: Key, connection: Connection, address: String, limit: Int, perAddress: Int) -> [(Connection, LinkError)] {
        var evicted: [(Connection, LinkError)] = []
        if count(from: address) >= perAddress, let oldest = oldest(from: address), let gone = remove(oldest) {
            evicted.append((gone, .tooManyHandshakesFrom(address: address, limit: perAddress)))
        }
        if entries.count >= limit, let oldest = oldest(from: nil), let gone = remove(oldest) {
            evicted.append((gone, .tooManyHandshakes(limit: limit)))
        }
        arrivals += 1
        entries[key] = Entry(connection: connection, address: address, order: arrivals)
        byAddress[address, default: 0] += 1
        return evicted
    }

    /// The handshake of `key` ended (a link, an error, a close); nothing when it was pushed out.
    mutating func end(_ key: Key) {
        _ = remove(key)
    }

    private func oldest(from address: String?) -> Key? {
        entries.filter { address == nil || $0.value.address == address }.min { $0.value.order < $1.value.order }?.key
    }

    private mutating func remove(_ key: Key) -> Connection? {
        guard let entry = entries.removeValue(forKey: key) else { return nil }
        let left = (byAddress[entry.address] ?? 1) - 1
        byAddress[entry.address] = left > 0 ? left : nil
        return entry.connection
    }
}
