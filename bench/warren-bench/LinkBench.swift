import ArgumentParser
import Foundation
import Gossip
import Link
import NIOCore
import NIOPosix
import Sodium

#if canImport(Glibc)
import Glibc
#endif

/// `warren-bench`: bench and test plumbing kept out of the user's `warren`. `link-serve` and
/// `link-send` move bulk data through one link between two processes, for the link benchmark
/// (`bench/link`) and the end-to-end checksum test (`LinkProcessTests`).
///
/// ```
/// warren-bench link-serve --port 7000            # prints "node <id> port <port>"
/// warren-bench link-send --port 7000 --expect <id> --bytes 1073741824 --hash
/// ```
/// `--direction up` (default) sends dialler → acceptor on a stream the dialler opens;
/// `--direction down` makes the acceptor open a stream and send acceptor → dialler (the path a
/// gateway uses towards a runner). With `--hash`, both ends hash the bytes with BLAKE2b and the
/// receiver compares the sender's digest; a mismatch exits non-zero.
@main
struct WarrenBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warren-bench",
        abstract: "Bench and test plumbing for Warren's links.",
        subcommands: [Serve.self, Send.self]
    )

    struct Options: ParsableArguments {
        @Option(help: "The mesh ID both ends bind into the handshake.")
        var mesh = "debug-mesh"

        @Option(help: "The link suite: aesgcm or chachapoly (default: AES-GCM when the CPU has AES instructions).")
        var suite: String?

        @Flag(help: "Raise glibc's mmap threshold to 8 MiB (and its trim threshold to 64 MiB) at start.")
        var mmapThreshold = false

        @Flag(help: "Use a fresh in-memory identity instead of the key in WARREN_HOME.")
        var ephemeral = false

        func identity() throws -> NodeIdentity {
            if ephemeral { return .generate() }
            return try NodeIdentity.loadOrCreate(directory: NodeIdentity.defaultDirectory(environment: ProcessInfo.processInfo.environment))
        }

        func linkConfiguration() throws -> LinkConfiguration {
            var configuration = LinkConfiguration()
            switch suite?.lowercased() {
            case nil: break
            case "aesgcm": configuration.suite = .aesGCM
            case "chachapoly": configuration.suite = .chaChaPoly
            case let other?: throw ValidationError("unknown suite \"\(other)\"; use aesgcm or chachapoly")
            }
            return configuration
        }

        func applyMallocSettings() {
            #if canImport(Glibc)
            if mmapThreshold {
                _ = glibcMallopt(glibcMmapThreshold, 8 << 20)
                // Setting the mmap threshold freezes the trim threshold at 128 KiB, and the heap
                // is then given back and faulted in again around every large buffer; raise it too.
                _ = glibcMallopt(glibcTrimThreshold, 64 << 20)
            }
            #endif
        }
    }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "link-serve", abstract: "Accept links and sink or source bulk streams.")

        @OptionGroup var options: Options
        @Option(help: "The address to listen on.") var host = "127.0.0.1"
        @Option(help: "The port to listen on (0 picks one).") var port = 0

        func run() async throws {
            options.applyMallocSettings()
            let identity = try options.identity()
            let endpointBox = EndpointBox()
            let endpoint = LinkEndpoint(identity: identity, meshID: options.mesh, configuration: try options.linkConfiguration(), acceptStream: { headers, stream in
                let request = BulkRequest(headers: headers)
                if let pull = request.pullBytes {
                    // Direction down: answer, then open a stream back to the dialler and send.
                    guard let link = endpointBox.endpoint?.links.first(where: { $0.peer == stream.peer && $0.direction == .inbound }) else { return 503 }
                    Task {
                        do {
                            _ = try await link.openStream(headers: [(BenchHeader.push, String(pull)), (BenchHeader.hash, request.hash ? "1" : "0")]) { channel in
                                channel.eventLoop.makeCompletedFuture {
                                    try channel.pipeline.syncOperations.addHandler(BulkSource(total: pull, hash: request.hash))
                                }
                            }
                        } catch {
                            FileHandle.standardError.write(Data("push stream failed: \(error)\n".utf8))
                        }
                    }
                    return 200
                }
                do {
                    try await stream.channel.pipeline.addHandler(BulkSink(hash: request.hash, reply: true, done: nil))
                    return 200
                } catch {
                    return 500
                }
            })
            endpointBox.endpoint = endpoint
            let bound = try await endpoint.listen(host: host, port: port)
            FileHandle.standardOutput.write(Data("node \(identity.id) port \(bound)\n".utf8))
            for await _ in endpoint.events {}
        }
    }

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "link-send", abstract: "Dial a link-serve and move bytes through one stream.")

        @OptionGroup var options: Options
        @Option(help: "The address of link-serve.") var host = "127.0.0.1"
        @Option(help: "The port of link-serve.") var port: Int
        @Option(help: "The node ID link-serve printed.") var expect: String
        @Option(help: "How many bytes to move.") var bytes = 1 << 30
        @Option(help: "up: this side sends; down: link-serve sends.") var direction = "up"
        @Flag(help: "Hash the bytes at both ends and compare.") var hash = false
        @Option(help: "Instead of moving bytes, complete this many handshakes and report the rate.") var handshakes = 0

        func validate() throws {
            guard NodeID(expect) != nil else { throw ValidationError("--expect must be a node ID (52 base32 characters)") }
            guard ["up", "down"].contains(direction) else { throw ValidationError("--direction must be up or down") }
            guard bytes >= 0 else { throw ValidationError("--bytes must not be negative") }
        }

        func run() async throws {
            options.applyMallocSettings()
            let expected = NodeID(expect)!
            let identity = try options.identity()
            let configuration = try options.linkConfiguration()

            if handshakes > 0 {
                let endpoint = LinkEndpoint(identity: identity, meshID: options.mesh, configuration: configuration)
                let clock = ContinuousClock()
                let start = clock.now
                for _ in 0..<handshakes {
                    let link = try await endpoint.dial(host: host, port: port, expecting: expected)
                    await link.close()
                }
                let seconds = (clock.now - start) / .seconds(1)
                print(String(format: "handshakes %d seconds %.3f per_second %.1f", handshakes, seconds, Double(handshakes) / seconds))
                await endpoint.shutdown()
                return
            }

            let received = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: BulkResult.self)
            let endpoint = LinkEndpoint(identity: identity, meshID: options.mesh, configuration: configuration, acceptStream: { headers, stream in
                let request = BulkRequest(headers: headers)
                guard request.pushBytes != nil else { return 404 }
                do {
                    try await stream.channel.pipeline.addHandler(BulkSink(hash: request.hash, reply: false, done: received))
                    return 200
                } catch {
                    return 500
                }
            })
            let link = try await endpoint.dial(host: host, port: port, expecting: expected)
            let clock = ContinuousClock()
            let start = clock.now
            let cpuStart = cpuSeconds()
            let result: BulkResult
            if direction == "up" {
                let reply = link.eventLoop.makePromise(of: BulkResult.self)
                _ = try await link.openStream(headers: [(BenchHeader.sink, String(bytes)), (BenchHeader.hash, hash ? "1" : "0")]) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(BulkSource(total: bytes, hash: hash, reply: reply))
                    }
                }
                result = try await reply.futureResult.get()
            } else {
                _ = try await link.openStream(headers: [(BenchHeader.pull, String(bytes)), (BenchHeader.hash, hash ? "1" : "0")])
                result = try await received.futureResult.get()
            }
            let seconds = (clock.now - start) / .seconds(1)
            let cpu = cpuSeconds() - cpuStart
            let gbits = Double(result.bytes) * 8 / seconds / 1e9
            print(String(format: "bytes %d seconds %.3f gbit_per_s %.2f dialler_cpu_s %.2f", result.bytes, seconds, gbits, cpu))
            if hash {
                print("digest \(result.digest) expected \(result.expectedDigest)")
            }
            await endpoint.shutdown()
            guard result.bytes == bytes else { throw ValidationError("moved \(result.bytes) bytes, expected \(bytes)") }
            if hash, result.digest != result.expectedDigest {
                throw ValidationError("checksum mismatch: received \(result.digest), sent \(result.expectedDigest)")
            }
        }
    }
}

#if canImport(Glibc)
// <malloc.h> is not part of Swift's Glibc module; these are its mallopt and M_MMAP_THRESHOLD.
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
private let glibcMmapThreshold: Int32 = -3
private let glibcTrimThreshold: Int32 = -1
#endif

/// CPU seconds (user + system) of this process so far.
private func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// The endpoint, set once after it is made, for the stream acceptor that needs it.
private final class EndpointBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: LinkEndpoint?
    var endpoint: LinkEndpoint? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

/// The headers of a bulk stream between `link-send` and `link-serve` (both ends are this file).
private enum BenchHeader {
    /// Bytes the dialler sends on this stream.
    static let sink = "warren-debug-sink"
    /// Bytes the dialler asks `link-serve` to send back on a stream it opens.
    static let pull = "warren-debug-pull"
    /// Bytes `link-serve` sends on this stream (its answer to a pull).
    static let push = "warren-debug-push"
    /// "1": both ends hash the bytes.
    static let hash = "warren-debug-hash"
}

private struct BulkRequest {
    var pullBytes: Int?
    var pushBytes: Int?
    var hash = false

    init(headers: [(String, String)]) {
        for (name, value) in headers {
            switch name {
            case BenchHeader.pull: pullBytes = Int(value)
            case BenchHeader.push: pushBytes = Int(value)
            case BenchHeader.hash: hash = value == "1"
            default: break
            }
        }
    }
}

struct BulkResult: Sendable {
    var bytes: Int
    var digest: String
    var expectedDigest: String
}

/// Deterministic bulk data: a 1 MiB pseudo-random block whose first 8 bytes carry the block number.
private enum BulkData {
    static let blockSize = 1 << 20
    static let block: [UInt8] = {
        var out: [UInt8] = []
        out.reserveCapacity(blockSize)
        var counter: UInt8 = 0
        while out.count < blockSize {
            out += BLAKE2b.hash([counter], outputLength: 64)
            counter &+= 1
        }
        return out
    }()

    static func chunk(_ index: Int, length: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: length)
        buffer.writeBytes(block[0..<length])
        _ = withUnsafeBytes(of: UInt64(index).bigEndian) { raw in
            buffer.setBytes(raw.prefix(min(8, length)), at: buffer.readerIndex)
        }
        return buffer
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}

/// Writes `total` bytes of `BulkData` while the stream is writable, then closes its output.
/// With `reply`, it also reads the sink's answer ("<bytes> <digest>") and completes `reply`.
private final class BulkSource: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let total: Int
    private var sent = 0
    private var index = 0
    private let hasher: BLAKE2b?
    private let reply: EventLoopPromise<BulkResult>?
    private var answer = ""
    private var finished = false

    init(total: Int, hash: Bool, reply: EventLoopPromise<BulkResult>? = nil) {
        self.total = total
        self.hasher = hash ? BLAKE2b(outputLength: 32) : nil
        self.reply = reply
    }

    private var opened = false

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if opened { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    private var expectedDigest = ""

    private var pumping = false

    private func pump(context: ChannelHandlerContext) {
        // A write or flush can change writability and call back in here: one pump at a time.
        guard !finished, !pumping else { return }
        pumping = true
        defer { pumping = false }
        repeat {
            while context.channel.isWritable && sent < total {
                let length = min(BulkData.blockSize, total - sent)
                let chunk = BulkData.chunk(index, length: length, allocator: context.channel.allocator)
                if let hasher { chunk.withUnsafeReadableBytes { hasher.update(Array($0)) } }
                index += 1
                sent += length
                context.write(wrapOutboundOut(chunk), promise: nil)
            }
            context.flush()
        } while context.channel.isWritable && sent < total
        if sent == total {
            finished = true
            expectedDigest = hasher.map { BulkData.hex($0.finalize()) } ?? ""
            context.close(mode: .output, promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        answer += String(buffer: unwrapInboundIn(data))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is LinkStreamOpened {
            opened = true
            pump(context: context)
        }
        if let event = event as? ChannelEvent, event == .inputClosed, let reply {
            let parts = answer.split(separator: " ").map(String.init)
            let bytes = parts.first.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? -1
            let digest = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespacesAndNewlines) : ""
            reply.succeed(BulkResult(bytes: bytes, digest: digest, expectedDigest: expectedDigest))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        reply?.fail(LinkError.closed)
        context.fireChannelInactive()
    }
}

/// Counts (and optionally hashes) what arrives; at END_STREAM either answers "<bytes> <digest>"
/// and closes its output (`reply`), or completes `done` with the count and both digests
/// (recomputing the sender's from `BulkData`).
private final class BulkSink: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var count = 0
    private let hasher: BLAKE2b?
    private let reply: Bool
    private let done: EventLoopPromise<BulkResult>?

    init(hash: Bool, reply: Bool, done: EventLoopPromise<BulkResult>?) {
        self.hasher = hash ? BLAKE2b(outputLength: 32) : nil
        self.reply = reply
        self.done = done
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        count += buffer.readableBytes
        if let hasher { buffer.withUnsafeReadableBytes { hasher.update(Array($0)) } }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            let digest = hasher.map { BulkData.hex($0.finalize()) } ?? ""
            if reply {
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "\(count) \(digest)\n")), promise: nil)
                context.close(mode: .output, promise: nil)
            }
            if let done {
                var expected = ""
                if hasher != nil {
                    let regenerated = BLAKE2b(outputLength: 32)
                    var index = 0, left = count
                    while left > 0 {
                        let length = min(BulkData.blockSize, left)
                        regenerated.update(Array(BulkData.chunk(index, length: length, allocator: ByteBufferAllocator()).readableBytesView))
                        index += 1
                        left -= length
                    }
                    expected = BulkData.hex(regenerated.finalize())
                }
                done.succeed(BulkResult(bytes: count, digest: digest, expectedDigest: expected))
                context.close(mode: .output, promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}
