import ArgumentParser
import Foundation
import MeshNode

@main
struct Warren: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warren",
        abstract: "A peer-to-peer mesh that puts applications on the public internet through gateways.",
        discussion: """
            Every machine runs the same agent (`warren node start`); the other commands talk to the \
            node on this machine. Start with the walkthrough in README.md.
            """,
        version: WarrenVersion.line,
        subcommands: [
            RunCommand.self, ApplyCommand.self, PsCommand.self, LogsCommand.self, StopCommand.self, RmCommand.self, StatusCommand.self,
            SecretsCommand.self, ProjectCommand.self, GatewayCommand.self, PeersCommand.self, LeasesCommand.self, DomainsCommand.self, CertsCommand.self,
            NodeCommand.self, ConfigCommand.self,
            MeshCommand.self, InviteCommand.self,
        ]
    )

    /// Exit codes: 0 success, 1 a failure the command reports (invalid file, refused run, …),
    /// 2 a usage error (unknown command or option, missing argument).
    static func main() async {
        if let message = unknownCommand(in: Array(CommandLine.arguments.dropFirst())) {
            FileHandle.standardError.write(Data((message + "\n").utf8))
            Foundation.exit(2)
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                // Argument parser's usage errors: print its message and the usage line, exit 2.
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }

    /// The parser reports a mistyped command as an unexpected argument, or as an unknown option of
    /// whatever follows it (`warren aply -f x` → "Unknown option '-f'"); say what is wrong instead.
    /// Walks the words that name commands; nil when they all do.
    static func unknownCommand(in arguments: [String], root: any ParsableCommand.Type = Warren.self) -> String? {
        var command = root
        var path = [root._commandName]
        for word in arguments {
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty, !word.hasPrefix("-"), word != "help" else { return nil }
            var next: (any ParsableCommand.Type)?
            for subcommand in subcommands where subcommand._commandName == word || subcommand.configuration.aliases.contains(word) {
                next = subcommand
            }
            if let next {
                command = next
                path.append(word)
                continue
            }
            var shown: [String] = []
            for subcommand in subcommands where subcommand.configuration.shouldDisplay { shown.append(subcommand._commandName) }
            let guess = nearest(to: word, in: shown).map { " Did you mean `\((path + [$0]).joined(separator: " "))`?" } ?? ""
            return """
                error: unknown command `\(word)` for `\(path.joined(separator: " "))`.\(guess)
                The commands are: \(shown.joined(separator: ", ")). See `\(path.joined(separator: " ")) --help`.
                """
        }
        return nil
    }

    /// The command name a typo most likely meant: within two edits (a third of a long word).
    static func nearest(to word: String, in names: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var previous = Array(0...b.count)
            for i in 1...max(a.count, 1) where !a.isEmpty {
                var current = [i] + [Int](repeating: 0, count: b.count)
                for j in stride(from: 1, through: b.count, by: 1) {
                    current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                }
                previous = current
            }
            return a.isEmpty ? b.count : previous[b.count]
        }
        let scored = names.map { ($0, distance(Array(word.lowercased()), Array($0))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, word.count / 3) else { return nil }
        return best.0
    }
}
