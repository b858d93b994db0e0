/// The answer to an `HTTPRequest`: the final response (interim `100 Continue` and the like dropped).
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [HTTPHeader]
    /// The body; empty when it was streamed to a callback instead.
    public var body: [UInt8]

    public init(status: Int, headers: [HTTPHeader] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of header `name` (case-insensitive), if any.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// The body decoded as UTF-8 (invalid sequences replaced).
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// True for 2xx statuses.
    public var isSuccess: Bool { (200..<300).contains(status) }
}
