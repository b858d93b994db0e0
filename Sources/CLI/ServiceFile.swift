import ArgumentParser
import Foundation

/// Which service file a command uses: `-f FILE`, else dstack's default names in the run's directory.
enum ServiceFile {
    /// dstack's name first, then the name the examples and the README use.
    static let defaultNames = [".dstack.yml", "service.dstack.yml"]

    /// `explicit` as given, else the first default name present in `directory`; an error naming
    /// where it looked when none is.
    static func resolve(_ explicit: String?, in directory: String) throws -> String {
        if let explicit { return explicit }
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        for name in defaultNames {
            let path = (directory == "." ? "" : base) + name
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        let place = directory == "." ? "this directory" : directory
        Output.error("""
            error: no service file given and \(place) has neither \(defaultNames.joined(separator: " nor ")).
            Name one with -f FILE, or save the service as \(base == "./" ? "" : base)\(defaultNames[0]).
            """)
        throw ExitCode(1)
    }
}

/// `logs --json`: one object a line.
struct LogLine: Encodable {
    var run: String
    var line: String
}

/// Cuts a byte stream into lines; chunks may end anywhere, even inside a UTF-8 sequence.
final class LineSplitter: @unchecked Sendable {
    private var pending: [UInt8] = []

    func feed(_ chunk: [UInt8]) -> [String] {
        pending += chunk
        var lines: [String] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: pending[..<newline], as: UTF8.self))
            pending.removeSubrange(...newline)
        }
        return lines
    }

    /// What is left after the stream ended without a final newline.
    func rest() -> String? {
        pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self)
    }
}
