import Dispatch

/// What `HTTPClient.stream(_:)` yields: the response head once, then the body as it arrives.
public enum HTTPStreamPart: Sendable {
    /// Status and headers, before any body (the response's `body` is empty).
    case head(HTTPResponse)
    case body([UInt8])
}

extension HTTPClient {
    /// `perform(_:)` for async code: the blocking transfer runs on a Dispatch thread, not on the
    /// cooperative pool, and stops (with `CurlError.cancelled`) when the task is cancelled.
    public func send(_ request: HTTPRequest) async throws(CurlError) -> HTTPResponse {
        let cancellation = CurlCancellation()
        let result: Result<HTTPResponse, CurlError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    do throws(CurlError) {
                        continuation.resume(returning: .success(try self.perform(request, onBody: nil, cancellation: cancellation)))
                    } catch {
                        continuation.resume(returning: .failure(error))
                    }
                }
            }
        } onCancel: {
            cancellation.cancel()
        }
        return try result.get()
    }

    /// Streams a response (for `logs -f` and other long responses): first `.head`, then `.body`
    /// chunks until the server ends the body. With no timeout on the request, none applies (the
    /// client's default is for whole exchanges). Ending the iteration stops the transfer.
    public func stream(_ request: HTTPRequest) -> AsyncThrowingStream<HTTPStreamPart, any Error> {
        var unlimited = self
        if request.timeout == nil { unlimited.timeout = nil }
        let client = unlimited
        let cancellation = CurlCancellation()
        let (stream, continuation) = AsyncThrowingStream<HTTPStreamPart, any Error>.makeStream()
        continuation.onTermination = { _ in cancellation.cancel() }
        DispatchQueue.global().async {
            var sentHead = false
            do throws(CurlError) {
                let head = try client.perform(request, onBody: { status, chunk in
                    if !sentHead {
                        sentHead = true
                        continuation.yield(.head(HTTPResponse(status: status)))
                    }
                    if case .terminated = continuation.yield(.body(chunk)) { return false }
                    return true
                }, cancellation: cancellation)
                if !sentHead { continuation.yield(.head(head)) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        return stream
    }
}
