import Foundation
import LVDFormats
import LVDModels
import LVDRuntime
import XCTest

/// CLIPTextModel against transformers on a tiny random model (fp16 weights), made by
///     .venv/bin/python Scripts/make_fixtures.py Tests/LVDModelsTests/Fixtures
/// Tolerance: 1e-4 absolute + 1e-4 relative on every hidden state value.
final class TextEncoderTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func reference() throws -> JSONObject {
        try JSONValue.parse(bytes: [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent("tiny-outputs.json")))).objectValue!["text_encoder"]!.objectValue!
    }

    func assertClose(_ tensor: Tensor, _ expected: JSONValue, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        let object = expected.objectValue!
        XCTAssertEqual(tensor.shape, object["shape"]!.arrayValue!.compactMap(\.intValue), label, file: file, line: line)
        let values = object["values"]!.arrayValue!.compactMap { $0.numberValue.map(Float.init) }
        let worst = zip(tensor.toArray(), values).map { Swift.abs($0 - $1) - 1e-4 * Swift.abs($1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-4, label, file: file, line: line)
    }

    func testMatchesTransformers() throws {
        let folder = Self.fixtures.appendingPathComponent("tiny-pipeline").path
        let reference = try reference()
        let ids = reference["ids"]!.arrayValue!.map { $0.arrayValue!.compactMap(\.intValue) }
        // Our tokenizer gives the ids the fixture recorded.
        let tokenizer = try CLIPTokenizer(folder: folder + "/tokenizer")
        XCTAssertEqual(reference["prompts"]!.arrayValue!.map { tokenizer.encode($0.stringValue!).ids }, ids)

        let model = try CLIPTextModel.load(folder: folder + "/text_encoder")
        let output = try GradMode.withoutGrad { try model(ids) }
        assertClose(output.lastHiddenState, reference["last_hidden_state"]!, "last hidden state")
        assertClose(output.pooled, reference["pooled"]!, "pooled (EOS position, legacy argmax rule)")
    }

    func testCheckpointKeysWithTheTextModelPrefixLoadToo() throws {
        let source = Self.fixtures.appendingPathComponent("tiny-pipeline/text_encoder")
        let file = try SafetensorsFile(path: source.appendingPathComponent("model.safetensors").path)
        // Rewrite the checkpoint with "text_model." keys and an int64 position_ids buffer, as older transformers saved it.
        var header: [String] = [], data: [UInt8] = []
        for name in file.entries.keys.sorted() {
            let values = try file.tensor(name).toArray()
            header.append("\"text_model.\(name)\": {\"dtype\": \"F32\", \"shape\": \(file.entries[name]!.shape), \"data_offsets\": [\(data.count), \(data.count + values.count * 4)]}")
            data += values.flatMap { v in withUnsafeBytes(of: v) { Array($0) } }
        }
        header.append("\"text_model.embeddings.position_ids\": {\"dtype\": \"I64\", \"shape\": [1, 77], \"data_offsets\": [\(data.count), \(data.count + 616)]}")
        data += [UInt8](repeating: 0, count: 616)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lvd-clip-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(at: source.appendingPathComponent("config.json"), to: folder.appendingPathComponent("config.json"))
        try Data(SafetensorsTests.build(header: "{" + header.joined(separator: ", ") + "}", data: data))
            .write(to: folder.appendingPathComponent("model.safetensors"))

        let model = try CLIPTextModel.load(folder: folder.path)
        let ids = try reference()["ids"]!.arrayValue!.map { $0.arrayValue!.compactMap(\.intValue) }
        let output = try GradMode.withoutGrad { try model(ids) }
        assertClose(output.lastHiddenState, try reference()["last_hidden_state"]!, "prefixed checkpoint")
    }

    func testBadInputsAreErrors() throws {
        let model = try CLIPTextModel.load(folder: Self.fixtures.appendingPathComponent("tiny-pipeline/text_encoder").path)
        XCTAssertThrowsError(try model([[1, 2], [1]])) { XCTAssertEqual("\($0)", "clip: needs sequences of one non-zero length") }
        XCTAssertThrowsError(try model([Array(repeating: 1, count: 78)])) { XCTAssertEqual("\($0)", "clip: 78 tokens exceed max_position_embeddings 77") }
        XCTAssertThrowsError(try model([[99_999]])) { XCTAssertTrue("\($0)".contains("index 99999 is outside"), "\($0)") }
    }
}
