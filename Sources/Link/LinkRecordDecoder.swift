internal import NIOCore

/// Opens transport records: reads `length ‖ ciphertext ‖ tag` frames and passes the plaintext on.
/// A record that fails authentication (tampered, reordered, replayed, truncated) is an error that
/// closes the link. The 16-bit length caps a record at 65535 bytes.
///
/// Ciphertext is decrypted straight from each socket read, never gathered first: a record split
/// across reads is decrypted piece by piece as its bytes arrive (AES-GCM and ChaCha20-Poly1305 are
/// stream modes), and its plaintext is held back until its tag has been checked. So each byte is
/// copied once, by the cipher. (A `ByteToMessageDecoder` would append every read to the partial
/// record left from the one before: one more copy of nearly every byte.) The plaintext of all the
/// records a read completes goes on as one buffer.
final class LinkRecordDecoder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let cipher: LinkRecordCipher
    /// Extra room given to the buffer of a record split across reads, so that the records the
    /// next read completes can follow its plaintext without a reallocation.
    private let readSize: Int

    /// The first byte of a length split across reads.
    private var lengthHigh: UInt8?
    /// The record being opened across reads, if any.
    private var partial: Partial?
    private var failed = false

    private struct Partial {
        /// Plaintext decrypted so far (not yet authenticated), after `authenticated` bytes of
        /// plaintext of earlier records that are ready to go on.
        var plaintext: ByteBuffer
        /// Ciphertext bytes still to come.
        var ciphertextLeft: Int
        /// The tag bytes received so far.
        var tag: [UInt8]
    }

    /// - Parameter readSize: the largest socket read (sizes the buffer of split records).
    init(cipher: LinkRecordCipher, readSize: Int = 256 << 10) {
        self.cipher = cipher
        self.readSize = readSize
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var input = unwrapInboundIn(data)
        do {
            if let out = try open(&input, allocator: context.channel.allocator), out.readableBytes > 0 {
                context.fireChannelRead(wrapInboundOut(out))
            }
        } catch {
            failed = true
            context.fireErrorCaught(error)
        }
    }

    /// Opens what `input` holds (consuming all of it); returns the plaintext of the records it
    /// completed (nil: none).
    func open(_ input: inout ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer? {
        var out: ByteBuffer?
        while input.readableBytes > 0 {
            if partial != nil {
                guard try continuePartial(&input) else { break }
                if out == nil {
                    out = partial!.plaintext
                } else {
                    out!.writeImmutableBuffer(partial!.plaintext)
                }
                partial = nil
                continue
            }
            if lengthHigh == nil {
                try openCompleteRecords(&input, into: &out, allocator: allocator)
            }
            if input.readableBytes > 0 { try startPartial(&input, allocator: allocator) }
        }
        return out
    }

    /// Decrypts the complete records at the front of `input` into `out`.
    private func openCompleteRecords(_ input: inout ByteBuffer, into out: inout ByteBuffer?, allocator: ByteBufferAllocator) throws {
        var scan = input.readerIndex
        var records = 0
        var plaintextBytes = 0
        while let length = input.getInteger(at: scan, as: UInt16.self) {
            let recordLength = try Self.check(length)
            guard input.writerIndex - scan - 2 >= recordLength else { break }
            records += 1
            plaintextBytes += recordLength - LinkRecordCipher.tagLength
            scan += 2 + recordLength
        }
        guard records > 0 else { return }
        if out == nil { out = allocator.buffer(capacity: plaintextBytes) }
        try input.withUnsafeReadableBytes { raw in
            var at = 0
            for _ in 0..<records {
                let recordLength = Int(raw[at]) << 8 | Int(raw[at + 1])
                let plain = recordLength - LinkRecordCipher.tagLength
                try cipher.begin()
                try decrypt(UnsafeRawBufferPointer(rebasing: raw[(at + 2)..<(at + 2 + plain)]), into: &out!)
                try cipher.finishOpen(tag: UnsafeRawBufferPointer(rebasing: raw[(at + 2 + plain)..<(at + 2 + recordLength)]))
                at += 2 + recordLength
            }
        }
        input.moveReaderIndex(to: scan)
    }

    /// A record length from the wire, checked.
    private static func check(_ length: UInt16) throws -> Int {
        let recordLength = Int(length)
        guard recordLength >= LinkRecordCipher.tagLength else { throw LinkError.recordTooShort(length: recordLength) }
        return recordLength
    }

    /// Reads the length of the record that starts `input` (or its first byte) and starts opening it.
    private func startPartial(_ input: inout ByteBuffer, allocator: ByteBufferAllocator) throws {
        let length: UInt16
        if let high = lengthHigh {
            length = UInt16(high) << 8 | UInt16(input.readInteger(as: UInt8.self)!)
            lengthHigh = nil
        } else if input.readableBytes == 1 {
            lengthHigh = input.readInteger(as: UInt8.self)!
            return
        } else {
            length = input.readInteger(as: UInt16.self)!
        }
        let recordLength = try Self.check(length)
        let plain = recordLength - LinkRecordCipher.tagLength
        try cipher.begin()
        partial = Partial(plaintext: allocator.buffer(capacity: plain + readSize), ciphertextLeft: plain, tag: [])
        partial!.tag.reserveCapacity(LinkRecordCipher.tagLength)
    }

    /// Feeds `input` to the record in progress; true once it is complete and authenticated.
    private func continuePartial(_ input: inout ByteBuffer) throws -> Bool {
        let take = min(partial!.ciphertextLeft, input.readableBytes)
        if take > 0 {
            try input.readWithUnsafeReadableBytes { raw in
                try decrypt(UnsafeRawBufferPointer(rebasing: raw[0..<take]), into: &partial!.plaintext)
                return take
            }
            partial!.ciphertextLeft -= take
        }
        let tagTake = min(LinkRecordCipher.tagLength - partial!.tag.count, input.readableBytes)
        partial!.tag += input.readBytes(length: tagTake)!
        guard partial!.ciphertextLeft == 0, partial!.tag.count == LinkRecordCipher.tagLength else { return false }
        try partial!.tag.withUnsafeBytes { try cipher.finishOpen(tag: $0) }
        return true
    }

    private func decrypt(_ ciphertext: UnsafeRawBufferPointer, into out: inout ByteBuffer) throws {
        guard ciphertext.count > 0 else { return }
        _ = try out.writeWithUnsafeMutableBytes(minimumWritableBytes: ciphertext.count) { dst in
            try cipher.update(input: ciphertext, output: dst)
            return ciphertext.count
        }
    }
}

@available(*, unavailable)
extension LinkRecordDecoder: Sendable {}
