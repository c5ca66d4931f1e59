import Foundation
import LVDFormats
import LVDRuntime
import XCTest

/// The tiny random diffusers models and their recorded outputs, made by
///     .venv/bin/python Scripts/make_fixtures.py Tests/LVDModelsTests/Fixtures
enum TinyFixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// One part of tiny-outputs.json ("unet", "text_encoder", …).
    static func outputs(_ part: String) throws -> JSONObject {
        let data = try Data(contentsOf: folder.appendingPathComponent("tiny-outputs.json"))
        return try JSONValue.parse(bytes: [UInt8](data)).objectValue![part]!.objectValue!
    }

    static func floats(_ value: JSONValue) -> [Float] { value.arrayValue!.compactMap { $0.numberValue.map(Float.init) } }

    /// A recorded {"shape", "values"} as a tensor.
    static func tensor(_ value: JSONValue) throws -> Tensor {
        let object = value.objectValue!
        return try Tensor(floats(object["values"]!), shape: object["shape"]!.arrayValue!.compactMap(\.intValue))
    }
}

/// Our values against diffusers': 1e-4 absolute + 1e-3 relative (a deep network of random weights
/// in fp32 on both sides); a non-finite value always fails.
func assertMatchesDiffusers(_ ours: [Float], _ theirs: [Float], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(ours.count, theirs.count, label, file: file, line: line)
    var worst: Float = 0, at = 0
    for i in ours.indices where i < theirs.count {
        let error = Swift.abs(ours[i] - theirs[i]) - 1e-3 * Swift.abs(theirs[i])
        if error > worst || !ours[i].isFinite { worst = ours[i].isFinite ? error : .infinity; at = i }
    }
    guard !ours.isEmpty, !theirs.isEmpty else { return }
    XCTAssertLessThanOrEqual(worst, 1e-4, "\(label): element \(at) is \(ours[at]), diffusers \(theirs[at])", file: file, line: line)
}
