internal import NIOCore

/// Seals what the HTTP/2 handler writes into transport records: writes are held until a flush,
/// and the flushes of one event loop round are sealed together into as few records as possible
/// (up to 65519 bytes of plaintext each) in one buffer, encrypting straight from the written
/// buffers into it.
final class LinkRecordEncoder: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let cipher: LinkRecordCipher
    private var pending: [ByteBuffer] = []
    private var pendingBytes = 0
    private var promises: [EventLoopPromise<Void>] = []
    private var flushScheduled = false

    init(cipher: LinkRecordCipher) {
        self.cipher = cipher
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        if buffer.readableBytes > 0 {
            pending.append(buffer)
            pendingBytes += buffer.readableBytes
        }
        if let promise { promises.append(promise) }
    }

    func flush(context: ChannelHandlerContext) {
        guard !pending.isEmpty || !promises.isEmpty else {
            context.flush()
            return
        }
        // Streams flush one by one (each public connection that had something to say); sealing
        // at the end of the event loop's current round makes one record and one system call of
        // all of them.
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (encoder, context) = loopBound.value
            encoder.flushScheduled = false
            encoder.sealPending(context: context)
        }
    }

    private func sealPending(context: ChannelHandlerContext) {
        guard !pending.isEmpty || !promises.isEmpty else { return }
        let buffers = pending, total = pendingBytes, waiting = promises
        pending = []
        pendingBytes = 0
        promises = []
        let out: ByteBuffer
        do {
            out = try seal(buffers, total: total, allocator: context.channel.allocator)
        } catch {
            for promise in waiting { promise.fail(error) }
            context.fireErrorCaught(error)
            return
        }
        if waiting.isEmpty {
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        } else {
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenComplete { result in
                for waiter in waiting { waiter.completeWith(result) }
            }
            context.writeAndFlush(wrapOutboundOut(out), promise: promise)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // What was flushed goes out before the close (a GOAWAY, the last bytes of a stream).
        if flushScheduled {
            flushScheduled = false
            sealPending(context: context)
        }
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        for promise in promises { promise.fail(LinkError.closed) }
        promises = []
        pending = []
        pendingBytes = 0
    }

    /// `buffers` (holding `total` bytes) as consecutive records.
    func seal(_ buffers: [ByteBuffer], total: Int, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        let maxPlain = LinkRecordCipher.maxPlaintextLength
        let records = (total + maxPlain - 1) / maxPlain
        var out = allocator.buffer(capacity: total + records * (2 + LinkRecordCipher.tagLength))
        var index = 0
        var offset = 0  // into buffers[index]'s readable bytes
        var remaining = total
        while remaining > 0 {
            let length = min(remaining, maxPlain)
            out.writeInteger(UInt16(length + LinkRecordCipher.tagLength))
            try cipher.begin()
            var left = length
            while left > 0 {
                let source = buffers[index]
                let take = min(left, source.readableBytes - offset)
                try source.withUnsafeReadableBytes { src in
                    let input = UnsafeRawBufferPointer(rebasing: src[offset..<(offset + take)])
                    _ = try out.writeWithUnsafeMutableBytes(minimumWritableBytes: take) { dst in
                        try cipher.update(input: input, output: dst)
                        return take
                    }
                }
                offset += take
                left -= take
                if offset == source.readableBytes {
                    index += 1
                    offset = 0
                }
            }
            _ = try out.writeWithUnsafeMutableBytes(minimumWritableBytes: LinkRecordCipher.tagLength) { dst in
                try cipher.finishSeal(tag: UnsafeMutableRawBufferPointer(rebasing: dst[0..<LinkRecordCipher.tagLength]))
                return LinkRecordCipher.tagLength
            }
            remaining -= length
        }
        return out
    }
}

@available(*, unavailable)
extension LinkRecordEncoder: Sendable {}
