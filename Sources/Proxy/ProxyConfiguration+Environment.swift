// The gateway's timeouts as its operator may set them, from the node's environment.

public import NIOCore

/// A timeout variable that is not a positive number of seconds.
public struct ProxyConfigurationError: Error, CustomStringConvertible {
    public var variable: String
    public var value: String

    public var description: String {
        "\(self.variable)=\"\(self.value)\" is not a number of seconds above 0; set it to one (e.g. \(self.variable)=60) or unset it for the default"
    }
}

extension ProxyConfiguration {
    /// The variables that override the HTTP timeouts, in seconds (fractions allowed).
    public static var environmentVariables: [(name: String, field: WritableKeyPath<ProxyConfiguration, TimeAmount>)] {
        [
            ("WARREN_PROXY_IDLE_TIMEOUT_SECONDS", \.idleTimeout),
            ("WARREN_PROXY_REQUEST_HEAD_TIMEOUT_SECONDS", \.requestHeadTimeout),
            ("WARREN_PROXY_ANSWER_TIMEOUT_SECONDS", \.answerTimeout),
        ]
    }

    /// The defaults, with each timeout set in `environment` in its place.
    public init(environment: [String: String]) throws(ProxyConfigurationError) {
        self.init()
        for (name, field) in Self.environmentVariables {
            guard let text = environment[name] else { continue }
            guard let seconds = Double(text), seconds > 0, seconds.isFinite, seconds < 1e9 else {
                throw ProxyConfigurationError(variable: name, value: text)
            }
            self[keyPath: field] = .nanoseconds(Int64(seconds * 1e9))
        }
    }
}
