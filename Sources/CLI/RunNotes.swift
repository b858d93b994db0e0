import Foundation
import MeshNode

/// What `warren run` says besides the run's own progress: fields it will not act on, and a
/// command the shell could not find, in the words a user looks for.
enum RunNotes {
    /// dstack fields Warren ignores (`resources`, `replicas`, …), said once before the run starts,
    /// as `config check` lists them. The node validates the file; this only reads its keys, so
    /// secrets are stood in for by a documentation address (any value parses as a gateway).
    static func sayIgnoredFields(file: String, project: String, client: NodeClient) {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return }
        let names = (try? client.get("/v1/projects/\(project.urlPathEscaped)/secrets", as: [SecretInfo].self))?.map(\.name) ?? []
        let stand = Dictionary(names.map { ($0, "192.0.2.1") }, uniquingKeysWith: { a, _ in a })
        guard let service = try? ServiceConfigurationParser(secrets: SecretValues(project: project, values: stand)).parse(yaml: text, file: file),
              !service.ignoredFields.isEmpty else { return }
        Output.error("note: \(file): Warren does not act on these dstack fields, so they are ignored: \(service.ignoredFields.sorted().joined(separator: ", ")).")
    }

    /// The command name when the run's shell exited 127 because it could not find it: dash says
    /// `sh: 1: pyhton: not found`, bash `sh: line 1: pyhton: command not found`.
    /// A run that ends before it is ready carries the status in its error, not in `exitCode`.
    static func commandNotFound(_ info: RunInfo, client: NodeClient) -> String? {
        guard info.exitCode == 127 || info.error?.contains("exited with code 127") == true else { return nil }
        var log: [UInt8] = []
        try? client.stream("/v1/runs/\(info.id)/logs?tail=20") { chunk in
            log += chunk
            return true
        }
        return missingCommand(in: String(decoding: log, as: UTF8.self))
    }

    static func missingCommand(in log: String) -> String? {
        for line in log.split(separator: "\n").reversed() {
            let parts = line.components(separatedBy: ": ")
            guard let last = parts.last, last == "not found" || last == "command not found", parts.count >= 2 else { continue }
            return parts[parts.count - 2].trimmingCharacters(in: .whitespaces)
        }
        return nil
    }
}
