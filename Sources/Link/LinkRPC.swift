import Foundation
package import NIOCore

/// One request and one answer over a stream of a link: the opener sends a body and half-closes,
/// the acceptor reads it to the end, answers and half-closes. For control calls between nodes
/// (leases, gossip push-pull); proxied connections use the stream's bytes directly. The acceptor's
/// side is `LinkRPCServer`.
package enum LinkRPC {
    /// The largest request or answer body (gossip push-pull of a large mesh is the biggest).
    static let maxBytes = 16 << 20

    struct TooLarge: Error {}
    struct Closed: Error {}

    /// Calls `path` on the peer of `link` with `body`; returns the answer's body.
    package static func call(_ link: Link, path: String, body: [UInt8], timeout: Duration = .seconds(10)) async throws -> [UInt8] {
        let collected = link.eventLoop.makePromise(of: [UInt8].self)
        let stream: LinkStream
        do {
            stream = try await link.openStream(headers: [(":path", path)]) { channel in
                channel.pipeline.addHandler(Collector(limit: maxBytes, done: collected))
            }
        } catch {
            collected.fail(error)
            throw error
        }
        // No write for an empty body: an empty DATA frame counts against NIOHTTP2's DoS heuristic
        // (one in a row tolerated), and a burst of them on one link closes the link.
        do {
            if !body.isEmpty {
                var buffer = stream.channel.allocator.buffer(capacity: body.count)
                buffer.writeBytes(body)
                try await stream.channel.writeAndFlush(buffer)
            }
            try await stream.channel.close(mode: .output)
        } catch {
            // The Collector fails `collected` as the stream goes.
            stream.channel.close(promise: nil)
            throw error
        }
        return try await withThrowingTaskGroup(of: [UInt8].self) { group in
            group.addTask { try await collected.futureResult.get() }
            group.addTask {
                // Cancelled (the caller gave up, or the answer came): the stream is reset either
                // way, which also ends the first task if it still waits.
                try? await Task.sleep(for: timeout)
                stream.channel.close(promise: nil)
                throw Closed()
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// Gathers a stream's bytes until the peer half-closes, within a bound.
    final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer

        private var bytes: [UInt8] = []
        private let limit: Int
        private let done: EventLoopPromise<[UInt8]>
        private var finished = false

        init(limit: Int, done: EventLoopPromise<[UInt8]>) {
            self.limit = limit
            self.done = done
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !finished else { return }
            var buffer = unwrapInboundIn(data)
            guard bytes.count + buffer.readableBytes <= limit else {
                finish(.failure(TooLarge()))
                context.close(promise: nil)
                return
            }
            bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case ChannelEvent.inputClosed = event { finish(.success(bytes)) }
            context.fireUserInboundEventTriggered(event)
        }

        func channelInactive(context: ChannelHandlerContext) {
            finish(.failure(Closed()))
            context.fireChannelInactive()
        }

        /// A handler added to a stream that had already closed sees no `channelInactive`, only
        /// its removal as the pipeline is torn down.
        func handlerRemoved(context: ChannelHandlerContext) {
            finish(.failure(Closed()))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            finish(.failure(error))
            context.close(promise: nil)
        }

        private func finish(_ result: Result<[UInt8], any Error>) {
            guard !finished else { return }
            finished = true
            done.completeWith(result)
        }
    }
}

@available(*, unavailable)
extension LinkRPC.Collector: Sendable {}
