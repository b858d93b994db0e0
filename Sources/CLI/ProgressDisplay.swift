import Foundation
import MeshNode

/// Step-by-step progress on stderr: on a terminal, the current step with a spinner and the
/// finished ones ticked; otherwise one plain line a step (logs and pipes stay readable).
final class ProgressDisplay: @unchecked Sendable {
    private let terminal: Bool
    private let lock = NSLock()
    private var current: String?
    private var frame = 0
    private var timer: (any DispatchSourceTimer)?
    private static let frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

    init(terminal: Bool = isatty(STDERR_FILENO) == 1) {
        self.terminal = terminal
        guard terminal else { return }
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now(), repeating: .milliseconds(100))
        timer.setEventHandler { [weak self] in self?.redraw() }
        timer.resume()
        self.timer = timer
    }

    deinit { timer?.cancel() }

    /// The label a step is shown with.
    static func label(_ step: GatewayProgress.Step) -> String {
        switch step {
        case .accepted: return "accepted"
        case .resources: return "resources created"
        case .booting: return "booting"
        case .joined: return "joined the mesh"
        case .ready: return "ready"
        case .cleanup: return "cleaning up"
        case .deleted: return "deleted"
        case .failed: return "failed"
        }
    }

    /// Shows `event`: a new current step (the previous one is done).
    func show(_ event: GatewayProgress) {
        let text = "\(Self.label(event.step)): \(event.message)"
        lock.withLock {
            guard terminal else {
                write(text + "\n")
                return
            }
            if let current { write("\r\u{1B}[2K✓ \(current)\n") }
            current = text
            drawLocked()
        }
    }

    /// Ends the display: the current step ticked (or crossed when `success` is false).
    func finish(success: Bool) {
        timer?.cancel()
        timer = nil
        lock.withLock {
            if terminal, let current { write("\r\u{1B}[2K\(success ? "✓" : "✗") \(current)\n") }
            current = nil
        }
    }

    private func redraw() {
        lock.withLock {
            frame += 1
            drawLocked()
        }
    }

    private func drawLocked() {
        guard let current else { return }
        write("\r\u{1B}[2K\(Self.frames[frame % Self.frames.count]) \(current)")
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
