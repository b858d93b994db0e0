import Foundation
import Testing

@Suite struct HelpText {
    /// The root help lists each subcommand once, and every listed one answers its own `--help`.
    @Test func rootHelpListsEachSubcommandOnceAndEachHasHelp() async throws {
        let root = try await WarrenProcess.run(["--help"])
        #expect(root.status == 0, "\(root.stderr)")
        let section = root.stdout.components(separatedBy: "SUBCOMMANDS:").last ?? ""
        // Subcommand rows are indented by two spaces; wrapped abstracts by many more.
        let names = section.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("  "), !line.hasPrefix("   ") else { return nil }
            return line.split(separator: " ").first.map(String.init)
        }
        #expect(names.contains("gateway") && names.contains("run") && names.contains("project"))
        #expect(names.count == Set(names).count, "listed more than once: \(names)")
        for name in names where name != "See" {
            let help = try await WarrenProcess.run([name, "--help"])
            #expect(help.status == 0 && help.stdout.contains("USAGE: warren \(name)"), "\(name): \(help.stderr)")
        }
    }

    /// `gateway create` documents the mesh's ACME setting, and that gateways without flags follow it.
    @Test func gatewayCreateHelpTellsOfTheACMESettings() async throws {
        let help = try await WarrenProcess.run(["gateway", "create", "--help"])
        #expect(help.status == 0, "\(help.stderr)")
        // Help is wrapped to the terminal's width: compare with the words rejoined.
        let words = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for text in ["--acme-email <EMAIL>", "--acme-directory <URL>", "--acme-ca-bundle <FILE>", "Let's Encrypt",
                     "A setting of the mesh", "every gateway started without ACME flags of its own follows", "`https: false`"] {
            #expect(words.contains(text), "`\(text)` missing from:\n\(help.stdout)")
        }
    }
}
