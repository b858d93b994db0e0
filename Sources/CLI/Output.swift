import Foundation

/// Writing to the terminal: tables that line up, JSON for `--json`, errors on stderr.
enum Output {
    static func line(_ text: String = "") {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// Pretty, sorted-key JSON of `value` on stdout; times as RFC 3339 (`2026-01-02T03:04:05Z`).
    static func json(_ value: some Encodable) throws {
        line(String(decoding: try encoder(pretty: true).encode(value), as: UTF8.self))
    }

    /// One compact JSON object on a line of its own, for output that streams (NDJSON).
    static func jsonLine(_ value: some Encodable) throws {
        line(String(decoding: try encoder(pretty: false).encode(value), as: UTF8.self))
    }

    private static func encoder(pretty: Bool) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// Columns padded to their widest cell; a header row in upper case, as dstack prints.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header.map { $0.uppercased() }] + rows
        let widths = header.indices.map { i in all.map { i < $0.count ? $0[i].count : 0 }.max() ?? 0 }
        return all.map { row in
            " " + row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "   ")
        }.joined(separator: "\n")
    }
}


extension Output {
    /// "12s ago", "5m ago", "3h ago", "2d ago".
    static func age(_ date: Date, now: Date = Date()) -> String {
        let s = Int(now.timeIntervalSince(date).rounded())
        switch s {
        case ..<0: return "in \(-s)s"
        case ..<60: return "\(s)s ago"
        case ..<3600: return "\(s / 60)m ago"
        case ..<86400: return "\(s / 3600)h ago"
        default: return "\(s / 86400)d ago"
        }
    }

    /// "in 25s" for a time ahead.
    static func remaining(_ date: Date, now: Date = Date()) -> String {
        let s = Int(date.timeIntervalSince(now).rounded())
        return s >= 0 ? "in \(s)s" : "\(-s)s ago"
    }
}
