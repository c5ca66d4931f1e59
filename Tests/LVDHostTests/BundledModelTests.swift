import Foundation
import LVDFormats
import LVDHost
import LVDWorld
import XCTest

/// The bundled tiny model (Models/tiny, Models/tiny-gligen) as a user meets it: the default
/// `--model`, its own frame and step defaults, drawing what a caption names, the GLIGEN folder
/// for `lvd-gligen`, and clear errors when the folder is missing or broken.
final class BundledModelTests: XCTestCase {
    static let models = TestPaths.repoRoot + "/Models"

    /// Without --model or LVD_MODEL the bundled folder is used with its lvd.json defaults.
    func generate(_ prompt: String, _ extra: [String], into folder: String, environment: [String: String] = [:]) throws -> ProcessResult {
        try lvd(["generate", prompt, "-o", folder] + extra, environment: ["LVD_MODEL": ""].merging(environment) { $1 })
    }

    func run(_ folder: String) throws -> JSONObject {
        try XCTUnwrap(try JSONValue.parse(String(contentsOfFile: folder + "/run.json", encoding: .utf8)).objectValue)
    }

    func detections(_ folder: String) throws -> [[WorldDetector.Detection]] {
        let video = try VideoFrames.readNPY(folder + "/video.npy")
        let detector = WorldDetector(), bytes = video.height * video.width * 3
        return (0..<video.frames).map { detector.detect(video.rgb[($0 * bytes)..<(($0 + 1) * bytes)], width: video.width, height: video.height) }
    }

    func testTheBundledModelIsTheDefaultAndDrawsTheNamedObject() throws {
        let temp = try TempDir()
        let result = try generate("A realistic lively video of a scene with a red ball, grass background", ["--method", "baseline", "--seed", "1"],
                                  into: temp.file("ball"))
        XCTAssertEqual(result.status, 0, result.output)
        let record = try run(temp.file("ball"))
        XCTAssertTrue(record["model"]?.objectValue?["path"]?.stringValue?.hasSuffix("/Models/tiny") ?? false, "\(record["model"] ?? .null)")
        XCTAssertEqual(record["frames"], .number(8), "the model folder's lvd.json sets the frames")
        XCTAssertEqual(record["steps"], .number(20))
        XCTAssertEqual(record["width"], .number(64))
        let found = try detections(temp.file("ball"))
        XCTAssertEqual(found.count, 8)
        let red = found.filter { $0.contains { $0.colour == "red" } }.count
        XCTAssertGreaterThanOrEqual(red, 4, "a red object in at least half the frames: \(found)")
    }

    func testLVDGLIGENGetsTheBundledGLIGENFolder() throws {
        let temp = try TempDir()
        let result = try generate("a red ball moving from the left to the right", ["--method", "lvd-gligen", "--steps", "3"], into: temp.file("g"))
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(try run(temp.file("g"))["model"]?.objectValue?["path"]?.stringValue?.hasSuffix("/Models/tiny-gligen") ?? false)
        XCTAssertTrue(result.stderr.contains("grounding the first 1 of 3 steps"), result.stderr)
    }

    func testBothFoldersLoadStrictly() throws {
        for name in ["tiny", "tiny-gligen"] {
            let info = try lvd(["model", "info", Self.models + "/" + name, "--json"])
            XCTAssertEqual(info.status, 0, info.output)
            let object = try XCTUnwrap(try JSONValue.parse(info.stdout).objectValue)
            XCTAssertEqual(object["gligen"], .bool(name == "tiny-gligen"), info.stdout)
        }
        // The weights stay small enough to commit.
        let files = FileManager.default.enumerator(atPath: Self.models)?.allObjects as? [String] ?? []
        let bytes = files.compactMap { try? FileManager.default.attributesOfItem(atPath: Self.models + "/" + $0) }
            .filter { $0[.type] as? FileAttributeType == .typeRegular }.compactMap { $0[.size] as? Int }.reduce(0, +)
        XCTAssertLessThanOrEqual(bytes, 40 << 20)
    }

    func testWordsOutsideTheVocabularyStillGenerate() throws {
        let temp = try TempDir()
        // The offline planner knows no unicorns: the layout comes from a file.
        XCTAssertEqual(try lvd(["plan", "a red ball moving from the left to the right", "-o", temp.file("layout.json")]).status, 0)
        let result = try generate("a purple unicorn zigzagging past a lighthouse",
                                  ["--method", "baseline", "--steps", "2", "--layout", temp.file("layout.json")], into: temp.file("oov"))
        XCTAssertEqual(result.status, 0, result.output)
    }

    func testAMissingOrBrokenModelSaysHowToUseAnother() throws {
        let temp = try TempDir()
        // LVD_MODEL pointing at nothing.
        var result = try generate("a dog", ["--method", "baseline"], into: temp.file("out"), environment: ["LVD_MODEL": temp.file("nowhere")])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains(temp.file("nowhere")) && result.stderr.contains("--model"), result.stderr)
        // A copy with a truncated UNet.
        let copy = temp.file("broken")
        try FileManager.default.copyItem(atPath: Self.models + "/tiny", toPath: copy)
        let weights = copy + "/unet/diffusion_pytorch_model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: weights))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: weights))
        result = try generate("a dog", ["--method", "baseline", "--model", copy], into: temp.file("out"))
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("diffusion_pytorch_model.safetensors") && result.stderr.contains("--model"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("out/video.gif")))
    }
}
