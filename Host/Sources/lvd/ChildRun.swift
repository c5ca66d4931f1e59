import Foundation
import LVDHost

/// A run of this executable as a child process (one generation per process, as `lvd compare`
/// and `lvd bench world` do it): standard output and error collected, the outcome in one line.
struct ChildRun {
    var stdout: Data
    var stderr: String
    /// nil when the child exited 0; otherwise why it did not.
    var failure: String?

    /// Runs `lvd arguments…` to its end. Each line the child writes to standard error goes to
    /// `line` as it comes (on another thread), for progress; Ctrl-C here is passed on to it.
    static func run(_ arguments: [String], line: (@Sendable (String) -> Void)? = nil) throws -> ChildRun {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: HostPaths.executable)
        child.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment[ParentWatch.environmentKey] = String(getpid())
        child.environment = environment
        let out = Pipe(), err = Pipe()
        child.standardOutput = out
        child.standardError = err
        try child.run()
        InterruptHandler.track(child: child.processIdentifier)
        defer { InterruptHandler.untrack(child: child.processIdentifier) }
        // Both pipes drain at once so that neither fills and blocks the child.
        final class Box: @unchecked Sendable { var data = Data() }
        let errors = Box()
        let drained = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            let handle = err.fileHandleForReading
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                errors.data.append(chunk)
                guard let line else { continue }
                pending.append(chunk)
                while let end = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    line(String(decoding: pending[pending.startIndex..<end], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...end)
                }
            }
            drained.signal()
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        child.waitUntilExit()
        let stderr = String(decoding: errors.data, as: UTF8.self)
        var failure: String?
        if child.terminationReason == .uncaughtSignal {
            failure = "killed by signal \(child.terminationStatus)\(child.terminationStatus == 9 ? " (out of memory?)" : "")"
        } else if child.terminationStatus == 130 {
            failure = "cancelled"
        } else if child.terminationStatus != 0 {
            failure = "failed: " + (stderr.split(separator: "\n").last { $0.hasPrefix("Error: ") }.map { String($0.dropFirst(7)) } ?? "exit \(child.terminationStatus)")
        }
        return ChildRun(stdout: stdout, stderr: stderr, failure: failure)
    }
}

extension ChildRun {
    /// A `line` handler that shows a child's progress ("denoising step 3/40") on `display` and
    /// its warnings and errors, each under `label`; the rest of its log stays in `stderr`.
    static func relay(_ label: String, to display: ProgressLine, warnings: Bool = true) -> @Sendable (String) -> Void {
        { text in
            let words = text.split(separator: " ", omittingEmptySubsequences: true)
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            if words.count >= 3, levels.contains(String(words[1])) {
                // A log line, "<time> <level> <logger>: <metadata> [<module>] <message>": warnings
                // and errors are shown as "<label>: <level>: <message>".
                guard warnings, levels.firstIndex(of: String(words[1]))! >= levels.firstIndex(of: "warning")! else { return }
                let rest = words.dropFirst(2).joined(separator: " ")
                let message = rest.range(of: "] ").map { String(rest[$0.upperBound...]) } ?? rest
                display.message("\(label): \(words[1]): \(message)")
            } else if let last = words.last, let slash = last.firstIndex(of: "/"),
                      let done = Int64(last[..<slash]), let total = Int64(last[last.index(after: slash)...]), words.count >= 2 {
                display.update(done: done, total: total, what: "\(label): " + words.dropLast().joined(separator: " "))
            }
        }
    }

    /// A child `lvd generate … --json` whose denoising steps are shown under `label` — always
    /// (`lvd compare`), or only on a terminal (`onTerminalOnly`: the benchmarks, whose logs would
    /// otherwise get a line per step; the bar is wiped when the video is done) — and, with
    /// `warnings`, its warnings too.
    static func generate(_ arguments: [String], label: String, onTerminalOnly: Bool = false, warnings: Bool = true) throws -> ChildRun {
        let showSteps = !onTerminalOnly || isatty(2) != 0
        let display = ProgressLine(enabled: showSteps)
        let child = try run(arguments + (showSteps ? ["--progress"] : []), line: showSteps || warnings ? relay(label, to: display, warnings: warnings) : nil)
        display.finish(erase: onTerminalOnly)
        return child
    }
}

