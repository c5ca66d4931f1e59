import Foundation
import LVDFormats
import LVDHost
import XCTest

/// The host as users start it: the built `lvd` binary, real manifests, real shared libraries.
final class PluginHostTests: XCTestCase {
    // MARK: In-tree plugins

    func testListShowsEveryInTreePluginFromTheSourceTree() throws {
        let result = try lvd(["plugins", "list"])
        XCTAssertEqual(result.status, 0, result.output)
        let manifests = try FileManager.default.contentsOfDirectory(atPath: TestPaths.repoRoot + "/plugins.d").filter { $0.hasSuffix(".json") }
        XCTAssertFalse(manifests.isEmpty)
        for file in manifests {
            let id = (file as NSString).deletingPathExtension
            let row = result.stdout.lines(containing: id + " ")
            XCTAssertEqual(row.count, 1, "\(id) not listed once:\n\(result.stdout)")
            XCTAssertTrue(row.first?.contains("(source tree)") == true, String(row.first ?? ""))
        }
    }

    func testListJSONNamesOriginsAndSearchPath() throws {
        let result = try lvd(["plugins", "list", "--json"])
        XCTAssertEqual(result.status, 0, result.output)
        let root = try JSONValue.parse(result.stdout).objectValue!
        let plugins = root["plugins"]!.arrayValue!.compactMap(\.objectValue)
        let file = try XCTUnwrap(plugins.first { $0["id"] == .string("file") })
        XCTAssertEqual(file["kind"], .string("planner"))
        XCTAssertEqual(file["origin"], .string("source tree"))
        XCTAssertEqual(file["library"], .string("libLVDPlannerFile.so"))
        let origins = root["search_path"]!.arrayValue!.compactMap { $0.objectValue?["origin"]?.stringValue }
        XCTAssertEqual(origins.first, "user config")
        XCTAssertEqual(origins.last, "source tree")
    }

    func testCheckPassesForEveryInTreePlugin() throws {
        let result = try lvd(["plugins", "check"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.stdout.contains("ok    file (planner"), result.stdout)
        XCTAssertTrue(result.stdout.contains(" 0 failed"), result.stdout)
    }

    func testInfoShowsDescriptorAndParams() throws {
        let result = try lvd(["plugins", "info", "file"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.stdout.contains("file — Layout file 1.0.0 (planner)"), result.stdout)
        XCTAssertTrue(result.stdout.contains("path  string  (required)"), result.stdout)
        let json = try JSONValue.parse(try lvd(["plugins", "info", "file", "--json"]).stdout).objectValue!
        XCTAssertEqual(json["params_schema"]?.objectValue?["required"], .array([.string("path")]))
    }

    func testFilePlannerReadsALayoutAndFillsInThePrompt() throws {
        let temp = try TempDir()
        try temp.write("layout.json", """
        {"keyframes": [[{"id": 0, "name": "red ball", "box": [0, 200, 100, 100]}],
                       [{"id": 0, "name": "red ball", "box": [400, 200, 100, 100]}]], "background": "grass"}
        """)
        let result = try lvd(["plan", "a red ball rolling", "--planner", "file", "--param", "path=\(temp.file("layout.json"))",
                              "-o", temp.file("out.json")])
        XCTAssertEqual(result.status, 0, result.output)
        let layout = try Layout.decode(json: try String(contentsOfFile: temp.file("out.json"), encoding: .utf8), source: "out")
        XCTAssertEqual(layout.prompt, "a red ball rolling")
        XCTAssertEqual(layout.keyframes.map { $0.map(\.box) }, [[[0, 200, 100, 100]], [[400, 200, 100, 100]]])
        XCTAssertEqual(layout.background, "grass")
    }

    func testFilePlannerNamesTheFileAndFieldOfABadLayout() throws {
        let temp = try TempDir()
        try temp.write("bad.json", #"{"keyframes": [[{"id": 0, "name": "ball", "box": [0, 0, -5, 10]}]]}"#)
        let bad = try lvd(["plan", "p", "--planner", "file", "--param", "path=\(temp.file("bad.json"))", "-o", temp.file("out.json")])
        XCTAssertEqual(bad.status, 1)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("layout file \(temp.file("bad.json")): keyframes[0][0].box: width and height must not be negative"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("out.json")), "no output file on failure")

        let missing = try lvd(["plan", "p", "--planner", "file", "--param", "path=/nonexistent/layout.json"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("planner 'file' failed (not-found): layout file /nonexistent/layout.json: no such file"), missing.stderr)
    }

    func testUnknownPlannerListsTheAvailableOnes() throws {
        let result = try lvd(["plan", "p", "--planner", "nope"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("nope: no planner with this id; available: file"), result.stderr)
    }

    // MARK: The out-of-tree C example

    func testCExampleBuiltWithPlainCCLoadsThroughLVDPluginPath() throws {
        let temp = try TempDir()
        let example = TestPaths.repoRoot + "/SDK/examples/c-planner"
        let build = try runProcess("/usr/bin/env", ["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                                                    "-I", TestPaths.sdkInclude, example + "/line_planner.c", "-ljson-c",
                                                    "-o", temp.file("libexample_line.so")])
        XCTAssertEqual(build.status, 0, build.output)
        try FileManager.default.copyItem(atPath: example + "/example-line.json", toPath: temp.file("example-line.json"))

        let list = try lvd(["plugins", "list"], pluginPath: temp.path)
        XCTAssertTrue(list.stdout.lines(containing: "example-line").first?.contains("(LVD_PLUGIN_PATH)") == true, list.stdout)
        let check = try lvd(["plugins", "check", "example-line"], pluginPath: temp.path)
        XCTAssertEqual(check.status, 0, check.output)
        XCTAssertTrue(check.stdout.contains("ok    example-line (planner 1.0.0, ABI 1.0"), check.stdout)

        let plan = try lvd(["plan", "a dog running", "--planner", "example-line", "--param", "from=right", "--param", "to=left",
                            "--param", "size=100"], pluginPath: temp.path)
        XCTAssertEqual(plan.status, 0, plan.output)
        let layout = try Layout.decode(json: plan.stdout, source: "stdout")
        XCTAssertEqual(layout.keyframes.count, 6)
        let xs = layout.keyframes.map { $0[0].box[0] }
        XCTAssertEqual(xs.first, 412)
        XCTAssertEqual(xs.last, 0)
        XCTAssertEqual(xs, xs.sorted(by: >), "moves right to left")
        XCTAssertEqual(layout.keyframes[0][0].name, "a dog running")

        let bad = try lvd(["plan", "a dog", "--planner", "example-line", "--param", "from=up"], pluginPath: temp.path)
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("param 'from' = \"up\" is not one of"), bad.stderr)
    }

    func testCExampleMakefileBuildsAgainstTheHeadersOnly() throws {
        let temp = try TempDir()
        let result = try runProcess("/usr/bin/env", ["make", "-s", "-C", TestPaths.repoRoot + "/SDK/examples/c-planner", "BUILD=\(temp.path)"])
        XCTAssertEqual(result.status, 0, result.output)
        let check = try lvd(["plugins", "check", "example-line"], pluginPath: temp.path)
        XCTAssertEqual(check.status, 0, check.output)
    }

    // MARK: The out-of-tree Swift example

    /// SDK/examples/swift-method built as a user builds it — its own package, the SDK as a path
    /// dependency, `swift build -c release` — and its shipped manifest found through
    /// LVD_PLUGIN_PATH: the method loads, guides (its energy falls) and writes a video.
    func testSwiftExampleBuiltAsItsOwnPackageGuidesThroughLVDGuidance() throws {
        let temp = try TempDir()
        let example = TestPaths.repoRoot + "/SDK/examples/swift-method"
        let build = try runProcess("/usr/bin/env", ["swift", "build", "-c", "release", "--package-path", example,
                                                    "--scratch-path", temp.file(".build")])
        XCTAssertEqual(build.status, 0, String(build.output.suffix(3000)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: example + "/.build"), "the build stays in the scratch folder")
        // The manifest as shipped: its library path is relative to the manifest's folder.
        try FileManager.default.copyItem(atPath: example + "/example-centre.json", toPath: temp.file("example-centre.json"))
        let linked = try runProcess("/usr/bin/env", ["readelf", "-d", temp.file(".build/release/libExampleCentre.so")])
        XCTAssertFalse(linked.stdout.contains("libLVDRuntime"), "a plugin built over the C tables links no runtime: \(linked.stdout)")

        let check = try lvd(["plugins", "check", "example-centre"], pluginPath: temp.path)
        XCTAssertEqual(check.status, 0, check.output)
        XCTAssertTrue(check.stdout.contains("ok    example-centre (method 1.0.0, ABI 1.0"), check.stdout)

        let run = try lvd(["generate", "a red ball moving from the left to the right", "--method", "example-centre",
                           "--model", MethodSamplingTests.pipelinePath, "--frames", "2", "--steps", "2", "--log-level", "info",
                           "-o", temp.file("out")], pluginPath: temp.path)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: temp.file("out/video.gif")))
        let line = try XCTUnwrap(run.stderr.split(separator: "\n").first { $0.contains("guidance: 4 updates") },
                                 "2 steps × max_iter 2: \(run.stderr)")
        let energies = line.components(separatedBy: "energy ").last!.components(separatedBy: " → ").compactMap { Double($0) }
        XCTAssertEqual(energies.count, 2, String(line))
        XCTAssertGreaterThan(energies[0], 0)
        XCTAssertLessThan(energies[1], energies[0], "the centre energy falls: \(line)")

        let bad = try lvd(["generate", "a red ball", "--method", "example-centre", "--param", "max_iter=-1",
                           "--model", MethodSamplingTests.pipelinePath, "-o", temp.file("bad")], pluginPath: temp.path)
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("max_iter"), bad.stderr)
    }

    // MARK: Bad input: one line naming the file and reason, non-zero exit, others still usable

    /// Puts a bad plugin next to the good fixture and checks isolation and the message.
    private func assertIsolatedFailure(_ folder: String, badID: String, expect fragments: [String],
                                       file: StaticString = #filePath, line: UInt = #line) throws {
        let all = try lvd(["plugins", "check", "--plugin-path", folder])
        XCTAssertEqual(all.status, 1, all.output, file: file, line: line)
        let failures = all.stdout.lines(containing: "FAIL")
        XCTAssertEqual(failures.count, 1, all.stdout, file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(failures.first?.contains(fragment) == true, "missing '\(fragment)' in: \(all.stdout)", file: file, line: line)
        }
        XCTAssertTrue(all.stdout.contains("ok    fixture-ok"), all.stdout, file: file, line: line)
        XCTAssertTrue(all.stdout.contains("ok    file"), "in-tree plugins still load: \(all.stdout)", file: file, line: line)

        // The good plugin in the same folder still works end to end.
        let plan = try lvd(["plan", "abcd", "--planner", "fixture-ok", "--plugin-path", folder])
        XCTAssertEqual(plan.status, 0, plan.output, file: file, line: line)
        XCTAssertEqual(try Layout.decode(json: plan.stdout, source: "stdout").keyframes[0][0].box[2], 4, file: file, line: line)

        // Selecting the bad one fails with the same one-line reason.
        let use = try lvd(["plugins", "info", badID, "--plugin-path", folder])
        XCTAssertNotEqual(use.status, 0, file: file, line: line)
        let errorLines = use.stderr.split(separator: "\n")
        XCTAssertEqual(errorLines.count, 1, use.stderr, file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(use.stderr.contains(fragment), "missing '\(fragment)' in: \(use.stderr)", file: file, line: line)
        }
    }

    func testMissingLibrary() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try Fixture.writeManifest(in: folder, id: "bad", library: "libnope.so")
        try assertIsolatedFailure(folder, badID: "bad", expect: [folder + "/bad.json", "library 'libnope.so' not found (looked in: \(folder)/libnope.so"])
    }

    func testFileThatIsNotASharedObject() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try "#!/bin/sh\necho not a library\n".write(toFile: folder + "/libtext.so", atomically: true, encoding: .utf8)
        try Fixture.writeManifest(in: folder, id: "bad", library: "libtext.so")
        try assertIsolatedFailure(folder, badID: "bad", expect: [folder + "/bad.json", folder + "/libtext.so is not a shared object"])
    }

    func testLibraryWithoutEntrySymbol() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try Fixture.compilePlugin(["FIXTURE_NO_ENTRY", #"FIXTURE_ID="bad""#], into: folder, name: "libnoentry.so")
        try Fixture.writeManifest(in: folder, id: "bad", library: "libnoentry.so")
        try assertIsolatedFailure(folder, badID: "bad", expect: [folder + "/bad.json", "exports no lvd_plugin_entry symbol"])
    }

    func testABIMajorMismatchPrintsBothVersions() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try Fixture.compilePlugin(["FIXTURE_ABI_MAJOR=2", #"FIXTURE_ID="bad""#], into: folder, name: "libabi2.so")
        try Fixture.writeManifest(in: folder, id: "bad", library: "libabi2.so")
        try assertIsolatedFailure(folder, badID: "bad", expect: ["was built for ABI 2.0, this host implements 1.0"])
    }

    func testManifestDeclaringAnotherABIMajorIsRefusedBeforeLoading() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try Fixture.writeManifest(in: folder, id: "bad", library: "libfixture_ok.so", abi: "3.1")
        try assertIsolatedFailure(folder, badID: "bad", expect: [folder + "/bad.json", "manifest declares ABI 3.1, this host implements 1.0"])
    }

    func testNewerMinorWithASmallerEntryTable() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try Fixture.compilePlugin(["FIXTURE_SHORT_TABLE", #"FIXTURE_ID="bad""#], into: folder, name: "libshort.so")
        try Fixture.writeManifest(in: folder, id: "bad", library: "libshort.so")
        try assertIsolatedFailure(folder, badID: "bad", expect: ["entry table is 24 bytes but ABI 1.9 requires at least 56"])
    }

    func testManifestThatIsNotJSON() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try #"{"id": "bad", "kind": "planner",, }"#.write(toFile: folder + "/bad.json", atomically: true, encoding: .utf8)
        let check = try lvd(["plugins", "check", "--plugin-path", folder])
        XCTAssertEqual(check.status, 1)
        XCTAssertTrue(check.stdout.contains("FAIL  \(folder)/bad.json: manifest is not valid JSON: line 1, column 33: expected a string key"), check.stdout)
        XCTAssertTrue(check.stdout.contains("ok    fixture-ok"), check.stdout)
        let list = try lvd(["plugins", "list", "--plugin-path", folder])
        XCTAssertEqual(list.status, 0, "listing still works")
        XCTAssertTrue(list.stderr.contains("lvd: warning: \(folder)/bad.json: manifest is not valid JSON"), list.stderr)
        XCTAssertTrue(list.stdout.contains("fixture-ok"))
        // Selecting it names the broken manifest.
        let use = try lvd(["plugins", "info", "bad", "--plugin-path", folder])
        XCTAssertEqual(use.status, 1)
        XCTAssertTrue(use.stderr.contains("its manifest is broken: manifest is not valid JSON"), use.stderr)
    }

    func testManifestWithMissingField() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try #"{"id": "bad", "kind": "planner", "abi": "1.0"}"#.write(toFile: folder + "/bad.json", atomically: true, encoding: .utf8)
        let check = try lvd(["plugins", "check", "--plugin-path", folder])
        XCTAssertEqual(check.status, 1)
        XCTAssertTrue(check.stdout.contains("FAIL  \(folder)/bad.json: missing field 'library'"), check.stdout)
        XCTAssertTrue(check.stdout.contains("ok    fixture-ok"), check.stdout)
    }

    func testManifestWithWrongType() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try #"{"id": "bad", "kind": 3, "library": "x.so", "abi": "1.0"}"#.write(toFile: folder + "/bad.json", atomically: true, encoding: .utf8)
        try #"{"id": "bad2", "kind": "planner", "library": "x.so", "abi": "1.0", "defaults": [1]}"#
            .write(toFile: folder + "/bad2.json", atomically: true, encoding: .utf8)
        let check = try lvd(["plugins", "check", "--plugin-path", folder])
        XCTAssertEqual(check.status, 1)
        XCTAssertTrue(check.stdout.contains("FAIL  \(folder)/bad.json: field 'kind' must be a string, got integer 3"), check.stdout)
        XCTAssertTrue(check.stdout.contains("FAIL  \(folder)/bad2.json: field 'defaults' must be an object, got array"), check.stdout)
        XCTAssertTrue(check.stdout.contains("ok    fixture-ok"), check.stdout)
    }

    func testManifestDefaultsAreCheckedAgainstTheSchema() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try Fixture.compilePlugin([#"FIXTURE_ID="bad""#], into: folder, name: "libbaddefaults.so")
        try Fixture.writeManifest(in: folder, id: "bad", library: "libbaddefaults.so", extra: #""defaults": {"steps": "many"}"#)
        try assertIsolatedFailure(folder, badID: "bad", expect: ["field 'defaults': param 'steps' expects an integer, got string \"many\""])
    }

    func testDuplicateIDInOneFolderIsAnErrorAcrossFoldersIsShadowing() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try Fixture.writeManifest(in: folder, file: "zz-copy.json", id: "fixture-ok", library: "libfixture_ok.so")
        let check = try lvd(["plugins", "check", "--plugin-path", folder])
        XCTAssertEqual(check.status, 1)
        XCTAssertTrue(check.stdout.contains("FAIL  \(folder)/zz-copy.json: duplicate id 'fixture-ok': \(folder)/fixture-ok.json in the same folder already declares it"), check.stdout)
        XCTAssertTrue(check.stdout.contains("ok    fixture-ok"), check.stdout)

        // Across folders the first on the search path wins and list reports the shadowed one.
        let user = try temp.subfolder("user")
        try Fixture.compilePlugin([#"FIXTURE_ID="file""#], into: user, name: "libmyfile.so")
        try Fixture.writeManifest(in: user, id: "file", library: "libmyfile.so")
        let list = try lvd(["plugins", "list", "--plugin-path", user])
        XCTAssertEqual(list.status, 0)
        XCTAssertTrue(list.stdout.lines(containing: "file ").first?.contains("libmyfile.so") == true, list.stdout)
        XCTAssertTrue(list.stdout.contains("shadowed: file in \(TestPaths.repoRoot)/plugins.d/file.json (source tree) — \(user)/file.json wins"), list.stdout)
        let json = try JSONValue.parse(try lvd(["plugins", "list", "--json", "--plugin-path", user]).stdout)
        XCTAssertEqual(json.objectValue?["shadowed"]?.arrayValue?.first?.objectValue?["shadowed_by"], .string(user + "/file.json"))
        XCTAssertEqual(try lvd(["plugins", "check", "--plugin-path", user]).status, 0, "shadowing alone is not a failure")
    }

    func testSHA256IsVerifiedBeforeLoading() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try Fixture.compilePlugin([#"FIXTURE_ID="bad""#], into: folder, name: "libsha.so")
        let wrong = String(repeating: "0", count: 64)
        try Fixture.writeManifest(in: folder, id: "bad", library: "libsha.so", extra: #""sha256": "\#(wrong)""#)
        try assertIsolatedFailure(folder, badID: "bad", expect: [folder + "/bad.json", "sha256 mismatch for \(folder)/libsha.so: manifest says \(wrong)"])

        // The right digest (as sha256sum prints it) loads.
        let digest = try runProcess("/usr/bin/env", ["sha256sum", folder + "/libsha.so"]).stdout.prefix(64)
        try Fixture.writeManifest(in: folder, id: "bad", library: "libsha.so", extra: #""sha256": "\#(digest.uppercased())""#)
        let check = try lvd(["plugins", "check", "bad", "--plugin-path", folder])
        XCTAssertEqual(check.status, 0, check.output)
    }

    func testSetupFailureShowsThePluginsMessage() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try Fixture.compilePlugin(["FIXTURE_SETUP_FAILS", #"FIXTURE_ID="bad""#], into: folder, name: "libsetup.so")
        try Fixture.writeManifest(in: folder, id: "bad", library: "libsetup.so")
        try assertIsolatedFailure(folder, badID: "bad", expect: ["setup failed (not-found): licence file /opt/fixture/licence.key is missing"])
    }

    func testDescriptorThatLiesAboutItsKind() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try Fixture.compilePlugin([#"FIXTURE_ID="bad""#, #"FIXTURE_KIND="method""#], into: folder, name: "libkind.so")
        try Fixture.writeManifest(in: folder, id: "bad", library: "libkind.so")
        try assertIsolatedFailure(folder, badID: "bad", expect: ["plugin 'bad' describes itself as kind 'method', the manifest says 'planner'"])
    }

    func testDescriptorClaimingAKindItDoesNotServe() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try Fixture.compilePlugin([#"FIXTURE_ID="bad""#, "FIXTURE_NO_INTERFACE"], into: folder, name: "libnoiface.so")
        try Fixture.writeManifest(in: folder, id: "bad", library: "libnoiface.so")
        try assertIsolatedFailure(folder, badID: "bad", expect: ["plugin 'bad' claims kind 'planner' but serves no lvd.planner/1 interface"])
    }

    func testManifestIDTheLibraryDoesNotProvide() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        try Fixture.writeManifest(in: folder, id: "bad", library: "libfixture_ok.so")
        try assertIsolatedFailure(folder, badID: "bad", expect: ["has no plugin 'bad' (it has: fixture-ok)"])
    }

    func testUnknownAndMistypedParams() throws {
        let temp = try TempDir()
        let folder = try Fixture.goodPluginFolder(temp)
        let cases: [(String, String)] = [
            ("bogus=1", "planner 'fixture-ok': unknown param 'bogus' (known: steps)"),
            ("steps=abc", "planner 'fixture-ok': param 'steps' expects an integer, got 'abc'"),
            ("steps=0", "planner 'fixture-ok': param 'steps' = 0 is below the minimum 1"),
            ("steps", "planner 'fixture-ok': --param 'steps' must be key=value"),
        ]
        for (setting, message) in cases {
            let result = try lvd(["plan", "abcd", "--planner", "fixture-ok", "--param", setting, "--plugin-path", folder])
            XCTAssertEqual(result.status, 1, setting)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(message), "\(setting): \(result.stderr)")
            XCTAssertTrue(result.stdout.isEmpty, result.stdout)
        }
        let ok = try lvd(["plan", "abcd", "--planner", "fixture-ok", "--param", "steps=7", "--plugin-path", folder])
        XCTAssertEqual(ok.status, 0, ok.output)
    }

    func testPluginPathThatDoesNotExistIsReported() throws {
        let result = try lvd(["plugins", "check", "--plugin-path", "/nonexistent/plugins"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stdout.contains("FAIL  /nonexistent/plugins: plugin folder (from --plugin-path) does not exist"), result.stdout)
        XCTAssertTrue(result.stdout.contains("ok    file"), result.stdout)
    }

    func testUserConfigFolderIsSearched() throws {
        let temp = try TempDir()
        let folder = try temp.subfolder("config/lvd/plugins.d")
        try Fixture.compilePlugin(into: folder, name: "libfixture_ok.so")
        try Fixture.writeManifest(in: folder, id: "fixture-ok", library: "libfixture_ok.so")
        let list = try lvd(["plugins", "list"], environment: ["XDG_CONFIG_HOME": temp.file("config")])
        XCTAssertTrue(list.stdout.lines(containing: "fixture-ok").first?.contains("(user config)") == true, list.output)
    }
}

/// Method plugins through "lvd.method/1", loaded into this process as the host loads them.
final class MethodPluginTests: XCTestCase {
    func testMethodPluginGeneratesACheckedVideoTensorWithProgress() throws {
        let temp = try TempDir()
        try Fixture.compilePlugin(["FIXTURE_METHOD", #"FIXTURE_ID="fixture-method""#], into: temp.path, name: "libmethod.so")
        try Fixture.writeManifest(in: temp.path, id: "fixture-method", kind: "method", library: "libmethod.so")

        let check = try lvd(["plugins", "check", "fixture-method", "--plugin-path", temp.path])
        XCTAssertEqual(check.status, 0, check.output)
        XCTAssertTrue(check.stdout.contains("ok    fixture-method (method 0.0.1"), check.stdout)
        let info = try lvd(["plugins", "info", "fixture-method", "--param", "steps=9", "--json", "--plugin-path", temp.path])
        XCTAssertEqual(try JSONValue.parse(info.stdout).objectValue?["params"]?.objectValue?["steps"], .number(9), info.output)
        let badParam = try lvd(["plugins", "info", "fixture-method", "--param", "steps=x", "--plugin-path", temp.path])
        XCTAssertEqual(badParam.status, 1)
        XCTAssertTrue(badParam.stderr.contains("method 'fixture-method': param 'steps' expects an integer, got 'x'"), badParam.stderr)

        let catalog = PluginCatalog(searchPath: .standard(pluginPaths: [temp.path], environment: ["HOME": TestConfigHome.path]))
        let loader = PluginLoader()
        let plugin = try loader.load(catalog.require(id: "fixture-method", kind: .method))
        let method = try MethodInstance(plugin: plugin, params: try plugin.resolveParams([]))

        let steps = ProgressLog()
        HostServices.shared.setProgressHandler { source, done, total, _ in steps.append("\(source) \(done)/\(total)") }
        defer { HostServices.shared.setProgressHandler(nil) }
        let video = try method.generate(MethodRequest(prompt: "p", seed: 1, frames: 3, width: 4, height: 2, steps: 2))
        XCTAssertEqual(video.dtype, .u8)
        XCTAssertEqual(video.shape, [3, 2, 4, 3])
        let pixels = video.toArray()
        XCTAssertEqual(pixels[0...2], [0, 1, 2])
        XCTAssertEqual(pixels[24...26], [1, 2, 3], "frame 1")
        XCTAssertEqual(steps.lines, ["fixture-method 1/2", "fixture-method 2/2"])

        XCTAssertThrowsError(try method.generate(MethodRequest(prompt: "p", seed: 1, frames: 0, width: 4, height: 2, steps: 1))) { error in
            XCTAssertEqual("\(error)", "method 'fixture-method' failed (invalid-argument): frames 0, size 4x2 not supported")
        }
    }
}

final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func append(_ line: String) { lock.lock(); stored.append(line); lock.unlock() }
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return stored }
}

final class ModelInfoCommandTests: XCTestCase {
    func testModelInfoOnTheRealConfigOnlyFolder() throws {
        guard let shared = TestPaths.shared else { throw XCTSkip("../shared is absent") }
        let result = try lvd(["model", "info", shared + "/data/text-to-video-lvd-zs"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.stdout.contains("GroundedTextToVideoSDPipeline"), result.stdout)
        XCTAssertTrue(result.stdout.contains("unet          GroundedUNet3DConditionModel  1,623,793,636  1760"), result.stdout)
        XCTAssertTrue(result.stdout.contains("text_encoder  CLIPTextModel                 340,387,840"), result.stdout)
        XCTAssertTrue(result.stdout.contains("vae           AutoencoderKL                 83,653,863"), result.stdout)
        let missing = try lvd(["model", "info", "/nonexistent/model"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/model/model_index.json: cannot read (missing?)"), missing.stderr)
    }
}

final class BenchCommandTests: XCTestCase {
    func testPeakMemoryParsesEveryPadding() {
        // /proc pads the number after the tab to eight columns.
        XCTAssertEqual(ProcessMemory.peakResidentBytes(status: "VmPeak:\t 1 kB\nVmHWM:\t  102400 kB\n"), 102_400 * 1024)
        XCTAssertEqual(ProcessMemory.peakResidentBytes(status: "VmHWM:\t 6543212 kB\n"), 6_543_212 * 1024)
        XCTAssertEqual(ProcessMemory.peakResidentBytes(status: "VmHWM:\t15066224 kB\n"), 15_066_224 * 1024)
        XCTAssertEqual(ProcessMemory.peakResidentBytes(status: "VmRSS:\t 1 kB\n"), 0)
        XCTAssertGreaterThan(ProcessMemory.peakResidentBytes, 1 << 20, "this process")
    }

    func testUNetBenchReportsTimesAndPeakMemoryForBothPasses() throws {
        let result = try lvd(["bench", "unet", "--config", "tiny", "--frames", "2", "--size", "8x8", "--batch", "1", "--json"])
        XCTAssertEqual(result.status, 0, result.output)
        let rows = try XCTUnwrap(try JSONValue.parse(result.stdout).objectValue?["results"]?.arrayValue?.compactMap(\.objectValue))
        XCTAssertEqual(rows.map { $0["direction"]?.stringValue }, ["forward", "backward-to-input"])
        for row in rows {
            XCTAssertGreaterThan(row["seconds"]?.numberValue ?? 0, 0)
            XCTAssertGreaterThan(row["peak_rss"]?.numberValue ?? 0, Double(1 << 20), "peak RSS read from /proc/self/status")
        }
        let bad = try lvd(["bench", "unet", "--size", "8by8"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--size must be HxW"), bad.stderr)
    }
}

final class ModelInfoWeightsTests: XCTestCase {
    func testModelInfoReadsWeightHeaders() throws {
        let pipeline = TestPaths.repoRoot + "/Tests/LVDModelsTests/Fixtures/tiny-pipeline"
        let result = try lvd(["model", "info", pipeline, "--json"])
        XCTAssertEqual(result.status, 0, result.output)
        let components = try XCTUnwrap(try JSONValue.parse(result.stdout).objectValue?["components"]?.arrayValue?.compactMap(\.objectValue))
        let unet = try XCTUnwrap(components.first { $0["name"] == .string("unet") })
        XCTAssertEqual(unet["from_weights"], .bool(true))
        XCTAssertEqual(unet["dtypes"], .array([.string("F16")]))
        XCTAssertEqual(unet["parameters"]?.intValue, 402_628)
    }
}
