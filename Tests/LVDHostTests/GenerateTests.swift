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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestPaths.lvd)
        process.arguments = ["generate", "a dog", "--model", Self.model, "--method", "baseline", "--frames", "4", "--steps", "1000",
                             "-o", temp.file("out")]
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CONFIG_HOME"] = TestConfigHome.path
        process.environment = environment
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
