// A small, bounded reader of the TLS ClientHello: just enough to find the SNI host name.
//
// Layout (RFC 8446 §4.1.2, RFC 6066 §3), all lengths big-endian:
//   record:     type=22 (1) | legacy_version (2) | length (2) | fragment
//   handshake:  msg_type=1 (1) | length (3) | body            (may span several records)
//   body:       legacy_version (2) | random (32) | session_id <1> | cipher_suites <2>
//               | compression_methods <1> | extensions <2>
//   extension:  type (2) | length (2) | data                  (server_name is type 0)
//   server_name data: list length (2) | name_type=0 (1) | name length (2) | name

public import NIOCore

/// What the bytes seen so far say about the ClientHello.
public enum ClientHelloPeek: Hashable, Sendable {
    /// The ClientHello is not complete yet; read more.
    case needMoreData
    /// The ClientHello is complete; its SNI host name, normalized, or nil if it has none.
    case complete(serverName: String?)
}

public enum ClientHello {
    static let handshakeRecord: UInt8 = 22
    static let clientHelloType: UInt8 = 1

    /// Reads the server name from the start of a TLS connection without consuming `buffer`.
    /// Throws `ProxyError.malformedClientHello` on bytes that are not a ClientHello, and
    /// `ProxyError.routingDataTooLarge` when the ClientHello would exceed `limit` bytes.
    public static func peek(_ buffer: ByteBuffer, limit: Int = 16 * 1024) throws(ProxyError) -> ClientHelloPeek {
        var records = buffer
        var handshake = ByteBuffer()
        // Gather handshake bytes from consecutive records until the message is whole.
        while true {
            if let needed = Self.handshakeLength(handshake), handshake.readableBytes >= needed {
                break
            }
            guard records.readableBytes >= 5 else { return try Self.more(buffer, limit) }
            let type = records.readInteger(as: UInt8.self)!
            let major = records.readInteger(as: UInt8.self)!
            _ = records.readInteger(as: UInt8.self)!
            let length = Int(records.readInteger(as: UInt16.self)!)
            guard type == Self.handshakeRecord else { throw .malformedClientHello("record type \(type), expected 22") }
            guard major == 3 else { throw .malformedClientHello("record version \(major).x, expected 3.x") }
            guard length > 0, length <= 16384 + 256 else { throw .malformedClientHello("record length \(length)") }
            guard var fragment = records.readSlice(length: length) else { return try Self.more(buffer, limit) }
            handshake.writeBuffer(&fragment)
        }
        guard handshake.readInteger(as: UInt8.self) == Self.clientHelloType else {
            throw .malformedClientHello("first handshake message is not a ClientHello")
        }
        handshake.moveReaderIndex(forwardBy: 3)
        return .complete(serverName: try Self.serverName(inBody: &handshake))
    }

    /// 4 + the handshake message length, once its header is there.
    private static func handshakeLength(_ handshake: ByteBuffer) -> Int? {
        guard handshake.readableBytes >= 4,
            let bytes = handshake.getBytes(at: handshake.readerIndex + 1, length: 3)
        else { return nil }
        return 4 + (Int(bytes[0]) << 16 | Int(bytes[1]) << 8 | Int(bytes[2]))
    }

    private static func more(_ buffer: ByteBuffer, _ limit: Int) throws(ProxyError) -> ClientHelloPeek {
        if buffer.readableBytes >= limit { throw .routingDataTooLarge(limit: limit) }
        return .needMoreData
    }

    private static func serverName(inBody body: inout ByteBuffer) throws(ProxyError) -> String? {
        guard body.readSlice(length: 2 + 32) != nil,
            let sessionLength = body.readInteger(as: UInt8.self), body.readSlice(length: Int(sessionLength)) != nil,
            let suitesLength = body.readInteger(as: UInt16.self), body.readSlice(length: Int(suitesLength)) != nil,
            let compressionLength = body.readInteger(as: UInt8.self),
            body.readSlice(length: Int(compressionLength)) != nil
        else { throw .malformedClientHello("truncated before the extensions") }
        // A ClientHello without extensions (TLS 1.0 era) has no SNI.
        guard let extensionsLength = body.readInteger(as: UInt16.self) else { return nil }
        guard var extensions = body.readSlice(length: Int(extensionsLength)) else {
            throw .malformedClientHello("extensions run past the message")
        }
        while extensions.readableBytes > 0 {
            guard let type = extensions.readInteger(as: UInt16.self),
                let length = extensions.readInteger(as: UInt16.self),
                var data = extensions.readSlice(length: Int(length))
            else { throw .malformedClientHello("truncated extension") }
            guard type == 0 else { continue }
            guard let listLength = data.readInteger(as: UInt16.self), var list = data.readSlice(length: Int(listLength))
            else { throw .malformedClientHello("truncated server_name list") }
            while list.readableBytes > 0 {
                guard let nameType = list.readInteger(as: UInt8.self),
                    let nameLength = list.readInteger(as: UInt16.self),
                    let name = list.readString(length: Int(nameLength))
                else { throw .malformedClientHello("truncated server name") }
                if nameType == 0 {
                    guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                        throw .malformedClientHello("server name is not a printable ASCII host name")
                    }
                    return HostName.normalize(name)
                }
            }
            return nil
        }
        return nil
    }
}
