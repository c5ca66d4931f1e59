import Foundation
import XCTest

/// Where things are: the checkout (from this file) and the built products (next to the test
/// bundle, which `swift test` builds together with every product).
enum TestPaths {
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let products: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }()

    static var lvd: String { products + "/lvd" }
    static var sdkInclude: String { repoRoot + "/SDK/include" }
    static var fixtures: String { repoRoot + "/Tests/LVDHostTests/Fixtures" }
    /// ../shared beside the checkout, when present.
    static var shared: String? {
        let path = (repoRoot as NSString).deletingLastPathComponent + "/shared"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var output: String { stdout + stderr }
}

/// Runs a program to completion, collecting both streams (read concurrently: no pipe deadlock).
@discardableResult
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                directory: String? = nil, input: String? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe(), stdin = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try? stdin.fileHandleForWriting.close()
    let errReader = Thread.detachNewThreadWithResult { err.fileHandleForReading.readDataToEndOfFile() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = errReader.wait()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// Runs the built `lvd` with a private config folder and, unless given, no LVD_PLUGIN_PATH.
@discardableResult
func lvd(_ arguments: [String], pluginPath: String? = nil, environment extra: [String: String] = [:],
         directory: String? = nil) throws -> ProcessResult {
    var environment = lvdEnvironment(pluginPath: pluginPath)
    for (key, value) in extra { environment[key] = value }
    return try runProcess(TestPaths.lvd, arguments, environment: environment, directory: directory)
}

/// This process's environment as the tests run `lvd` in it: a private config folder, no
/// LVD_LOG_LEVEL, and LVD_PLUGIN_PATH only when given.
func lvdEnvironment(pluginPath: String? = nil) -> [String: String] {
    var environment = ProcessInfo.processInfo.environment
    environment["XDG_CONFIG_HOME"] = TestConfigHome.path
    environment["LVD_PLUGIN_PATH"] = pluginPath
    environment["LVD_LOG_LEVEL"] = nil
    return environment
}

/// The built `lvd` with `arguments`, set up as `lvd(…)` runs it, not yet started: for tests that
/// interrupt or kill it.
func lvdProcess(_ arguments: [String]) -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: TestPaths.lvd)
    process.arguments = arguments
    process.environment = lvdEnvironment()
    return process
}

/// An empty config home shared by the tests, so a developer's ~/.config/lvd never leaks in.
enum TestConfigHome {
    static let path: String = {
        let dir = NSTemporaryDirectory() + "lvd-test-config-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()
}

/// A temporary folder removed when the value goes away.
final class TempDir {
    let path: String

    init(_ label: String = "lvd-test") throws {
        let base = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        path = base
    }

    func file(_ name: String) -> String { path + "/" + name }

    func write(_ name: String, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: (file(name) as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try text.write(toFile: file(name), atomically: true, encoding: .utf8)
    }

    func subfolder(_ name: String) throws -> String {
        try FileManager.default.createDirectory(atPath: file(name), withIntermediateDirectories: true)
        return file(name)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

enum Fixture {
    /// Compiles Fixtures/fixture_plugin.c with `defines` into `directory/name` using only the
    /// SDK headers, as a third party would.
    @discardableResult
    static func compilePlugin(_ defines: [String] = [], into directory: String, name: String) throws -> String {
        let output = directory + "/" + name
        let result = try runProcess("/usr/bin/env", ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                                                     "-I", TestPaths.sdkInclude] + defines.map { "-D" + $0 }
                                        + [TestPaths.fixtures + "/fixture_plugin.c", "-o", output])
        guard result.status == 0 else { throw TestFailure("cc failed: \(result.output)") }
        return output
    }

    /// Writes `<directory>/<file>` as a manifest.
    static func writeManifest(in directory: String, file: String? = nil, id: String, kind: String = "planner",
                              library: String, abi: String = "1.0", extra: String = "") throws {
        let text = """
        {"id": "\(id)", "kind": "\(kind)", "library": "\(library)", "abi": "\(abi)", "version": "0.0.1"\(extra.isEmpty ? "" : ", " + extra)}
        """
        try text.write(toFile: directory + "/" + (file ?? "\(id).json"), atomically: true, encoding: .utf8)
    }

    /// A folder holding the well-behaved fixture plugin "fixture-ok".
    static func goodPluginFolder(_ temp: TempDir) throws -> String {
        let folder = try temp.subfolder("plugins")
        try compilePlugin(into: folder, name: "libfixture_ok.so")
        try writeManifest(in: folder, id: "fixture-ok", library: "libfixture_ok.so")
        return folder
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension String {
    /// Lines containing `needle`.
    func lines(containing needle: String) -> [Substring] { split(separator: "\n").filter { $0.contains(needle) } }
}

/// A value computed on its own thread.
final class ThreadResult<Value>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var value: Value?

    fileprivate init(_ body: @escaping () -> Value) {
        Thread.detachNewThread { [self] in
            value = body()
            done.signal()
        }
    }

    /// The body's result, once it has run (any number of calls).
    func wait() -> Value {
        done.wait()
        done.signal()
        return value!
    }
}

extension Thread {
    static func detachNewThreadWithResult<Value>(_ body: @escaping () -> Value) -> ThreadResult<Value> { ThreadResult(body) }
}
