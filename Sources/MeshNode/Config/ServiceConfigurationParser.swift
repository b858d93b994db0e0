public import Foundation
internal import Yams

/// Reads dstack-style service configurations as dstack writes them, and says exactly what is wrong
/// with one that is not valid: every problem with its file, line and column.
public struct ServiceConfigurationParser: Sendable {
    /// Fields Warren understands.
    static let supportedFields = ["type", "name", "gateway", "port", "commands", "env", "python", "image", "setup", "domain", "working_dir", "proxy_protocol", "https"]
    /// dstack fields that Warren accepts and does not act on (machine selection, autoscaling, …):
    /// a file written for dstack still parses.
    static let ignoredDstackFields = [
        "auth", "backends", "creation_policy", "entrypoint", "fleets", "home_dir", "idle_duration",
        "instance_types", "max_duration", "max_price", "model", "nvcc", "privileged", "probes", "rate_limits",
        "regions", "registry_auth", "replicas", "reservation", "resources", "retry", "scaling", "shell",
        "single_branch", "spot_policy", "stop_duration", "strip_prefix", "utilization_policy", "volumes",
    ]

    public var secrets: SecretValues
    public var environment: [String: String]

    /// - Parameters:
    ///   - secrets: the values of `${{ secrets.NAME }}`, from the project the service runs in.
    ///   - environment: the values of `${{ env.NAME }}` and of `env` entries given without a value.
    public init(secrets: SecretValues, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.secrets = secrets
        self.environment = environment
    }

    /// Reads and parses the file at `path`; a file that cannot be read is one issue at 1:1.
    public func parse(contentsOf path: String) throws(ConfigurationError) -> ServiceConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read as UTF-8 text" : "does not exist"
            throw ConfigurationError(issues: [ConfigurationIssue(file: path, line: 1, column: 1, message: "the file \(reason)")])
        }
        return try parse(yaml: text, file: path)
    }

    /// Parses a configuration held in memory; `file` names it in messages.
    public func parse(yaml: String, file: String) throws(ConfigurationError) -> ServiceConfiguration {
        var reader = Reader(file: file, interpolation: Interpolation(secrets: secrets, environment: environment))
        let configuration = reader.read(yaml)
        guard reader.issues.isEmpty, let configuration else {
            throw ConfigurationError(issues: reader.issues.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
        }
        return configuration
    }
}

/// One pass over one file, collecting every issue rather than stopping at the first.
private struct Reader {
    let file: String
    let interpolation: Interpolation
    var issues: [ConfigurationIssue] = []

    init(file: String, interpolation: Interpolation) {
        self.file = file
        self.interpolation = interpolation
    }

    mutating func read(_ yaml: String) -> ServiceConfiguration? {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            report(yamlError: error, in: yaml)
            return nil
        } catch {
            issue(line: 1, column: 1, "the file is not valid YAML: \(error)")
            return nil
        }
        guard let root, case .mapping(let fields) = root else {
            issue(at: root, "a service configuration is a mapping of fields such as `type: service`, `port:` and `commands:`")
            return nil
        }

        var seen: [String: Node] = [:]
        var type: String?, name: String?, gateway: ResolvedString?, port: PortMapping?
        var commands: [ResolvedString]?, setup: [ResolvedString] = [], env: [EnvironmentVariable] = []
        var python: String?, image: String?, domain: ResolvedString?, workingDirectory: String?
        var proxyProtocol = false, https = true
        var ignored: [String] = []

        for (keyNode, value) in fields {
            guard let key = keyNode.scalar?.string else {
                issue(at: keyNode, "a field name must be a plain word such as `commands`")
                continue
            }
            if let first = seen[key] {
                issue(at: keyNode, "`\(key)` is given twice (first at line \(first.mark?.line ?? 0))")
                continue
            }
            seen[key] = keyNode
            switch key {
            case "type": type = plainString(value, field: key)
            case "name":
                name = plainString(value, field: key)
                if let given = name, !PlainName.isValid(given) {
                    issue(at: value, "`name: \(PlainName.describe(given))` is not a plain name: \(PlainName.rule)")
                    name = nil
                }
            case "gateway":
                if let flag = value.scalar.flatMap({ _ in value.bool }), value.scalar?.style == .plain {
                    if !flag { issue(at: value, "`gateway: false` is not supported: a service is published through a gateway") }
                } else {
                    gateway = resolvedString(value, field: key)
                }
            case "port": port = portMapping(value)
            case "commands": commands = stringList(value, field: key)
            case "setup": setup = stringList(value, field: key) ?? []
            case "env": env = environmentVariables(value)
            case "python": python = plainString(value, field: key)
            case "image": image = plainString(value, field: key)
            case "domain": domain = resolvedString(value, field: key)
            case "working_dir": workingDirectory = plainString(value, field: key)
            case "proxy_protocol":
                if let flag = value.bool, value.scalar?.style == .plain {
                    proxyProtocol = flag
                } else {
                    issue(at: value, "`proxy_protocol` must be true or false, not \(describe(value)); "
                        + "true starts each connection to the app with a PROXY protocol v2 header")
                }
            case "https":
                if let flag = value.bool, value.scalar?.style == .plain {
                    https = flag
                } else {
                    issue(at: value, "`https` must be true or false, not \(describe(value)); "
                        + "false serves the service's domain over plain HTTP only: no certificate, no redirect to HTTPS")
                }
            case _ where ServiceConfigurationParser.ignoredDstackFields.contains(key): ignored.append(key)
            default:
                let known = ServiceConfigurationParser.supportedFields + ServiceConfigurationParser.ignoredDstackFields
                let hint = Suggestion.nearest(to: key, in: known).map { "; did you mean `\($0)`?" } ?? ""
                issue(at: keyNode, "unknown field `\(key)`\(hint)")
            }
        }

        switch type {
        case "service": break
        case nil where seen["type"] == nil:
            issue(at: root, "missing `type: service`")
        case nil: break  // already reported as the wrong kind of value
        case let other?:
            let supported = other == "task" || other == "dev-environment"
                ? "task and dev-environment are not supported" : "the only type is `service`"
            issue(at: fields["type"], "`type: \(other)` is not supported: Warren runs services (\(supported))")
        }
        if seen["port"] == nil {
            issue(at: root, "missing `port`: the port the app listens on, e.g. `port: 8000` (public on 80) or `port: \"5001:8000\"`")
        }
        if seen["commands"] == nil {
            issue(at: root, "missing `commands`: the list of shell commands that start the app")
        } else if let commands, commands.isEmpty {
            issue(at: fields["commands"], "`commands` is empty: give at least one command that starts the app")
        }

        guard issues.isEmpty, let port, let commands else { return nil }
        return ServiceConfiguration(
            name: name, gateway: gateway, port: port, setup: setup, commands: commands, env: env,
            python: python, image: image, domain: domain, workingDirectory: workingDirectory,
            proxyProtocol: proxyProtocol, https: https, ignoredFields: ignored)
    }

    // MARK: Values

    /// A scalar's text, without interpolation (names, versions, images).
    mutating func plainString(_ node: Node, field: String) -> String? {
        guard let scalar = node.scalar, node.null == nil else {
            issue(at: node, "`\(field)` must be a string, not \(describe(node))")
            return nil
        }
        return scalar.string
    }

    /// A scalar's text after `${{ … }}` interpolation.
    mutating func resolvedString(_ node: Node, field: String) -> ResolvedString? {
        guard let text = plainString(node, field: field) else { return nil }
        return interpolate(text, at: node)
    }

    mutating func stringList(_ node: Node, field: String) -> [ResolvedString]? {
        guard case .sequence(let items) = node else {
            issue(at: node, "`\(field)` must be a list of strings (one `- command` per line), not \(describe(node))")
            return nil
        }
        var out: [ResolvedString] = []
        var complete = true
        for item in items {
            if let s = resolvedString(item, field: "\(field) item") { out.append(s) } else { complete = false }
        }
        // A list with a bad item is reported once, for that item, not again as empty.
        return complete ? out : nil
    }

    mutating func portMapping(_ node: Node) -> PortMapping? {
        guard let scalar = node.scalar, node.null == nil else {
            issue(at: node, "`port` must be a number such as 8000 or a string such as \"5001:8000\", not \(describe(node))")
            return nil
        }
        do {
            if !scalar.string.contains(":"), scalar.style == .plain, let n = node.int {
                return try PortMapping.fromInteger(n)
            }
            return try PortMapping.parse(scalar.string)
        } catch {
            issue(at: node, error.message)
            return nil
        }
    }

    mutating func environmentVariables(_ node: Node) -> [EnvironmentVariable] {
        var out: [EnvironmentVariable] = []
        switch node {
        case .sequence(let items):
            for item in items {
                guard let text = item.scalar?.string, item.null == nil else {
                    issue(at: item, "each `env` item must be `NAME=value` or `NAME`, not \(describe(item))")
                    continue
                }
                let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(parts[0])
                let value: ResolvedString?
                if parts.count == 2 {
                    value = interpolate(String(parts[1]), at: item, offset: name.count + 1)
                } else {
                    value = fromEnvironment(name, at: item)
                }
                if checkName(name, at: item), let value { out.append(EnvironmentVariable(name: name, value: value)) }
            }
        case .mapping(let pairs):
            for (key, value) in pairs {
                guard let name = key.scalar?.string else {
                    issue(at: key, "an `env` name must be a plain word")
                    continue
                }
                let resolved: ResolvedString?
                if value.null != nil {
                    resolved = fromEnvironment(name, at: key)
                } else {
                    resolved = resolvedString(value, field: "env \(name)")
                }
                if checkName(name, at: key), let resolved { out.append(EnvironmentVariable(name: name, value: resolved)) }
            }
        default:
            issue(at: node, "`env` must be a list of `NAME=value` or a mapping of NAME: value, not \(describe(node))")
        }
        return out
    }

    /// dstack's `- NAME` with no value: taken from the caller's environment.
    mutating func fromEnvironment(_ name: String, at node: Node) -> ResolvedString? {
        guard let value = interpolation.environment[name] else {
            issue(at: node, "env `\(name)` has no value here and is not set in the environment: write `\(name)=value`")
            return nil
        }
        return ResolvedString(value)
    }

    mutating func checkName(_ name: String, at node: Node) -> Bool {
        let valid = !name.isEmpty && name.unicodeScalars.enumerated().allSatisfy { i, c in
            c == "_" || (c.isASCII && (c.properties.isAlphabetic || (i > 0 && ("0"..."9").contains(c))))
        }
        if !valid { issue(at: node, "`\(name)` is not a valid environment variable name (letters, digits and _, not starting with a digit)") }
        return valid
    }

    mutating func interpolate(_ text: String, at node: Node, offset extra: Int = 0) -> ResolvedString? {
        do {
            return try interpolation.resolve(text)
        } catch {
            let message: String
            switch error {
            case .unterminated:
                message = "`${{` is not closed: write `${{ secrets.NAME }}` or `${{ env.NAME }}`"
            case .unknownSecret(let name, _):
                let project = interpolation.secrets.project
                let known = interpolation.secrets.values.keys.sorted()
                let list = known.isEmpty ? "the project has no secrets" : "its secrets are \(known.joined(separator: ", "))"
                let hint = Suggestion.nearest(to: name, in: known).map { " (did you mean `\($0)`?)" } ?? ""
                message = "unknown secret `\(name)` in project `\(project)`\(hint); \(list). Add it with: warren secrets add \(name) VALUE --project \(project)"
            case .unknownEnvironment(let name, _):
                message = "`${{ env.\(name) }}`: `\(name)` is not set in the environment"
            case .unsupported(let expression, _):
                message = "`${{ \(expression) }}` is not supported: use `${{ secrets.NAME }}` or `${{ env.NAME }}`"
            }
            issue(at: node, message, offset: extra + error.offset)
            return nil
        }
    }

    // MARK: Issues

    mutating func report(yamlError error: YamlError, in yaml: String) {
        switch error {
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Yams refuses duplicate keys before we see the nodes; find the lines ourselves.
            let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
            for key in duplicates.sorted() {
                let at = lines.indices.filter { i in
                    let text = lines[i].drop { $0 == " " }
                    return text.hasPrefix(key) && text.dropFirst(key.count).drop { $0 == " " }.hasPrefix(":")
                }
                if at.count >= 2 {
                    let column = lines[at[1]].prefix { $0 == " " }.count + 1
                    issue(line: at[1] + 1, column: column, "`\(key)` is given twice (first at line \(at[0] + 1))")
                } else {
                    issue(line: context.mark.line, column: context.mark.column, "`\(key)` is given twice")
                }
            }
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let where_ = context.map { " \($0.text)" } ?? ""
            issue(line: mark.line, column: mark.column, "malformed YAML: \(problem)\(where_)")
        case .reader(let problem, _, _, _):
            issue(line: 1, column: 1, "the file cannot be read as YAML text: \(problem)")
        default:
            issue(line: 1, column: 1, "malformed YAML: \(error)")
        }
    }

    mutating func issue(at node: Node?, _ message: String, offset: Int = 0) {
        let mark = node?.mark
        var column = mark?.column ?? 1
        // Point into a one-line scalar at the problem itself (past an opening quote).
        if offset > 0, let scalar = node?.scalar, !scalar.string.contains("\n") {
            column += offset + (scalar.style == .plain ? 0 : 1)
        }
        issue(line: mark?.line ?? 1, column: column, message)
    }

    mutating func issue(line: Int, column: Int, _ message: String) {
        issues.append(ConfigurationIssue(file: file, line: line, column: column, message: message))
    }

    func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar: return node.null != nil ? "empty" : "`\(node.scalar?.string ?? "")`"
        }
    }
}

private extension Node.Mapping {
    subscript(key: String) -> Node? {
        first { $0.key.scalar?.string == key }?.value
    }
}
