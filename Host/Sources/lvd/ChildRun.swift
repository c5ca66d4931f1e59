import Foundation

/// A run of this executable as a child process (one generation per process, as `lvd compare`
/// and `lvd bench world` do it): standard output and error collected, the outcome in one line.
struct ChildRun {
    var stdout: Data
    var stderr: String
    /// nil when the child exited 0; otherwise why it did not.
    var failure: String?

    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    static func run(_ arguments: [String]) throws -> ChildRun {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: executable)
        child.arguments = arguments
        let out = Pipe(), err = Pipe()
        child.standardOutput = out
        child.standardError = err
        try child.run()
        // Both pipes drain at once so that neither fills and blocks the child.
        final class Box: @unchecked Sendable { var data = Data() }
        let errors = Box()
        let drained = DispatchSemaphore(value: 0)
        DispatchQueue.global().async { errors.data = err.fileHandleForReading.readDataToEndOfFile(); drained.signal() }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        child.waitUntilExit()
        let stderr = String(decoding: errors.data, as: UTF8.self)
        var failure: String?
        if child.terminationReason == .uncaughtSignal {
            failure = "killed by signal \(child.terminationStatus)\(child.terminationStatus == 9 ? " (out of memory?)" : "")"
        } else if child.terminationStatus != 0 {
            failure = "failed: " + (stderr.split(separator: "\n").last { $0.hasPrefix("Error: ") }.map { String($0.dropFirst(7)) } ?? "exit \(child.terminationStatus)")
        }
        return ChildRun(stdout: stdout, stderr: stderr, failure: failure)
    }
}
