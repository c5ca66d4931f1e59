import CGIF
import Foundation
import LVDFormats
import XCTest

/// `lvd generate` as a user runs it, on the tiny fixture pipeline.
final class GenerateTests: XCTestCase {
    static let model = TestPaths.repoRoot + "/Tests/LVDModelsTests/Fixtures/tiny-pipeline"

    func generate(_ extra: [String], into folder: String) throws -> ProcessResult {
        try lvd(["generate", "a red ball moving from the left to the right", "--model", Self.model, "--frames", "2",
                 "--steps", "3", "-o", folder] + extra)
    }

    /// (shape, bytes) of a uint8 .npy file.
    func readNPY(_ path: String) throws -> (shape: [Int], bytes: [UInt8]) {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(Array(data[0..<8]), [0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = Int(data[8]) | Int(data[9]) << 8
        XCTAssertEqual((10 + length) % 64, 0, "header padded to 64 bytes")
        let header = String(decoding: data[10..<(10 + length)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{'descr': '|u1', 'fortran_order': False, 'shape': ("), header)
        let inside = header.split(separator: "(")[1].split(separator: ")")[0]
        return (inside.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }, Array(data[(10 + length)...]))
    }

    func testGenerateWritesTheVideoLayoutAndRunRecord() throws {
        let temp = try TempDir()
        let result = try generate(["--method", "lvd", "--seed", "7", "--param", "max_iter=2"], into: temp.file("out"))
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.stderr.contains("denoising step 3/3"), result.stderr)
        let (shape, bytes) = try readNPY(temp.file("out/video.npy"))
        XCTAssertEqual(shape, [2, 16, 16, 3])
        XCTAssertEqual(bytes.count, 2 * 16 * 16 * 3)
        var error: Int32 = 0
        let gif = try XCTUnwrap(DGifOpenFileName(temp.file("out/video.gif"), &error))
        XCTAssertEqual(DGifSlurp(gif), GIF_OK)
        XCTAssertEqual(gif.pointee.ImageCount, 2)
        DGifCloseFile(gif, &error)
        let run = try XCTUnwrap(try JSONValue.parse(String(contentsOfFile: temp.file("out/run.json"), encoding: .utf8)).objectValue)
        XCTAssertEqual(run["method"], .string("lvd"))
        XCTAssertEqual(run["seed"], .number(7))
        XCTAssertEqual(run["params"]?.objectValue?["max_iter"], .number(2))
        XCTAssertEqual(run["params"]?.objectValue?["loss_scale"], .number(5), "defaults recorded too")
        XCTAssertEqual(run["model"]?.objectValue?["config_sha256"]?.stringValue?.count, 64)
        XCTAssertNotNil(run["timings"]?.objectValue?["generate_seconds"]?.numberValue)
        XCTAssertGreaterThan(run["peak_rss_bytes"]?.numberValue ?? 0, 0)
        let layout = try Layout.decode(json: String(contentsOfFile: temp.file("out/layout.json"), encoding: .utf8), source: "layout")
        XCTAssertEqual(layout.keyframes.count, 6)
        XCTAssertTrue(FileManager.default.fileExists(atPath: temp.file("out/layout.gif")))

        // Same inputs, same video; the recorded layout reproduces it through --layout.
        XCTAssertEqual(try generate(["--method", "lvd", "--seed", "7", "--param", "max_iter=2"], into: temp.file("again")).status, 0)
        XCTAssertEqual(try readNPY(temp.file("again/video.npy")).bytes, bytes)
        let replay = try generate(["--method", "lvd", "--seed", "7", "--param", "max_iter=2", "--layout", temp.file("out/layout.json"), "--json"],
                                  into: temp.file("replay"))
        XCTAssertEqual(replay.status, 0, replay.output)
        XCTAssertEqual(try readNPY(temp.file("replay/video.npy")).bytes, bytes)
        XCTAssertEqual(try JSONValue.parse(replay.stdout).objectValue?["planner"], .string("file:\(temp.file("out/layout.json"))"))
    }

    func testBadRequestsAreOneLineErrorsAndWriteNothing() throws {
        let temp = try TempDir()
        for (arguments, needle) in [
            (["--model", "/nonexistent/model"], "/nonexistent/model"),
            (["--method", "no-such-method"], "no-such-method"),
            (["--size", "18x16"], "size 18x16: width and height must be positive multiples of 4"),
            (["--size", "big"], "--size must be WxH"),
            (["--param", "loss_scale=-1"], "loss_scale"),
            (["--layout", temp.file("missing.json")], "missing.json"),
        ] {
            let result = try generate(arguments, into: temp.file("bad"))
            XCTAssertNotEqual(result.status, 0, "\(arguments)")
            XCTAssertTrue(result.stderr.contains(needle), "\(arguments): \(result.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("bad/video.gif")), "\(arguments)")
        }
    }

    func testCtrlCStopsWithoutAVideo() throws {
        let temp = try TempDir()
        let process = lvdProcess(["generate", "a dog", "--model", Self.model, "--method", "baseline", "--frames", "4", "--steps", "1000",
                                  "-o", temp.file("out")])
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = Pipe()
        try process.run()
        // Wait for the first denoising step, then interrupt.
        var seen = ""
        while !seen.contains("denoising step") {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        process.interrupt()
        let rest = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        seen += String(decoding: rest, as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 130, seen)
        XCTAssertTrue(seen.contains("cancelled: nothing was written"), seen)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("out/video.gif")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("out/run.json")))
    }
}

final class CompareTests: XCTestCase {
    /// `lvd compare …` started as a user starts it, its standard error read as it comes.
    final class Running: @unchecked Sendable {
        let process: Process
        private let errors = Pipe(), output = Pipe()
        private let lock = NSLock()
        private var seenText = ""
        private var stdoutData = Data()
        private let done = DispatchGroup()

        init(_ arguments: [String]) throws {
            process = lvdProcess(arguments)
            process.standardError = errors
            process.standardOutput = output
            try process.run()
            done.enter()
            DispatchQueue.global().async { [self] in
                while true {
                    let chunk = errors.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    lock.withLock { seenText += String(decoding: chunk, as: UTF8.self) }
                }
                done.leave()
            }
            done.enter()
            DispatchQueue.global().async { [self] in
                let data = output.fileHandleForReading.readDataToEndOfFile()
                lock.withLock { stdoutData = data }
                done.leave()
            }
        }

        var stderr: String { lock.withLock { seenText } }
        var stdout: String { lock.withLock { String(decoding: stdoutData, as: UTF8.self) } }

        /// Waits (up to a minute) until standard error contains `text`.
        func wait(for text: String) -> Bool {
            let deadline = Date().addingTimeInterval(60)
            while !stderr.contains(text) && Date() < deadline && process.isRunning { usleep(20_000) }
            return stderr.contains(text)
        }

        func finish() {
            process.waitUntilExit()
            done.wait()
        }
    }

    /// `lvd generate` processes whose command line contains `text` (a run's children, by its folder).
    static func processes(containing text: String) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), pid != getpid(),
                  let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard arguments.first?.hasSuffix("/lvd") == true, arguments.dropFirst().first == "generate" else { return nil }
            return arguments.contains { $0.contains(text) } ? pid : nil
        }
    }

    /// Ctrl-C reaches the method running in its child process (its own process group, so a
    /// terminal's Ctrl-C does not): it stops after its step and writes nothing; the finished
    /// method's video and the side-by-side GIF of what finished are kept; progress is relayed.
    func testCtrlCStopsTheRunningMethodAndKeepsTheFinishedOnes() throws {
        let temp = try TempDir()
        let run = try Running(["compare", "a red ball moving from the left to the right", "--methods", "baseline,lvd,boxdiff",
                               "--model", GenerateTests.model, "--frames", "2", "--steps", "200", "-o", temp.file("cmp"), "--json"])
        XCTAssertTrue(run.wait(for: "lvd: denoising step 2/200"), run.stderr)
        XCTAssertTrue(run.stderr.contains("baseline: denoising step 200/200\nbaseline: ok"), run.stderr)
        run.process.interrupt()
        run.finish()
        XCTAssertEqual(run.process.terminationStatus, 1, run.stderr)
        XCTAssertFalse(run.stderr.contains("lvd: denoising step 200/200"), "lvd stopped after its step: \(run.stderr)")
        XCTAssertFalse(run.stderr.contains("boxdiff: generating"), "nothing starts after Ctrl-C")
        let rows = try XCTUnwrap(try JSONValue.parse(run.stdout).arrayValue?.compactMap(\.objectValue), run.stdout)
        XCTAssertEqual(rows.map { $0["method"]?.stringValue ?? "" }, ["baseline", "lvd"])
        XCTAssertEqual(rows.map { $0["status"]?.stringValue ?? "" }, ["ok", "cancelled"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: temp.file("cmp/baseline/video.npy")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("cmp/lvd/video.npy")))
        XCTAssertTrue(FileManager.default.fileExists(atPath: temp.file("cmp/compare.gif")))
        XCTAssertEqual(Self.processes(containing: temp.path), [], "no method left running")
    }

    /// Each method's steps and warnings reach the user under the method's name; its info log
    /// (read for the energy column) does not.
    func testCompareRelaysEachMethodsProgressAndWarnings() throws {
        let temp = try TempDir()
        try #"{"format": "lvd.layout/1", "prompt": "a red ball", "canvas": {"width": 512, "height": 512}, "keyframes": [[], []], "background": "grass"}"#
            .write(toFile: temp.file("empty.json"), atomically: true, encoding: .utf8)
        let result = try lvd(["compare", "a red ball", "--layout", temp.file("empty.json"), "--methods", "baseline,lvd",
                              "--model", GenerateTests.model, "--frames", "2", "--steps", "2", "-o", temp.file("cmp")])
        XCTAssertEqual(result.status, 0, result.output)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.filter { $0.contains("denoising step") },
                       ["baseline: denoising step 1/2", "baseline: denoising step 2/2", "lvd: denoising step 1/2", "lvd: denoising step 2/2"])
        XCTAssertEqual(lines.filter { $0.contains("warning") }, ["lvd: warning: the layout has no objects: sampling without guidance"])
        XCTAssertFalse(result.stderr.contains("generation prompt"), "info lines stay out: \(result.stderr)")
    }

    /// A compare killed with -9 cannot pass anything on: its running child notices it is gone
    /// and stops after its step instead of running on unobserved.
    func testAChildStopsWhenCompareIsKilled() throws {
        let temp = try TempDir()
        let run = try Running(["compare", "a red ball", "--methods", "baseline", "--model", GenerateTests.model,
                               "--frames", "2", "--steps", "1000", "-o", temp.file("cmp")])
        XCTAssertTrue(run.wait(for: "baseline: denoising step 1/1000"), run.stderr)
        let children = Self.processes(containing: temp.path)
        XCTAssertEqual(children.count, 1, "one child generates")
        kill(run.process.processIdentifier, SIGKILL)
        run.finish()
        let deadline = Date().addingTimeInterval(30)
        while !Self.processes(containing: temp.path).isEmpty && Date() < deadline { usleep(50_000) }
        XCTAssertEqual(Self.processes(containing: temp.path), [], "the orphaned child stopped")
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("cmp/baseline/video.npy")))
    }

    /// The watch itself: a generation whose LVD_PARENT_PID names a parent that dies stops after
    /// its step, says why and writes nothing (its output goes to files here, so nothing but the
    /// watch can stop it).
    func testAGenerationStopsWhenTheParentNamedInItsEnvironmentDies() throws {
        let temp = try TempDir()
        let command = "LVD_PARENT_PID=$$ XDG_CONFIG_HOME='\(TestConfigHome.path)' '\(TestPaths.lvd)' generate 'a red ball' --method baseline "
            + "--model '\(GenerateTests.model)' --frames 2 --steps 1000 -o '\(temp.file("out"))' > '\(temp.file("log"))' 2>&1 & wait"
        let parent = Process()
        parent.executableURL = URL(fileURLWithPath: "/bin/sh")
        parent.arguments = ["-c", command]
        try parent.run()
        let deadline = Date().addingTimeInterval(60)
        func log() -> String { (try? String(contentsOfFile: temp.file("log"), encoding: .utf8)) ?? "" }
        while !log().contains("denoising step 2/1000") && Date() < deadline { usleep(20_000) }
        XCTAssertEqual(Self.processes(containing: temp.path).count, 1, log())
        kill(parent.processIdentifier, SIGKILL)
        parent.waitUntilExit()
        while !Self.processes(containing: temp.path).isEmpty && Date() < deadline { usleep(50_000) }
        XCTAssertEqual(Self.processes(containing: temp.path), [], "the generation stopped")
        XCTAssertTrue(log().contains("lvd: the lvd that started this one (pid \(parent.processIdentifier)) is gone: stopping after the current step"), log())
        XCTAssertTrue(log().contains("cancelled: nothing was written"), log())
        XCTAssertFalse(log().contains("denoising step 1000/1000"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("out/video.npy")))

        // A variable naming another process than the parent (inherited from further up, as a
        // plugin's own lvd would get it) is not this run's: it generates to the end.
        let unrelated = try lvd(["generate", "a red ball", "--method", "baseline", "--model", GenerateTests.model, "--frames", "2",
                                 "--steps", "2", "-o", temp.file("other")], environment: ["LVD_PARENT_PID": "1"])
        XCTAssertEqual(unrelated.status, 0, unrelated.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: temp.file("other/video.npy")))
    }

    func testCompareRunsEachMethodApartAndReportsFailures() throws {
        let temp = try TempDir()
        let result = try lvd(["compare", "a red ball moving from the left to the right", "--methods", "baseline,lvd,no-such-method",
                              "--model", GenerateTests.model, "--frames", "2", "--steps", "2", "--overlay", "--param", "lvd.max_iter=1",
                              "-o", temp.file("cmp"), "--json"])
        XCTAssertEqual(result.status, 1, "a failed method makes the exit status non-zero")
        let rows = try XCTUnwrap(try JSONValue.parse(result.stdout).arrayValue?.compactMap(\.objectValue), result.output)
        XCTAssertEqual(rows.map { $0["method"]?.stringValue ?? "" }, ["baseline", "lvd", "no-such-method"])
        XCTAssertEqual(rows[0]["status"], .string("ok"))
        XCTAssertEqual(rows[1]["status"], .string("ok"), "the others finish")
        XCTAssertNotNil(rows[1]["energy_before"]?.numberValue, "lvd reports its guidance energy")
        XCTAssertNil(rows[0]["energy_before"], "baseline has none")
        XCTAssertGreaterThan(rows[0]["seconds"]?.numberValue ?? 0, 0)
        XCTAssertTrue(rows[2]["status"]?.stringValue?.hasPrefix("failed: no-such-method") == true, "\(rows[2])")
        // compare.json records the same table with what it ran on.
        let record = try XCTUnwrap(try JSONValue.parse(String(contentsOfFile: temp.file("cmp/compare.json"), encoding: .utf8)).objectValue)
        XCTAssertEqual(record["methods"]?.arrayValue?.compactMap(\.objectValue), rows)
        XCTAssertEqual(record["prompt"], .string("a red ball moving from the left to the right"))
        XCTAssertEqual(record["seed"], .number(0))
        XCTAssertEqual(record["layout"], .string("layout.json"))
        for method in ["baseline", "lvd"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: temp.file("cmp/\(method)/video.npy")))
        }
        var error: Int32 = 0
        let gif = try XCTUnwrap(DGifOpenFileName(temp.file("cmp/compare.gif"), &error))
        defer { DGifCloseFile(gif, &error) }
        XCTAssertEqual(DGifSlurp(gif), GIF_OK)
        XCTAssertEqual(gif.pointee.ImageCount, 2)
        XCTAssertGreaterThan(gif.pointee.SWidth, 3 * 96, "three labelled columns")
        // Every method got the same layout.
        let run = try JSONValue.parse(String(contentsOfFile: temp.file("cmp/lvd/run.json"), encoding: .utf8)).objectValue
        XCTAssertEqual(run?["planner"], .string("file:\(temp.file("cmp/layout.json"))"))
        XCTAssertEqual(run?["params"]?.objectValue?["max_iter"], .number(1), "method.key=value reached its method")
    }
}
