// Wire format of gossip messages. All integers big-endian.
//
//   message   = version:u8 type:u8 body                  (version 1; whole message <= 16 MiB)
//
//   type 1 ping          seq:u32 target:id updates
//   type 2 indirectPing  seq:u32 target:id targetAddress:str16 updates
//   type 3 ack           seq:u32 updates
//   type 4 nack          seq:u32
//   type 5 gossip        updates
//   type 6 pushPull      flags:u8 (bit0 reply, bit1 join) n:u32 member{n} m:u32 entry{m}
//
//   updates   = n:u16 update{n}                          (n <= 4096)
//   update    = tag:u8 body
//     tag 1 alive        member-announce
//     tag 2 suspect      incarnation:u32 node:id from:id
//     tag 3 dead         incarnation:u32 node:id from:id
//     tag 4 entry        entry
//   member    = state:u8 incarnation:u32 id:id address:str16 metadata:bytes16
//   member-announce = incarnation:u32 id:id address:str16 metadata:bytes16
//   entry     = kind:u8 flags:u8 (bit0 tombstone) key:str16 value:bytes32 wall:u64 logical:u32
//               author:id signature:bytes8
//
//   id        = 32 bytes (the Ed25519 public key)
//   str16     = len:u16 UTF-8{len}     bytes16 = len:u16 byte{len}
//   bytes32   = len:u32 byte{len}      bytes8  = len:u8 byte{len}
//
//   +---------+------+------------------------------------------+
//   | version | type | body (layout by type, above)             |
//   +---------+------+------------------------------------------+
//      1 B      1 B
//
// Limits (`MessageCodec.Limits`): address 255 B, metadata 512 B, key 1 KiB, value 64 KiB,
// signature 128 B, 4096 updates per message, 1,000,000 members or entries per push-pull.

/// Encodes and decodes `Message`. `decode` is the single entry point for bytes from the network:
/// it throws `WireError` for anything malformed and never traps.
public enum MessageCodec {
    /// The version this node writes.
    public static let version: UInt8 = 1
    /// The range of versions this node reads.
    public static let minVersion: UInt8 = 1
    public static let maxVersion: UInt8 = 1

    /// Message type numbers. Only append to this list.
    /// Whether `bytes` is a push-pull message: its type byte, read without decoding the rest.
    public static func isPushPull(_ bytes: [UInt8]) -> Bool {
        bytes.count > 1 && bytes[1] == MessageType.pushPull.rawValue
    }

    public enum MessageType: UInt8, Sendable {
        case ping = 1
        case indirectPing = 2
        case ack = 3
        case nack = 4
        case gossip = 5
        case pushPull = 6
    }

    /// Update tags. Only append to this list.
    public enum UpdateType: UInt8, Sendable {
        case alive = 1
        case suspect = 2
        case dead = 3
        case entry = 4
    }

    public enum Limits {
        public static let message = 16 << 20
        public static let address = 255
        public static let metadata = 512
        public static let key = 1024
        public static let value = 64 << 10
        public static let signature = 128
        public static let updates = 4096
        public static let stateItems = 1_000_000
    }

    // MARK: Encoding

    public static func encode(_ message: Message) -> [UInt8] {
        var w = ByteWriter()
        w.u8(version)
        switch message {
        case let .ping(seq, target, updates):
            w.u8(MessageType.ping.rawValue)
            w.u32(seq)
            w.raw(target.bytes)
            write(updates, to: &w)
        case let .indirectPing(seq, target, targetAddress, updates):
            w.u8(MessageType.indirectPing.rawValue)
            w.u32(seq)
            w.raw(target.bytes)
            w.string16(targetAddress)
            write(updates, to: &w)
        case let .ack(seq, updates):
            w.u8(MessageType.ack.rawValue)
            w.u32(seq)
            write(updates, to: &w)
        case let .nack(seq):
            w.u8(MessageType.nack.rawValue)
            w.u32(seq)
        case let .gossip(updates):
            w.u8(MessageType.gossip.rawValue)
            write(updates, to: &w)
        case let .pushPull(state):
            w.u8(MessageType.pushPull.rawValue)
            w.u8((state.isReply ? 1 : 0) | (state.isJoin ? 2 : 0))
            w.u32(UInt32(truncatingIfNeeded: state.members.count))
            for m in state.members {
                w.u8(m.state.rawValue)
                writeAnnounce(m, to: &w)
            }
            w.u32(UInt32(truncatingIfNeeded: state.entries.count))
            for e in state.entries { write(e, to: &w) }
        }
        return w.bytes
    }

    /// Bytes one update adds to a message; used to fill datagrams up to their budget.
    public static func encodedSize(of update: Update) -> Int {
        var w = ByteWriter()
        write(update, to: &w)
        return w.bytes.count
    }

    /// Bytes of a message's fixed part, before its updates.
    static let headerSize = 2 + 4 + NodeID.byteCount + 2

    private static func write(_ updates: [Update], to w: inout ByteWriter) {
        w.u16(UInt16(truncatingIfNeeded: updates.count))
        for u in updates { write(u, to: &w) }
    }

    private static func write(_ update: Update, to w: inout ByteWriter) {
        switch update {
        case let .alive(m):
            w.u8(UpdateType.alive.rawValue)
            writeAnnounce(m, to: &w)
        case let .suspect(node, incarnation, from):
            w.u8(UpdateType.suspect.rawValue)
            w.u32(incarnation)
            w.raw(node.bytes)
            w.raw(from.bytes)
        case let .dead(node, incarnation, from):
            w.u8(UpdateType.dead.rawValue)
            w.u32(incarnation)
            w.raw(node.bytes)
            w.raw(from.bytes)
        case let .entry(e):
            w.u8(UpdateType.entry.rawValue)
            write(e, to: &w)
        }
    }

    private static func writeAnnounce(_ m: Member, to w: inout ByteWriter) {
        w.u32(m.incarnation)
        w.raw(m.id.bytes)
        w.string16(m.address)
        w.bytes16(m.metadata)
    }

    private static func write(_ e: Entry, to w: inout ByteWriter) {
        w.u8(e.kind.rawValue)
        w.u8(e.isTombstone ? 1 : 0)
        w.string16(e.key)
        w.bytes32(e.value ?? [])
        w.u64(e.timestamp.wallMillis)
        w.u32(e.timestamp.logical)
        w.raw(e.author.bytes)
        w.bytes8(e.signature)
    }

    // MARK: Decoding

    /// Decodes one message. Throws `WireError` for anything malformed, oversized, of an unknown
    /// version or type, or followed by extra bytes.
    public static func decode(_ bytes: [UInt8]) throws -> Message {
        try decodeTyped(bytes)
    }

    static func decodeTyped(_ bytes: [UInt8]) throws(WireError) -> Message {
        guard bytes.count <= Limits.message else { throw .messageTooLarge(length: bytes.count, limit: Limits.message) }
        var r = ByteReader(bytes)
        let v = try r.u8()
        guard v >= minVersion, v <= maxVersion else { throw .unsupportedVersion(v) }
        let rawType = try r.u8()
        guard let type = MessageType(rawValue: rawType) else { throw .unknownMessageType(rawType) }
        let message: Message
        switch type {
        case .ping:
            let seq = try r.u32()
            let target = try r.nodeID()
            message = .ping(seq: seq, target: target, updates: try readUpdates(&r))
        case .indirectPing:
            let seq = try r.u32()
            let target = try r.nodeID()
            let address = try r.string16(max: Limits.address, field: "target address")
            message = .indirectPing(seq: seq, target: target, targetAddress: address, updates: try readUpdates(&r))
        case .ack:
            let seq = try r.u32()
            message = .ack(seq: seq, updates: try readUpdates(&r))
        case .nack:
            message = .nack(seq: try r.u32())
        case .gossip:
            message = .gossip(updates: try readUpdates(&r))
        case .pushPull:
            let flags = try r.u8()
            guard flags & ~3 == 0 else { throw .invalidFlags(flags) }
            let memberCount = try r.count32(minElementSize: 1 + 4 + 32 + 4, max: Limits.stateItems, field: "members")
            var members: [Member] = []
            members.reserveCapacity(memberCount)
            for _ in 0..<memberCount {
                let rawState = try r.u8()
                guard let state = MemberState(rawValue: rawState) else { throw .unknownMemberState(rawState) }
                var m = try readAnnounce(&r)
                m.state = state
                members.append(m)
            }
            let entryCount = try r.count32(minElementSize: minEntrySize, max: Limits.stateItems, field: "entries")
            var entries: [Entry] = []
            entries.reserveCapacity(entryCount)
            for _ in 0..<entryCount { entries.append(try readEntry(&r)) }
            message = .pushPull(PushPull(isReply: flags & 1 != 0, isJoin: flags & 2 != 0, members: members, entries: entries))
        }
        guard r.remaining == 0 else { throw .trailingBytes(r.remaining) }
        return message
    }

    private static let minEntrySize = 1 + 1 + 2 + 4 + 8 + 4 + 32 + 1

    private static func readUpdates(_ r: inout ByteReader) throws(WireError) -> [Update] {
        let n = try r.count16(minElementSize: 1 + 4 + 32 + 4, max: Limits.updates, field: "updates")
        var updates: [Update] = []
        updates.reserveCapacity(n)
        for _ in 0..<n {
            let rawTag = try r.u8()
            guard let tag = UpdateType(rawValue: rawTag) else { throw .unknownUpdateType(rawTag) }
            switch tag {
            case .alive:
                updates.append(.alive(try readAnnounce(&r)))
            case .suspect:
                let inc = try r.u32()
                updates.append(.suspect(node: try r.nodeID(), incarnation: inc, from: try r.nodeID()))
            case .dead:
                let inc = try r.u32()
                updates.append(.dead(node: try r.nodeID(), incarnation: inc, from: try r.nodeID()))
            case .entry:
                updates.append(.entry(try readEntry(&r)))
            }
        }
        return updates
    }

    private static func readAnnounce(_ r: inout ByteReader) throws(WireError) -> Member {
        let incarnation = try r.u32()
        let id = try r.nodeID()
        let address = try r.string16(max: Limits.address, field: "address")
        let metadata = try r.bytes16(max: Limits.metadata, field: "metadata")
        return Member(id: id, address: address, metadata: metadata, incarnation: incarnation, state: .alive)
    }

    private static func readEntry(_ r: inout ByteReader) throws(WireError) -> Entry {
        let kind = EntryKind(rawValue: try r.u8())
        let flags = try r.u8()
        guard flags & ~1 == 0 else { throw .invalidFlags(flags) }
        let key = try r.string16(max: Limits.key, field: "entry key")
        let value = try r.bytes32(max: Limits.value, field: "entry value")
        // A tombstone carries no value; anything else would sign bytes that are then dropped.
        if flags & 1 != 0, !value.isEmpty { throw .invalidFlags(flags) }
        let wall = try r.u64()
        let logical = try r.u32()
        let author = try r.nodeID()
        let signature = try r.bytes8(max: Limits.signature, field: "signature")
        return Entry(
            kind: kind, key: key, value: flags & 1 != 0 ? nil : value,
            timestamp: HLCTimestamp(wallMillis: wall, logical: logical), author: author, signature: signature
        )
    }
}
