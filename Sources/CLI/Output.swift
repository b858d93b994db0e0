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

    /// Columns padded to their widest cell; a header row in upper case, as dstack prints. Every
    /// cell is escaped (`escape`): names and addresses come from other members of the mesh, and a
    /// run name with terminal escapes or a newline must not repaint or forge lines of the table.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header.map { escape($0.uppercased()) }] + rows.map { $0.map(escape) }
        let widths = header.indices.map { i in all.map { i < $0.count ? $0[i].count : 0 }.max() ?? 0 }
        return all.map { row in
            " " + row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "   ")
        }.joined(separator: "\n")
    }

    /// `text` with control characters (C0, DEL, C1) and bidirectional overrides written visibly
    /// as `\n`, `\t`, `\x1b`, `\u{202e}`: what a terminal would act on is shown, not obeyed.
    static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            guard isUnsafe(scalar) else { out.unicodeScalars.append(scalar); continue }
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x100: out += "\\x" + String(format: "%02x", scalar.value)
            default: out += "\\u{" + String(scalar.value, radix: 16) + "}"
            }
        }
        return out
    }

    private static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
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
