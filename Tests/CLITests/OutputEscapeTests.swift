@testable import CLI
import Testing

/// Every table the CLI prints escapes control characters in its cells, whatever their source (a
/// name gossiped by another member, a state database edited by hand): nothing in a cell can clear
/// the screen, recolour it, or forge a row.
@Suite struct OutputEscapeTests {
    @Test func aCellWithEscapesAndANewlineIsPrintedEscapedOnOneLine() {
        let hostile = "web\u{1B}[2J\u{1B}[31mPWNED\nfake-row\u{202E}\t\u{7F}\u{9B}"
        let table = Output.table(["name", "port"], [[hostile, "5001"], ["ok", "5002"]])
        #expect(!table.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x7F || $0.value == 0x9B || $0.value == 0x202E || $0 == "\t" })
        #expect(table.split(separator: "\n").count == 3)
        #expect(table.contains(#"web\x1b[2J\x1b[31mPWNED\nfake-row\u{202e}\t\x7f\x9b"#), "\(table)")
    }

    @Test func plainTextIsUnchanged() {
        #expect(Output.escape("web-1 api.example.com:443 ünïcode") == "web-1 api.example.com:443 ünïcode")
    }
}
