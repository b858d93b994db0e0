// HTTP/1.x on an exclusive port at nearly the cost of a splice: requests are framed byte by byte so
// that each head gets the forwarding headers; responses pass untouched and are only followed, to
// know when an upgrade was accepted and when the gateway may put an answer of its own.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOHTTP1

/// Bytes of the HTTP/1.x grammar (RFC 9110 §5.6.2, RFC 9112).
enum HTTP1Bytes {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")
    static let semicolon = UInt8(ascii: ";")

    /// A `tchar` of a token (method, field name). A table: it is asked for every byte of every
    /// method and header name.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        tokenBytes[Int(byte)]
    }

    private static let tokenBytes: [Bool] = (0...255).map { value in
        let byte = UInt8(value)
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// A control byte other than HTAB: never allowed in a field value or a chunk extension.
    static func isForbiddenControl(_ byte: UInt8) -> Bool {
        (byte < 0x20 && byte != tab) || byte == 0x7F
    }

    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
    }

    /// Whether `bytes` is `name` (lowercase ASCII) in any case.
    static func isName(_ bytes: UnsafeRawBufferPointer.SubSequence, _ name: StaticString) -> Bool {
        guard bytes.count == name.utf8CodeUnitCount else { return false }
        return name.withUTF8Buffer { expected in
            var index = bytes.startIndex
            for byte in expected {
                guard lowercased(bytes[index]) == byte else { return false }
                index += 1
            }
            return true
        }
    }

    /// Where the first LF at or after `from` is in `bytes`. By `memchr`: it runs over every byte
    /// of every head, both ways.
    static func firstLF(in bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard from < bytes.count, let base = bytes.baseAddress else { return nil }
        guard let found = memchr(base + from, Int32(lf), bytes.count - from) else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }

    /// `bytes` without leading and trailing SP and HTAB.
    static func trimmed(_ bytes: UnsafeRawBufferPointer.SubSequence) -> UnsafeRawBufferPointer.SubSequence {
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, bytes[start] == space || bytes[start] == tab { start += 1 }
        while end > start, bytes[end - 1] == space || bytes[end - 1] == tab { end -= 1 }
        return bytes[start..<end]
    }

    /// A `Content-Length` value: one decimal number, or a list of the same number repeated
    /// (RFC 9112 §6.3). Nil when it is anything else.
    static func contentLength(_ value: UnsafeRawBufferPointer.SubSequence) -> Int? {
        var result: Int?
        var start = value.startIndex
        while true {
            let end = value[start...].firstIndex(of: comma) ?? value.endIndex
            let digits = trimmed(value[start..<end])
            guard !digits.isEmpty, digits.count <= 18 else { return nil }
            var number = 0
            for byte in digits {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                number = number * 10 + Int(byte - UInt8(ascii: "0"))
            }
            if let result, result != number { return nil }
            result = number
            guard end < value.endIndex else { return result }
            start = end + 1
        }
    }

    /// The codings of a `Transfer-Encoding` value, appended to `codings` as "chunked" or "other".
    static func transferCodings(_ value: UnsafeRawBufferPointer.SubSequence, into codings: inout [Bool]) {
        for element in value.split(separator: comma, omittingEmptySubsequences: true) {
            let coding = trimmed(element)
            guard !coding.isEmpty else { continue }
            codings.append(isName(coding, "chunked"))
        }
    }
}

/// Follows a chunked body (RFC 9112 §7.1) to its end without decoding it: chunk sizes, extensions,
/// data, the last chunk and the trailer section. Extension and trailer lines are bounded.
struct ChunkedBodyScanner {
    private enum State {
        case size, afterSize, chunkExtension, sizeLF, data, dataCR, dataLF, trailerStart, trailer, trailerLF, lastLF
    }

    private var state = State.size
    private var size = 0
    private var digits = 0
    private var remaining = 0
    private var lineBytes = 0
    /// Set when the body's last byte was scanned (the scanner is ready for the next body).
    private var ended = false
    private let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    enum Result: Equatable {
        /// `consumed` bytes belong to the body; `ended` when they include its last byte.
        case body(consumed: Int, ended: Bool)
        /// The byte after the first `consumed` breaks the framing.
        case malformed(String, consumed: Int)
    }

    mutating func scan(_ bytes: UnsafeRawBufferPointer) -> Result {
        var index = 0
        switch self.scan(bytes, from: &index) {
        case .some(let reason): return .malformed(reason, consumed: max(0, index - 1))
        case .none: return .body(consumed: index, ended: self.ended)
        }
    }

    /// Scans from `index` until the body ends or `bytes` do; the reason when a byte breaks the
    /// framing (`index` is then just past it).
    private mutating func scan(_ bytes: UnsafeRawBufferPointer, from index: inout Int) -> String? {
        self.ended = false
        let count = bytes.count
        while index < count {
            if self.state == .data {
                let take = min(self.remaining, count - index)
                index += take
                self.remaining -= take
                if self.remaining == 0 { self.state = .dataCR }
                continue
            }
            let byte = bytes[index]
            index += 1
            switch self.state {
            case .size:
                if let value = Self.hexValue(byte) {
                    guard self.digits < 15 else { return "chunk size too large" }
                    self.size = self.size * 16 + value
                    self.digits += 1
                    continue
                }
                guard self.digits > 0 else { return "chunk size expected" }
                switch byte {
                case HTTP1Bytes.cr: self.state = .sizeLF
                case HTTP1Bytes.space, HTTP1Bytes.tab: self.state = .afterSize
                case HTTP1Bytes.semicolon: self.startLine(.chunkExtension)
                default: return "invalid byte after a chunk size"
                }
            case .afterSize:
                switch byte {
                case HTTP1Bytes.space, HTTP1Bytes.tab: break
                case HTTP1Bytes.semicolon: self.startLine(.chunkExtension)
                case HTTP1Bytes.cr: self.state = .sizeLF
                default: return "invalid byte after a chunk size"
                }
            case .chunkExtension:
                if byte == HTTP1Bytes.cr {
                    self.state = .sizeLF
                } else if HTTP1Bytes.isForbiddenControl(byte) {
                    return "control byte in a chunk extension"
                } else if !self.countLineByte() {
                    return "chunk extension longer than \(self.limit) bytes"
                }
            case .sizeLF:
                guard byte == HTTP1Bytes.lf else { return "chunk size line not ended by CRLF" }
                if self.size == 0 {
                    self.startLine(.trailerStart)
                } else {
                    self.remaining = self.size
                    self.state = .data
                }
                self.size = 0
                self.digits = 0
            case .dataCR:
                guard byte == HTTP1Bytes.cr else { return "chunk data not followed by CRLF" }
                self.state = .dataLF
            case .dataLF:
                guard byte == HTTP1Bytes.lf else { return "chunk data not followed by CRLF" }
                self.state = .size
            case .trailerStart:
                if byte == HTTP1Bytes.cr {
                    self.state = .lastLF
                } else if byte == HTTP1Bytes.space || byte == HTTP1Bytes.tab || HTTP1Bytes.isForbiddenControl(byte) {
                    return "invalid trailer field line"
                } else {
                    self.state = .trailer
                    guard self.countLineByte() else { return "trailer section longer than \(self.limit) bytes" }
                }
            case .trailer:
                if byte == HTTP1Bytes.cr {
                    self.state = .trailerLF
                } else if HTTP1Bytes.isForbiddenControl(byte) {
                    return "control byte in a trailer field"
                } else if !self.countLineByte() {
                    return "trailer section longer than \(self.limit) bytes"
                }
            case .trailerLF:
                guard byte == HTTP1Bytes.lf else { return "trailer field not ended by CRLF" }
                self.state = .trailerStart
            case .lastLF:
                guard byte == HTTP1Bytes.lf else { return "chunked body not ended by CRLF" }
                self.state = .size
                self.ended = true
                return nil
            case .data:
                preconditionFailure("handled above")
            }
        }
        return nil
    }

    /// Starts a chunk extension, or the trailer section: each is bounded on its own.
    private mutating func startLine(_ state: State) {
        self.state = state
        self.lineBytes = 0
    }

    /// Counts a byte of an extension or of the trailer section; false past the limit.
    private mutating func countLineByte() -> Bool {
        self.lineBytes += 1
        return self.lineBytes <= self.limit
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A")) + 10
        default: nil
        }
    }
}

/// What the app's answer to a forwarded request must be read with.
enum ExclusiveRequestKind: Equatable {
    case plain
    /// A HEAD request: its response has no body, whatever its headers say.
    case head
    /// A request with `Upgrade`: a 101 turns the connection into bytes.
    case upgrade
}

/// The client's side of HTTP on an exclusive port, as a value: frames each request (head, then
/// its body by `Content-Length` or chunked coding), rewrites the head with `X-Forwarded-For`,
/// `-Proto` and `-Host`, and passes bodies through as they are.
///
/// It is strict where a lenient reading could make the gateway and the app see different
/// messages (request smuggling): a bare LF or CR, whitespace before a colon, a folded line, both
/// `Content-Length` and `Transfer-Encoding`, differing lengths, or a transfer coding other than a
/// final `chunked` get `400`, and nothing of that request reaches the app.
///
/// After a request with `Upgrade` the bytes that follow are held until the app's answer says
/// whether the connection switched protocols (`upgradeAnswered`).
struct ExclusiveRequestFramer {
    struct Output {
        /// Bytes for the app, in order.
        var forward: [ByteBuffer] = []
        /// Each request head forwarded, in order.
        var requests: [ExclusiveRequestKind] = []
        /// The last of `requests` ends the connection (`Connection: close`, or HTTP/1.0 without
        /// keep-alive): once its response is complete the client is closed, and what the client
        /// sends after it is dropped.
        var lastRequestCloses = false
        /// A head was completed by these bytes (stop timing it).
        var headCompleted = false
        /// The request refused, with the answer the client gets; nothing more is forwarded.
        var refusal: ProxyConnectionStateMachine.Answer?
    }

    private enum State {
        case head
        case fixedBody(remaining: Int)
        case chunkedBody(ChunkedBodyScanner)
        /// After a request with `Upgrade`: what the client sends next waits for the app's answer.
        case awaitingUpgradeAnswer
        /// The app switched protocols: bytes pass as they are.
        case tunnel
        /// The client asked to close after the request forwarded last: the rest is dropped.
        case closing
        /// A request was refused: the rest is dropped.
        case refused
    }

    private var state = State.head
    /// The part of a head that came so far, when a head spans reads.
    private var partialHead = ByteBuffer()
    /// Where the search for the head's end resumes in `partialHead`.
    private var scanned = 0
    /// The request being forwarded asked for an upgrade.
    private var upgradeRequested = false
    /// The request being forwarded asked to close the connection after it.
    private var closeRequested = false
    /// What the client sent after an upgrade request, until the app answers it.
    private var held = ByteBuffer()
    private let maxHeaderBytes: Int
    /// The client's address for `X-Forwarded-For`, if it has one.
    private let clientAddress: String?
    private let secure: Bool

    init(maxHeaderBytes: Int, clientAddress: String?, secure: Bool = false) {
        self.maxHeaderBytes = maxHeaderBytes
        self.clientAddress = clientAddress
        self.secure = secure
    }

    /// Between requests, with no byte of the next head yet: a late answer is the app's fault.
    var isBetweenRequests: Bool {
        switch self.state {
        case .head: self.partialHead.readableBytes == 0
        case .closing: true
        default: false
        }
    }

    /// Reading a head: the request head timer runs.
    var isReadingHead: Bool {
        if case .head = self.state { return true }
        return false
    }

    /// Bytes are held for an upgrade answer: read nothing more.
    var isHolding: Bool {
        if case .awaitingUpgradeAnswer = self.state { return true }
        return false
    }

    var isTunnel: Bool {
        if case .tunnel = self.state { return true }
        return false
    }

    mutating func feed(_ input: ByteBuffer) -> Output {
        var output = Output()
        var buffer = input
        self.process(&buffer, into: &output)
        return output
    }

    /// The app answered the upgrade request: with 101 (`switched`) the held bytes and all that
    /// follows pass as they are; otherwise they are read as requests again.
    mutating func upgradeAnswered(switched: Bool) -> Output {
        guard self.isHolding else { return Output() }
        self.state = switched ? .tunnel : self.closeRequested ? .closing : .head
        var buffer = self.held
        self.held = ByteBuffer()
        var output = Output()
        self.process(&buffer, into: &output)
        return output
    }

    /// Stop: the gateway answered or the connection ends; later bytes are dropped.
    mutating func refuseRest() {
        self.state = .refused
        self.partialHead = ByteBuffer()
        self.held = ByteBuffer()
    }

    private mutating func process(_ buffer: inout ByteBuffer, into output: inout Output) {
        while buffer.readableBytes > 0 {
            switch self.state {
            case .refused, .closing:
                buffer.moveReaderIndex(to: buffer.writerIndex)
            case .tunnel:
                output.forward.append(buffer.readSlice(length: buffer.readableBytes)!)
            case .awaitingUpgradeAnswer:
                self.held.writeBuffer(&buffer)
            case .fixedBody(let remaining):
                let take = min(remaining, buffer.readableBytes)
                output.forward.append(buffer.readSlice(length: take)!)
                if take == remaining {
                    self.requestEnded()
                } else {
                    self.state = .fixedBody(remaining: remaining - take)
                }
            case .chunkedBody(var scanner):
                switch buffer.withUnsafeReadableBytes({ scanner.scan($0) }) {
                case .malformed(let reason, let consumed):
                    // What came before the bad byte went on whatever the reads were; so does
                    // the part of this read before it.
                    if consumed > 0 { output.forward.append(buffer.readSlice(length: consumed)!) }
                    self.refuse(.badRequest, "malformed HTTP request: \(reason)", into: &output)
                case .body(let consumed, let ended):
                    output.forward.append(buffer.readSlice(length: consumed)!)
                    if ended { self.requestEnded() } else { self.state = .chunkedBody(scanner) }
                }
            case .head:
                self.readHead(&buffer, into: &output)
            }
        }
    }

    private mutating func requestEnded() {
        self.state = self.upgradeRequested ? .awaitingUpgradeAnswer : self.closeRequested ? .closing : .head
        self.upgradeRequested = false
    }

    private mutating func refuse(_ status: HTTPResponseStatus, _ text: String, headers: [ProxyConnectionStateMachine.Answer.Header] = [], into output: inout Output) {
        output.refusal = .init(status: status, text: text + "\n", headers: headers)
        self.refuseRest()
    }

    /// Finds the end of the head in what came so far; takes the head and rewrites it when it is
    /// complete, or keeps the partial head (bounded).
    private mutating func readHead(_ buffer: inout ByteBuffer, into output: inout Output) {
        var from = 0
        if self.partialHead.readableBytes > 0 {
            self.partialHead.writeBuffer(&buffer)
            buffer = self.partialHead
            self.partialHead = ByteBuffer()
            from = max(0, self.scanned - 3)
        }
        if from == 0 {
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            while buffer.readableBytes >= 2, buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
                buffer.moveReaderIndex(forwardBy: 2)
            }
            if buffer.readableBytes == 1, buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == HTTP1Bytes.cr {
                self.partialHead = buffer.readSlice(length: 1)!
                self.scanned = 0
                return
            }
        }
        let end = buffer.withUnsafeReadableBytes { Self.headEnd(in: $0, from: from) }
        switch end {
        case .malformed(let reason):
            self.refuse(.badRequest, "malformed HTTP request: \(reason)", into: &output)
        case .needMore(let scanned):
            guard buffer.readableBytes <= self.maxHeaderBytes else {
                self.refuse(.requestHeaderFieldsTooLarge, "request headers exceed \(self.maxHeaderBytes) bytes", into: &output)
                return
            }
            self.scanned = scanned
            self.partialHead = buffer.readSlice(length: buffer.readableBytes)!
        case .found(let length):
            guard length <= self.maxHeaderBytes else {
                self.refuse(.requestHeaderFieldsTooLarge, "request headers exceed \(self.maxHeaderBytes) bytes", into: &output)
                return
            }
            let head = buffer.readSlice(length: length)!
            output.headCompleted = true
            self.takeHead(head, into: &output)
        }
    }

    private enum HeadEnd {
        case found(length: Int)
        case needMore(scanned: Int)
        case malformed(String)
    }

    /// Where the head in `bytes` ends (after its empty line), searching from `from`. Every line
    /// must end in CRLF.
    private static func headEnd(in bytes: UnsafeRawBufferPointer, from: Int) -> HeadEnd {
        var index = from
        while let newline = HTTP1Bytes.firstLF(in: bytes, from: index) {
            guard newline > 0, bytes[newline - 1] == HTTP1Bytes.cr else { return .malformed("a line ends in a bare LF") }
            if newline >= 3, bytes[newline - 2] == HTTP1Bytes.lf, bytes[newline - 3] == HTTP1Bytes.cr {
                return .found(length: newline + 1)
            }
            index = newline + 1
        }
        return .needMore(scanned: bytes.count)
    }

    /// What a head says that the gateway acts on.
    private struct HeadFacts {
        var kind = ExclusiveRequestKind.plain
        var contentLength: Int?
        var codings: [Bool] = []  // each transfer coding: is it "chunked"
        var hosts = 0
        var host: Range<Int>?
        var forwardedFor: [Range<Int>] = []
        /// Lines (with their CRLF) left out of the forwarded head: the client's `X-Forwarded-*`.
        var dropped: [Range<Int>] = []
        var http10 = false
        var connect = false
        var close = false
        var keepAlive = false
    }

    /// Checks a complete head, then forwards it rewritten, and sets up its body.
    private mutating func takeHead(_ head: ByteBuffer, into output: inout Output) {
        let parsed: Result<HeadFacts, HeadError> = head.withUnsafeReadableBytes { Self.parse($0) }
        let facts: HeadFacts
        switch parsed {
        case .failure(let error):
            self.refuse(.badRequest, "malformed HTTP request: \(error.reason)", into: &output)
            return
        case .success(let value):
            facts = value
        }
        if facts.connect {
            self.refuse(
                .methodNotAllowed,
                "CONNECT is not supported by this gateway (it is not a forward proxy); send requests to the service directly",
                headers: [.init(name: "allow", value: "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS")],
                into: &output)
            return
        }
        if facts.hosts > 1 {
            self.refuse(.badRequest, "malformed HTTP request: more than one Host header", into: &output)
            return
        }
        let body: State
        if !facts.codings.isEmpty {
            guard !facts.http10 else {
                self.refuse(.badRequest, "malformed HTTP request: Transfer-Encoding in an HTTP/1.0 request", into: &output)
                return
            }
            guard facts.contentLength == nil else {
                self.refuse(.badRequest, "malformed HTTP request: both Content-Length and Transfer-Encoding", into: &output)
                return
            }
            guard facts.codings.last == true, facts.codings.dropLast().allSatisfy({ !$0 }) else {
                self.refuse(.badRequest, "malformed HTTP request: the last transfer coding must be chunked, and only it", into: &output)
                return
            }
            body = .chunkedBody(ChunkedBodyScanner(limit: self.maxHeaderBytes))
        } else if let length = facts.contentLength, length > 0 {
            body = .fixedBody(remaining: length)
        } else {
            body = .head
        }
        output.forward.append(self.rewritten(head, facts))
        output.requests.append(facts.kind)
        self.upgradeRequested = facts.kind == .upgrade
        self.closeRequested = facts.close || (facts.http10 && !facts.keepAlive)
        output.lastRequestCloses = self.closeRequested
        if case .head = body {
            self.requestEnded()
        } else {
            self.state = body
        }
    }

    /// `head` without the client's `X-Forwarded-*` lines, with the gateway's.
    private func rewritten(_ head: ByteBuffer, _ facts: HeadFacts) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(head.readableBytes + 96 + (self.clientAddress?.utf8.count ?? 0))
        head.withUnsafeReadableBytes { bytes in
            var start = 0
            for range in facts.dropped {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[start..<range.lowerBound]))
                start = range.upperBound
            }
            // Everything but the empty line that ends the head.
            out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[start..<(bytes.count - 2)]))
            if let clientAddress = self.clientAddress {
                out.writeStaticString("x-forwarded-for: ")
                for range in facts.forwardedFor {
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[range]))
                    out.writeStaticString(", ")
                }
                out.writeString(clientAddress)
                out.writeStaticString("\r\n")
            }
            out.writeStaticString(self.secure ? "x-forwarded-proto: https\r\n" : "x-forwarded-proto: http\r\n")
            if let host = facts.host {
                out.writeStaticString("x-forwarded-host: ")
                out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[host]))
                out.writeStaticString("\r\n")
            }
            out.writeStaticString("\r\n")
        }
        return out
    }

    private struct HeadError: Error {
        let reason: String
    }

    /// Reads a complete head whose lines all end in CRLF (checked by `headEnd`).
    private static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<HeadFacts, HeadError> {
        var facts = HeadFacts()
        var lineStart = 0
        var first = true
        while lineStart < bytes.count {
            let newline = HTTP1Bytes.firstLF(in: bytes, from: lineStart)!
            let line = bytes[lineStart..<(newline - 1)]
            let lineRange = lineStart..<(newline + 1)
            lineStart = newline + 1
            if first {
                first = false
                if let error = self.parseRequestLine(line, into: &facts) { return .failure(error) }
                continue
            }
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: HTTP1Bytes.colon) else {
                return .failure(HeadError(reason: "a header line without a colon"))
            }
            let name = line[line.startIndex..<colon]
            guard !name.isEmpty, name.allSatisfy(HTTP1Bytes.isTokenByte) else {
                return .failure(HeadError(reason: name.first == HTTP1Bytes.space || name.first == HTTP1Bytes.tab
                    ? "a folded header line or whitespace before a field name"
                    : "an invalid header name or whitespace before a colon"))
            }
            let value = HTTP1Bytes.trimmed(line[(colon + 1)...])
            guard !value.contains(where: HTTP1Bytes.isForbiddenControl) else {
                return .failure(HeadError(reason: "a control character in a header value"))
            }
            switch name.count {
            case 4 where HTTP1Bytes.isName(name, "host"):
                facts.hosts += 1
                facts.host = value.startIndex..<value.endIndex
            case 7 where HTTP1Bytes.isName(name, "upgrade"):
                // A HEAD's answer is read as one, whatever it asks for.
                if !value.isEmpty, facts.kind == .plain { facts.kind = .upgrade }
            case 14 where HTTP1Bytes.isName(name, "content-length"):
                guard let length = HTTP1Bytes.contentLength(value), facts.contentLength.map({ $0 == length }) ?? true else {
                    return .failure(HeadError(reason: "an invalid or conflicting Content-Length"))
                }
                facts.contentLength = length
            case 17 where HTTP1Bytes.isName(name, "transfer-encoding"):
                HTTP1Bytes.transferCodings(value, into: &facts.codings)
                if value.isEmpty { facts.codings.append(false) }
            case 10 where HTTP1Bytes.isName(name, "connection"):
                for element in value.split(separator: HTTP1Bytes.comma) {
                    let option = HTTP1Bytes.trimmed(element)
                    if HTTP1Bytes.isName(option, "close") { facts.close = true }
                    if HTTP1Bytes.isName(option, "keep-alive") { facts.keepAlive = true }
                }
            case 15 where HTTP1Bytes.isName(name, "x-forwarded-for"):
                if !value.isEmpty { facts.forwardedFor.append(value.startIndex..<value.endIndex) }
                facts.dropped.append(lineRange)
            case 16 where HTTP1Bytes.isName(name, "x-forwarded-host"), 17 where HTTP1Bytes.isName(name, "x-forwarded-proto"):
                facts.dropped.append(lineRange)
            default:
                break
            }
        }
        return .success(facts)
    }

    /// `method SP request-target SP HTTP-version`, HTTP/1.0 or HTTP/1.1.
    private static func parseRequestLine(_ line: UnsafeRawBufferPointer.SubSequence, into facts: inout HeadFacts) -> HeadError? {
        // Three parts split at the first two spaces; a third space belongs to the version, which
        // then matches neither.
        guard let firstSpace = line.firstIndex(of: HTTP1Bytes.space),
              let secondSpace = line[(firstSpace + 1)...].firstIndex(of: HTTP1Bytes.space)
        else { return HeadError(reason: "an invalid request line") }
        let parts = (line[line.startIndex..<firstSpace], line[(firstSpace + 1)..<secondSpace], line[(secondSpace + 1)...])
        guard !parts.0.isEmpty, parts.0.allSatisfy(HTTP1Bytes.isTokenByte) else {
            return HeadError(reason: "an invalid request line")
        }
        guard !parts.1.isEmpty, parts.1.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            return HeadError(reason: "an invalid request target")
        }
        if parts.2.elementsEqual("HTTP/1.1".utf8) {
            facts.http10 = false
        } else if parts.2.elementsEqual("HTTP/1.0".utf8) {
            facts.http10 = true
        } else {
            return HeadError(reason: "an HTTP version other than 1.0 or 1.1")
        }
        if parts.0.elementsEqual("CONNECT".utf8) { facts.connect = true }
        if parts.0.elementsEqual("HEAD".utf8) { facts.kind = .head }
        return nil
    }
}

/// The app's side of HTTP on an exclusive port, followed as its bytes pass to the client
/// unchanged: where each response ends (status, `Content-Length`, chunked coding, HEAD and
/// 1xx/204/304 without a body, or the end of the connection), so that the gateway knows when the
/// app accepted an upgrade, when it owes an answer, and when nothing of a response is on the way.
///
/// An answer it can't follow (not HTTP/1.x, a response nobody asked for, a conflicting length)
/// leaves it untracked: bytes still pass, and the gateway stops putting in answers of its own.
struct ExclusiveResponseFollower {
    enum Event: Equatable {
        /// The app answered the upgrade request with 101.
        case switched
        /// The app answered the upgrade request with a final response: no switch.
        case upgradeDeclined
        /// The responses can no longer be followed.
        case lost
        /// The response to a request that asked to close the connection is complete.
        case closingResponseEnded
    }

    /// What the status and header lines of the response head read so far said.
    private struct HeadScan {
        var lines = 0
        var status = 0
        var contentLength: Int?
        var codings: [Bool] = []
    }

    private enum State {
        case head(HeadScan)
        case fixedBody(remaining: Int)
        case chunkedBody(ChunkedBodyScanner)
        /// A body that ends when the app closes.
        case untilClose
        case tunnel
        case untracked
    }

    private var state = State.head(HeadScan())
    /// The start of a status or header line that spans reads (at most `maxLine` bytes of it).
    /// A line within one read is read where it lies, so this is empty almost always; it is kept
    /// out of `state` so that appending to it never copies it.
    private var carry: [UInt8] = []
    private var carryTooLong = false
    /// Requests forwarded and not finally answered yet, oldest first.
    private var pending = CircularBuffer<ExclusiveRequestKind>()
    /// How many requests were forwarded, and which one asked to close (the last, if any).
    private var forwarded = 0
    private var closingRequest: Int?
    private var answered = 0
    /// Longest status or header line kept to be read; the rest of a longer line passes unread.
    private static let maxLine = 8 * 1024

    mutating func requestForwarded(_ kind: ExclusiveRequestKind, closes: Bool = false) {
        self.pending.append(kind)
        self.forwarded += 1
        if closes { self.closingRequest = self.forwarded }
    }

    /// No response is owed and none has begun: an answer of the gateway's own fits here.
    var isIdle: Bool {
        self.pending.isEmpty && self.isBetweenResponses
    }

    /// A request waits for its answer and no byte of it came yet.
    var isAwaitingAnswer: Bool {
        !self.pending.isEmpty && self.isBetweenResponses
    }

    var isTracked: Bool {
        if case .untracked = self.state { return false }
        return true
    }

    private var isBetweenResponses: Bool {
        if case .head(let scan) = self.state { return scan.lines == 0 && self.carry.isEmpty }
        return false
    }

    /// Follows `buffer`, the app's next bytes.
    mutating func follow(_ buffer: ByteBuffer) -> [Event] {
        var events: [Event] = []
        buffer.withUnsafeReadableBytes { bytes in
            var index = 0
            while index < bytes.count {
                switch self.state {
                case .tunnel, .untracked, .untilClose:
                    return
                case .fixedBody(let remaining):
                    let take = min(remaining, bytes.count - index)
                    index += take
                    if take == remaining {
                        self.responseEnded(&events)
                    } else {
                        self.state = .fixedBody(remaining: remaining - take)
                    }
                case .chunkedBody(var scanner):
                    switch scanner.scan(UnsafeRawBufferPointer(rebasing: bytes[index...])) {
                    case .malformed:
                        self.lose(&events)
                    case .body(let consumed, let ended):
                        index += consumed
                        if ended { self.responseEnded(&events) } else { self.state = .chunkedBody(scanner) }
                    }
                case .head(var scan):
                    guard let newline = HTTP1Bytes.firstLF(in: bytes, from: index) else {
                        self.keep(bytes[index...])
                        return
                    }
                    let verdict: LineVerdict
                    if self.carry.isEmpty {
                        verdict = Self.endLine(UnsafeRawBufferPointer(rebasing: bytes[index..<newline]), tooLong: false, &scan)
                    } else {
                        self.keep(bytes[index..<newline])
                        verdict = self.carry.withUnsafeBytes { Self.endLine($0, tooLong: self.carryTooLong, &scan) }
                        self.carry.removeAll(keepingCapacity: true)
                        self.carryTooLong = false
                    }
                    index = newline + 1
                    switch verdict {
                    case .unreadable: self.lose(&events)
                    case .more: self.state = .head(scan)
                    case .headEnded: self.responseHeadEnded(scan, events: &events)
                    }
                }
            }
        }
        return events
    }

    private mutating func keep(_ bytes: UnsafeRawBufferPointer.SubSequence) {
        let room = Self.maxLine - self.carry.count
        if bytes.count > room { self.carryTooLong = true }
        self.carry.append(contentsOf: bytes.prefix(max(0, room)))
    }

    private enum LineVerdict {
        case more, headEnded, unreadable
    }

    /// Reads one line of a response head (without its LF); `tooLong` when bytes of it were left
    /// unkept. A line longer than `maxLine` is read as its first `maxLine` bytes.
    private static func endLine(_ whole: UnsafeRawBufferPointer, tooLong: Bool, _ scan: inout HeadScan) -> LineVerdict {
        var line = whole
        var tooLong = tooLong
        if line.count > Self.maxLine {
            line = UnsafeRawBufferPointer(rebasing: line.prefix(Self.maxLine))
            tooLong = true
        }
        if line.last == HTTP1Bytes.cr { line = UnsafeRawBufferPointer(rebasing: line.dropLast()) }
        // Empty lines between responses are tolerated, as between requests.
        if scan.lines == 0, line.isEmpty { return .more }
        scan.lines += 1
        return Self.read(line: line, tooLong: tooLong, into: &scan)
    }

    /// Reads the status line or a header line of a response head.
    private static func read(line: UnsafeRawBufferPointer, tooLong: Bool, into scan: inout HeadScan) -> LineVerdict {
        if scan.lines == 1 {
            // "HTTP/1.x NNN" and a reason.
            guard line.count >= 12, line[0..<7].elementsEqual("HTTP/1.".utf8), line[8] == HTTP1Bytes.space,
                  line[9...11].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  line.count == 12 || line[12] == HTTP1Bytes.space
            else { return .unreadable }
            scan.status = line[9...11].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            return .more
        }
        if line.isEmpty { return .headEnded }
        if line[0] == HTTP1Bytes.space || line[0] == HTTP1Bytes.tab { return .unreadable }  // a folded line
        guard let colon = line.firstIndex(of: HTTP1Bytes.colon) else { return .unreadable }
        let name = line[0..<colon]
        if HTTP1Bytes.isName(name, "content-length") {
            guard !tooLong, let length = HTTP1Bytes.contentLength(line[(colon + 1)...]),
                  scan.contentLength.map({ $0 == length }) ?? true
            else { return .unreadable }
            scan.contentLength = length
        } else if HTTP1Bytes.isName(name, "transfer-encoding") {
            guard !tooLong else { return .unreadable }
            HTTP1Bytes.transferCodings(line[(colon + 1)...], into: &scan.codings)
        }
        return .more
    }

    private mutating func responseHeadEnded(_ scan: HeadScan, events: inout [Event]) {
        let status = scan.status
        if status == 101 {
            guard self.pending.first == .upgrade else { return self.lose(&events) }
            self.pending.removeFirst()
            self.state = .tunnel
            events.append(.switched)
            return
        }
        if (100...199).contains(status) {
            self.state = .head(HeadScan())  // interim: the final response follows
            return
        }
        guard let kind = self.pending.popFirst() else { return self.lose(&events) }
        self.answered += 1
        if kind == .upgrade { events.append(.upgradeDeclined) }
        if kind == .head || status == 204 || status == 304 {
            self.responseEnded(&events)
        } else if !scan.codings.isEmpty {
            self.state = scan.codings.last == true ? .chunkedBody(ChunkedBodyScanner(limit: 64 * 1024)) : .untilClose
        } else if let length = scan.contentLength {
            if length > 0 { self.state = .fixedBody(remaining: length) } else { self.responseEnded(&events) }
        } else {
            self.state = .untilClose
        }
    }

    /// A final response is complete; the next byte starts the next.
    private mutating func responseEnded(_ events: inout [Event]) {
        self.state = .head(HeadScan())
        if self.answered == self.closingRequest { events.append(.closingResponseEnded) }
    }

    private mutating func lose(_ events: inout [Event]) {
        self.state = .untracked
        events.append(.lost)
    }
}
