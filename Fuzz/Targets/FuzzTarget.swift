/// One fuzz target: a parser fed arbitrary bytes, with the properties that must hold for every
/// input. `check` throws `FuzzFailure` when a property is broken; the libFuzzer driver turns that
/// into a crash (so the input is saved), and the regression tests into a failed expectation.
public struct FuzzTarget: Sendable {
    public let name: String
    public let summary: String
    public let check: @Sendable ([UInt8]) throws(FuzzFailure) -> Void

    public init(name: String, summary: String, check: @escaping @Sendable ([UInt8]) throws(FuzzFailure) -> Void) {
        self.name = name
        self.summary = summary
        self.check = check
    }

    /// Every target, by name. The names are the folder names under Fuzz/corpus and Fuzz/crashes.
    public static let all: [FuzzTarget] = [
        linkHandshake, linkRecords, gossipDatagram, entryCodec, inviteToken, httpHead, exclusiveHTTP, clientHello, localAPI, serviceYAML,
    ]

    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// A broken property: what was expected of the input.
public struct FuzzFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Throws `FuzzFailure(message)` unless `condition` holds.
func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws(FuzzFailure) {
    if !condition { throw FuzzFailure(message()) }
}

/// Reads the fuzz input as a few control bytes followed by data.
struct FuzzInput {
    private(set) var bytes: ArraySlice<UInt8>
    init(_ bytes: [UInt8]) { self.bytes = bytes[...] }
    mutating func byte() -> UInt8 { bytes.popFirst() ?? 0 }
    mutating func take(_ n: Int) -> [UInt8] {
        let part = bytes.prefix(n)
        bytes = bytes.dropFirst(part.count)
        return Array(part)
    }
    var rest: [UInt8] { Array(bytes) }
}

extension Array where Element == UInt8 {
    /// `self` cut into reads of `size` bytes (the last one shorter), as a socket might deliver it.
    func reads(of size: Int) -> [ArraySlice<UInt8>] {
        let size = Swift.max(size, 1)
        return stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
