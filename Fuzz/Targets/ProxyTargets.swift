import Foundation
@testable import MeshNode
@testable import Link
@testable import Trust
import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import Proxy

/// Feeds `bytes` (in reads of `readSize`) to NIOHTTP1's request decoder configured as `limits`,
/// and returns the parts it produced; stops at the first decoding error.
func decodeHTTPRequests(_ bytes: [UInt8], readSize: Int, limits: NIOHTTPDecoderLimitConfiguration) -> [HTTPServerRequestPart] {
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish() }
    let decoder = ByteToMessageHandler(
        HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .drop, limitConfiguration: limits))
    guard (try? channel.pipeline.syncOperations.addHandler(decoder)) != nil else { return [] }
    var parts: [HTTPServerRequestPart] = []
    for read in bytes.reads(of: readSize) {
        do { try channel.writeInbound(ByteBuffer(bytes: read)) } catch { break }
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) { parts.append(part) }
    }
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) { parts.append(part) }
    return parts
}

/// NIOHTTP1's request decoder over `bytes` in one read: the parts before the first error, and
/// whether there was one.
func decodeHTTPRequestsReportingError(_ bytes: [UInt8], limits: NIOHTTPDecoderLimitConfiguration) -> (parts: [HTTPServerRequestPart], failed: Bool) {
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish() }
    let decoder = ByteToMessageHandler(
        HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .drop, limitConfiguration: limits))
    guard (try? channel.pipeline.syncOperations.addHandler(decoder)) != nil else { return ([], true) }
    var parts: [HTTPServerRequestPart] = []
    var failed = false
    do { try channel.writeInbound(ByteBuffer(bytes: bytes)) } catch { failed = true }
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) { parts.append(part) }
    return (parts, failed)
}

enum FuzzRoutes {
    static let address = ListenAddress(host: "0.0.0.0", port: 443)
    static let hosts = ["app.example.com", "api.example.com", "::1", "127.0.0.1"]
    static let table: RoutingTable = {
        var table = RoutingTable()
        for (i, host) in hosts.enumerated() {
            try? table.addHost(host, route: Route(runID: "run-\(i)", upstream: "node", appPort: 8000 + i), on: address)
        }
        return table
    }()
}

extension FuzzTarget {
    /// Gateway HTTP/1.1: the request heads NIOHTTP1 decodes with the gateway's limits, then the
    /// routing decision on each Host header. A route is only ever one of the configured hosts.
    static let httpHead = FuzzTarget(name: "http-head", summary: "gateway HTTP request head + Host routing decision") { bytes throws(FuzzFailure) in
        var input = FuzzInput(bytes)
        let readSize = Int(input.byte()) + 1
        let configuration = ProxyConfiguration()
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = configuration.maxHeaderBytes
        limits.maxHeaderFieldSize = configuration.maxHeaderBytes
        for part in decodeHTTPRequests(input.rest, readSize: readSize, limits: limits) {
            guard case .head(let head) = part else { continue }
            let headerBytes = head.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
            try expect(headerBytes <= 2 * configuration.maxHeaderBytes, "a head of \(headerBytes) header bytes got past the \(configuration.maxHeaderBytes)-byte limit")
            guard let hostHeader = head.headers.first(name: "host") else { continue }
            let host = HostName.fromHostHeader(hostHeader)
            try expect(!host.utf8.contains { $0 >= 0x41 && $0 <= 0x5a }, "host \"\(host)\" is not lower case")
            switch FuzzRoutes.table.lookup(FuzzRoutes.address, host: host) {
            case .route(let route):
                let routed = FuzzRoutes.hosts[route.appPort - 8000]
                try expect(HostName.normalize(host) == routed, "Host \"\(hostHeader)\" was routed to \(routed)")
            case .unknownHost(let name):
                try expect(!FuzzRoutes.hosts.contains(name), "known host \(name) was not routed")
            case .noBinding:
                throw FuzzFailure("the host-routed binding disappeared")
            }
        }
    }

    /// HTTP/1.x on exclusive ports. The requests the framer forwards, cut into reads anywhere,
    /// are the same bytes; and NIO's llhttp decoder, reading what it forwards, finds the same
    /// requests (no smuggling: the app and the gateway agree where each request ends), each with
    /// one `X-Forwarded-For` that ends in the client's address. The same bytes as app responses:
    /// the follower's events do not depend on the reads either.
    static let exclusiveHTTP = FuzzTarget(name: "exclusive-http", summary: "ExclusiveRequestFramer + ExclusiveResponseFollower") { bytes throws(FuzzFailure) in
        var input = FuzzInput(bytes)
        let readSize = Int(input.byte()) + 1
        let data = input.rest
        func frame(_ reads: [ArraySlice<UInt8>]) -> (forwarded: [UInt8], requests: [ExclusiveRequestKind], refusal: HTTPResponseStatus?, holding: Bool) {
            var framer = ExclusiveRequestFramer(maxHeaderBytes: 4096, clientAddress: "192.0.2.1")
            var forwarded: [UInt8] = []
            var requests: [ExclusiveRequestKind] = []
            var refusal: HTTPResponseStatus?
            for read in reads {
                let output = framer.feed(ByteBuffer(bytes: read))
                for buffer in output.forward { forwarded += buffer.readableBytesView }
                requests += output.requests
                refusal = refusal ?? output.refusal?.status
            }
            return (forwarded, requests, refusal, framer.isHolding)
        }
        let whole = frame([data[...]])
        let split = frame(data.reads(of: readSize))
        try expect(whole.forwarded == split.forwarded, "reads of \(readSize) forwarded other bytes")
        try expect(whole.requests == split.requests && whole.refusal == split.refusal, "reads of \(readSize) framed other requests")

        // llhttp over what was forwarded: the same heads, in order, with the gateway's headers.
        // llhttp knows fewer methods than the token grammar allows (the gateway forwards any
        // token): where it stops at an error the app answers 400 and reads no further, so only
        // the requests before that point must agree.
        var heads: [HTTPRequestHead] = []
        let (parts, failed) = decodeHTTPRequestsReportingError(whole.forwarded, limits: NIOHTTPDecoderLimitConfiguration())
        for part in parts {
            if case .head(let head) = part { heads.append(head) }
        }
        if failed {
            try expect(heads.count <= whole.requests.count, "llhttp read \(heads.count) requests where the gateway forwarded \(whole.requests.count)")
        } else {
            try expect(heads.count == whole.requests.count, "llhttp read \(heads.count) requests where the gateway forwarded \(whole.requests.count)")
        }
        for (head, kind) in zip(heads, whole.requests) {
            try expect((head.method == .HEAD) == (kind == .head), "\(head.method) framed as \(kind)")
            let forwardedFor = head.headers["x-forwarded-for"]
            try expect(forwardedFor.count == 1 && forwardedFor[0].hasSuffix("192.0.2.1"), "X-Forwarded-For \(forwardedFor)")
            try expect(head.headers["x-forwarded-proto"] == ["http"], "X-Forwarded-Proto \(head.headers["x-forwarded-proto"])")
            try expect(head.headers["x-forwarded-host"].count <= 1, "X-Forwarded-Host \(head.headers["x-forwarded-host"])")
        }

        // The same bytes as the app's answers to three requests.
        func follow(_ reads: [ArraySlice<UInt8>]) -> [ExclusiveResponseFollower.Event] {
            var follower = ExclusiveResponseFollower()
            for kind in [ExclusiveRequestKind.plain, .head, .upgrade] { follower.requestForwarded(kind, closes: kind == .upgrade) }
            return reads.flatMap { follower.follow(ByteBuffer(bytes: $0)) }
        }
        let events = follow([data[...]])
        try expect(events == follow(data.reads(of: readSize)), "reads of \(readSize) followed the answers otherwise")
        try expect(events.filter { $0 == .lost }.count <= 1, "lost twice: \(events)")
    }

    /// The TLS ClientHello reader on gateway ports: a complete answer never changes as more bytes
    /// arrive, a name is printable lower-case ASCII, and the limit is kept.
    static let clientHello = FuzzTarget(name: "client-hello", summary: "ClientHello.peek (SNI)") { bytes throws(FuzzFailure) in
        var input = FuzzInput(bytes)
        let split = Int(input.byte())
        let data = input.rest
        let limit = 16 * 1024
        let full: ClientHelloPeek?
        do throws(ProxyError) { full = try ClientHello.peek(ByteBuffer(bytes: data), limit: limit) } catch {
            full = nil
            if case .routingDataTooLarge = error { try expect(data.count >= limit, "too large at \(data.count) bytes") }
        }
        if case .complete(let name?) = full {
            try expect(!name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && !($0 >= 0x41 && $0 <= 0x5a) }, "server name \"\(name)\"")
        }
        if case .needMoreData = full { try expect(data.count < limit, "asked for more past the limit") }
        let cut = data.isEmpty ? 0 : split * data.count / 256
        if case .complete(let name)? = try? ClientHello.peek(ByteBuffer(bytes: data[..<cut]), limit: limit) {
            try expect(full == .complete(serverName: name), "a prefix said \(String(describing: name)), the whole \(String(describing: full))")
        }
    }

    /// The local API: request heads and bodies as the server reads them, the request the router
    /// gets, and the JSON bodies of requests that carry one.
    static let localAPI = FuzzTarget(name: "local-api", summary: "local API request head + APIRequest + JSON bodies") { bytes throws(FuzzFailure) in
        var input = FuzzInput(bytes)
        let readSize = Int(input.byte()) + 1
        var head: HTTPRequestHead?
        var body = ByteBuffer()
        for part in decodeHTTPRequests(input.rest, readSize: readSize, limits: NIOHTTPDecoderLimitConfiguration()) {
            switch part {
            case .head(let h): head = h; body.clear()
            case .body(var chunk): body.writeBuffer(&chunk)
            case .end:
                guard let h = head else { continue }
                let request = LocalAPIServer.makeRequest(h, body: body)
                try expect(!request.path.contains("?"), "path \(request.path) kept its query")
                try expect(request.body.count == body.readableBytes, "the body changed size")
                _ = try? request.decode(RunRequest.self)
                _ = try? request.decode(SecretAddRequest.self)
                _ = try? request.parameter("name")
                head = nil
            }
        }
    }

    /// Service YAML (dstack's format) through ServiceConfigurationParser: every refusal points at
    /// a line and column of the text and says something.
    static let serviceYAML = FuzzTarget(name: "service-yaml", summary: "ServiceConfigurationParser.parse(yaml:)") { bytes throws(FuzzFailure) in
        let text = String(decoding: bytes, as: UTF8.self)
        let parser = ServiceConfigurationParser(secrets: SecretValues(project: "fuzz", values: ["TOKEN": "s3cret"]), environment: ["HOME": "/home/fuzz"])
        do throws(ConfigurationError) {
            _ = try parser.parse(yaml: text, file: "fuzz.yml")
        } catch {
            // Lines as YAML counts them: CR, LF and CRLF each end one (and NEL, LS, PS). An error
            // at the end of the text may be reported on the line after the last break.
            var lines = 1
            var previous: Unicode.Scalar?
            for scalar in text.unicodeScalars {
                if scalar == "\n" && previous == "\r" {
                } else if ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"].contains(scalar) {
                    lines += 1
                }
                previous = scalar
            }
            for issue in error.issues {
                try expect(issue.line >= 1 && issue.line <= lines + 1 && issue.column >= 1, "issue at \(issue.line):\(issue.column) of \(lines) lines: \(issue.message)")
                try expect(!issue.message.isEmpty, "an issue without a message")
            }
        }
    }
}
