internal import NIOCore

/// Opens transport records: reads `length ‖ ciphertext ‖ tag` frames and passes the plaintext on,
/// all complete records of one read decrypted into one buffer. A record that fails
/// authentication (tampered, reordered, replayed, truncated) is an error that closes the link.
/// The 16-bit length caps a record at 65535 bytes; the handler also caps its buffer.
struct LinkRecordDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    /// The most a link buffers of unread input: a socket read plus one partial record.
    static let maximumBufferSize = 4 << 20

    let cipher: LinkRecordCipher

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        // Find the complete records at the front of the buffer.
        var scan = buffer.readerIndex
        var records = 0
        var plaintextBytes = 0
        while let length = buffer.getInteger(at: scan, as: UInt16.self) {
            let recordLength = Int(length)
            guard recordLength >= LinkRecordCipher.tagLength else { throw LinkError.recordTooShort(length: recordLength) }
            guard buffer.writerIndex - scan - 2 >= recordLength else { break }
            records += 1
            plaintextBytes += recordLength - LinkRecordCipher.tagLength
            scan += 2 + recordLength
        }
        guard records > 0 else { return .needMoreData }

        var out = context.channel.allocator.buffer(capacity: plaintextBytes)
        try buffer.withUnsafeReadableBytes { raw in
            var at = 0
            for _ in 0..<records {
                let recordLength = Int(raw[at]) << 8 | Int(raw[at + 1])
                let plain = recordLength - LinkRecordCipher.tagLength
                let ciphertext = UnsafeRawBufferPointer(rebasing: raw[(at + 2)..<(at + 2 + plain)])
                let tag = UnsafeRawBufferPointer(rebasing: raw[(at + 2 + plain)..<(at + 2 + recordLength)])
                try cipher.begin()
                if plain > 0 {
                    _ = try out.writeWithUnsafeMutableBytes(minimumWritableBytes: plain) { dst in
                        try cipher.update(input: ciphertext, output: dst)
                        return plain
                    }
                }
                try cipher.finishOpen(tag: tag)
                at += 2 + recordLength
            }
        }
        buffer.moveReaderIndex(to: scan)
        if out.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(out)) }
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial record at EOF is dropped: the link is ending and it cannot be authenticated.
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
