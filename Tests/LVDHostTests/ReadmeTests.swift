import Foundation
import LVDFormats
import LVDHost
import XCTest

/// The README's two set-up commands, so they cannot go stale.
final class ReadmeTests: XCTestCase {
    private func block(_ name: String) throws -> String {
        let readme = try String(contentsOfFile: TestPaths.repoRoot + "/README.md", encoding: .utf8)
        guard let start = readme.range(of: "<!-- \(name) -->"), let end = readme.range(of: "<!-- /\(name) -->") else {
            throw TestFailure("README.md has no \(name) block")
        }
        return readme[start.upperBound..<end.lowerBound].split(separator: "\n")
            .filter { !$0.hasPrefix("```") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            .joined(separator: "\n")
    }

    func testCIRunsTheREADMETestCommand() throws {
        let printed = try runProcess("/bin/bash", [TestPaths.repoRoot + "/.ci/run", "--print-test-command"])
        XCTAssertEqual(printed.status, 0, printed.output)
        XCTAssertEqual(printed.stdout.trimmingCharacters(in: .whitespacesAndNewlines), try block("test-command"))
    }

    /// Runs the main command as a new user would: on a fresh copy of the tracked files (what a
    /// clone has), from nothing. Takes a few minutes (a release build).
    func testMainCommandWorksOnAFreshCopy() throws {
        if ProcessInfo.processInfo.environment["LVD_SKIP_README_TEST"] == "1" {
            throw XCTSkip("LVD_SKIP_README_TEST=1")
        }
        let command = try block("main-command")
        let temp = try TempDir("lvd-readme")
        let copy = temp.file("lvd")
        // Tracked and untracked-but-not-ignored files: the working tree a commit would hold.
        let files = try runProcess("/usr/bin/env", ["git", "-C", TestPaths.repoRoot, "ls-files", "-co", "--exclude-standard", "-z"])
        XCTAssertEqual(files.status, 0, files.output)
        for path in files.stdout.split(separator: "\0").map(String.init) {
            let source = TestPaths.repoRoot + "/" + path, target = copy + "/" + path
            guard FileManager.default.fileExists(atPath: source) || (try? FileManager.default.destinationOfSymbolicLink(atPath: source)) != nil else { continue }
            try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if let link = try? FileManager.default.destinationOfSymbolicLink(atPath: source) {
                try FileManager.default.createSymbolicLink(atPath: target, withDestinationPath: link)
            } else {
                try FileManager.default.copyItem(atPath: source, toPath: target)
            }
        }
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CONFIG_HOME"] = TestConfigHome.path
        environment["LVD_PLUGIN_PATH"] = nil
        let result = try runProcess("/bin/bash", ["-euo", "pipefail", "-c", command], environment: environment, directory: copy)
        XCTAssertEqual(result.status, 0, String(result.output.suffix(4000)))
        // The bundled model, found in the source tree, with its own frame count and size.
        XCTAssertTrue(result.stdout.contains("wrote lvd-output/video.gif"), result.stdout)
        let run = try XCTUnwrap(try JSONValue.parse(String(contentsOfFile: copy + "/lvd-output/run.json", encoding: .utf8)).objectValue)
        XCTAssertEqual(run["model"]?.objectValue?["path"]?.stringValue, copy + "/Models/tiny")
        XCTAssertEqual(run["frames"], .number(8))
        let video = try VideoFrames.readGIF(copy + "/lvd-output/video.gif")
        XCTAssertEqual([video.frames, video.height, video.width], [8, 64, 64])
    }
}
