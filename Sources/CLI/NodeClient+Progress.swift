import Curl
import Foundation
import MeshNode

extension NodeClient {
    /// Sends a request whose answer is NDJSON progress (gateway create and delete), handing each
    /// `GatewayProgress` to `onProgress` as it arrives; returns the last one. A refusal before the
    /// stream starts throws the node's message.
    func progress(
        _ method: String, _ path: String, _ body: some Encodable, onProgress: @escaping (GatewayProgress) -> Void
    ) throws(Failure) -> GatewayProgress? {
        let bytes: [UInt8]
        do { bytes = Array(try APIJSON.makeEncoder().encode(body)) } catch { throw Failure(description: "could not encode the request: \(error)") }
        let request = HTTPRequest(method: method, url: "http://warren-node" + path, headers: [HTTPHeader("Content-Type", "application/json")], body: bytes)
        // No overall limit: a cloud VM may take minutes; the node enforces the creation's timeout.
        let client = HTTPClient(unixSocketPath: socketPath, timeout: nil)
        var status = 0
        var errorBody: [UInt8] = []
        var pending: [UInt8] = []
        var last: GatewayProgress?
        let decoder = APIJSON.makeDecoder()
        do {
            _ = try client.perform(request) { code, chunk in
                status = code
                if code >= 300 { errorBody += chunk; return true }
                pending += chunk
                while let newline = pending.firstIndex(of: 10) {
                    let line = pending[..<newline]
                    pending.removeSubrange(...newline)
                    if let event = try? decoder.decode(GatewayProgress.self, from: Data(line)) {
                        last = event
                        onProgress(event)
                    }
                }
                return true
            }
        } catch .couldNotConnect {
            throw Failure(description: "no node is running for \(stateDirectory) (nothing answers on \(socketPath)); start one with `warren node start`")
        } catch {
            throw Failure(description: "talking to the local node failed: \(error)")
        }
        if status >= 300 {
            if let body = try? decoder.decode(APIErrorBody.self, from: Data(errorBody)) {
                throw Failure(description: body.error, issues: body.issues ?? [], status: status)
            }
            throw Failure(description: "the node answered \(status): \(String(decoding: errorBody, as: UTF8.self))", status: status)
        }
        return last
    }
}
