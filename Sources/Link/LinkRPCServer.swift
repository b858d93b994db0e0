package import Gossip
internal import NIOConcurrencyHelpers
package import NIOCore

/// The acceptor's side of `LinkRPC`: answers the calls peers make on links, each link's calls in
/// child tasks of that link's own serve loop, and every loop a child task of `run`.
///
/// Closing a link ends its loop and cancels its calls still running, so no handler outlives the
/// link it answers on; ending `run` (its task cancelled, or `finish`) ends them all. A link holds
/// at most `maxCallsPerLink` calls at once (reading the request, in the handler, or writing the
/// answer): a call beyond that is refused with 503, counted in `refusedCalls` and reported to
/// `refused`, so a peer that floods calls costs a bounded number of tasks and request buffers.
///
/// ```swift
/// let calls = LinkRPCServer()
/// // in the endpoint's LinkStreamAcceptor:
/// return await calls.serve(stream) { request in answer(request) }
/// // in the service group:
/// await calls.run()
/// ```
package final class LinkRPCServer: Sendable {
    /// Far above what gossip and lease calls keep in flight on one link (a few at once), and low
    /// enough that a flood holds little: each call buffers at most `LinkRPC.maxBytes` of request.
    package static let defaultMaxCallsPerLink = 128

    package let maxCallsPerLink: Int
    private let refused: @Sendable (_ peer: NodeID) -> Void
    private let state = NIOLockedValueBox(State())
    private let loops: AsyncStream<LinkCalls>
    private let loopsContinuation: AsyncStream<LinkCalls>.Continuation

    private struct State {
        var links: [ObjectIdentifier: LinkCalls] = [:]
        /// Calls each link's queue holds (read, handled or answered), by queue.
        var held: [ObjectIdentifier: Int] = [:]
        var finished = false
        var refusedCalls = 0
    }

    /// One link's queue of calls.
    private final class LinkCalls: Sendable {
        let channel: any Channel
        let calls: AsyncStream<Call>
        let continuation: AsyncStream<Call>.Continuation

        init(channel: any Channel) {
            self.channel = channel
            (calls, continuation) = AsyncStream.makeStream(of: Call.self)
        }
    }

    private struct Call: Sendable {
        let stream: LinkStream
        let request: EventLoopFuture<[UInt8]>
        let handler: @Sendable ([UInt8]) async -> [UInt8]
    }

    /// - Parameter refused: told the peer of each call refused over the bound (for a metric).
    package init(maxCallsPerLink: Int = LinkRPCServer.defaultMaxCallsPerLink, refused: @escaping @Sendable (_ peer: NodeID) -> Void = { _ in }) {
        precondition(maxCallsPerLink > 0, "a link must be allowed at least one call")
        self.maxCallsPerLink = maxCallsPerLink
        self.refused = refused
        (loops, loopsContinuation) = AsyncStream.makeStream(of: LinkCalls.self)
    }

    /// Calls refused so far because their link already held `maxCallsPerLink`.
    package var refusedCalls: Int { state.withLockedValue { $0.refusedCalls } }

    /// Calls held now on the link of `stream` (for tests).
    package func heldCalls(on stream: LinkStream) -> Int {
        state.withLockedValue { state in
            state.links[ObjectIdentifier(stream.linkChannel)].map { state.held[ObjectIdentifier($0), default: 0] } ?? 0
        }
    }

    /// Takes the call on an accepted stream: `handler` answers its request in a child task of the
    /// stream's link's loop. Returns the status for the stream's acceptor to answer: 200 when the
    /// call is taken, 503 when its link holds `maxCallsPerLink` calls or the server has finished,
    /// 500 when the stream (or its link) closed before the call could be taken.
    package func serve(_ stream: LinkStream, handler: @escaping @Sendable ([UInt8]) async -> [UInt8]) async -> Int {
        let link = stream.linkChannel
        let key = ObjectIdentifier(link)
        enum Admission { case refused, finished, taken(LinkCalls, new: Bool) }
        let admission = state.withLockedValue { state -> Admission in
            guard !state.finished else { return .finished }
            let calls: LinkCalls
            var new = false
            if let known = state.links[key] {
                calls = known
            } else {
                calls = LinkCalls(channel: link)
                state.links[key] = calls
                new = true
            }
            guard state.held[ObjectIdentifier(calls), default: 0] < maxCallsPerLink else {
                state.refusedCalls += 1
                return .refused
            }
            state.held[ObjectIdentifier(calls), default: 0] += 1
            return .taken(calls, new: new)
        }
        let calls: LinkCalls
        switch admission {
        case .finished: return 503
        case .refused:
            refused(stream.peer)
            return 503
        case .taken(let taken, let new):
            calls = taken
            if new {
                loopsContinuation.yield(calls)
                // Ends the link's loop, which cancels its calls; the entry goes with it.
                link.closeFuture.whenComplete { [self] _ in
                    state.withLockedValue { state in
                        if state.links[key] === calls { state.links[key] = nil }
                    }
                    calls.continuation.finish()
                }
            }
        }

        let collected = stream.channel.eventLoop.makePromise(of: [UInt8].self)
        do {
            let channel = stream.channel
            try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.addHandler(LinkRPC.Collector(limit: LinkRPC.maxBytes, done: collected))
            }.get()
        } catch {
            // The stream (or its link) closed while the acceptor decided: the Collector never
            // joined the pipeline, and nothing else would complete `collected`.
            collected.fail(error)
            release(calls)
            return 500
        }
        switch calls.continuation.yield(Call(stream: stream, request: collected.futureResult, handler: handler)) {
        case .enqueued:
            return 200
        default:
            // The link closed, or the server finished, since the call was counted in.
            release(calls)
            stream.channel.close(promise: nil)
            return 500
        }
    }

    /// Serves the links' calls until cancelled or `finish`ed: each link's loop is a child task,
    /// and each call a child task of its link's loop.
    package func run() async {
        await withDiscardingTaskGroup { group in
            for await calls in loops {
                group.addTask { await self.serveLink(calls) }
            }
        }
        // Cancelled: no call may be left waiting in a queue nobody reads.
        finish()
    }

    /// Refuses new calls (503) and lets `run` return once the calls taken have been answered.
    package func finish() {
        let links = state.withLockedValue { state in
            state.finished = true
            return Array(state.links.values)
        }
        loopsContinuation.finish()
        for calls in links { calls.continuation.finish() }
    }

    /// One link's loop: its calls run as child tasks until the link closes, which cancels them.
    private func serveLink(_ calls: LinkCalls) async {
        await withDiscardingTaskGroup { group in
            for await call in calls.calls {
                group.addTask {
                    await Self.answer(call)
                    self.release(calls)
                }
            }
            // The queue ended: the link closed (its calls' streams are gone, so they are cut
            // short) or the server finished (the calls taken are answered).
            if !calls.channel.isActive { group.cancelAll() }
        }
    }

    private func release(_ calls: LinkCalls) {
        state.withLockedValue { state in
            let key = ObjectIdentifier(calls)
            let left = state.held[key, default: 1] - 1
            state.held[key] = left > 0 ? left : nil
        }
    }

    private static func answer(_ call: Call) async {
        let channel = call.stream.channel
        guard let request = try? await call.request.get() else { return }
        let answer = await call.handler(request)
        guard !Task.isCancelled else {
            channel.close(promise: nil)
            return
        }
        // An empty answer (gossip's) is the half-close alone: see `LinkRPC.call`.
        if !answer.isEmpty {
            var buffer = channel.allocator.buffer(capacity: answer.count)
            buffer.writeBytes(answer)
            try? await channel.writeAndFlush(buffer)
        }
        try? await channel.close(mode: .output)
    }
}
