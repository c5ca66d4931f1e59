import Foundation
import LVDFormats
import LVDModels
import LVDRuntime
import XCTest

/// GLIGEN's PositionNet and gated self-attention fuser against diffusers' own modules
/// (GLIGENTextBoundingboxProjection, GatedSelfAttentionDense) with random weights, made by
///     .venv/bin/python Scripts/make_fixtures.py Tests/LVDModelsTests/Fixtures
/// Tolerance 1e-4 absolute + 1e-4 relative.
final class GLIGENTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    final class Pair: Module {
        @Key("position_net") var positionNet: PositionNet
        @Key("fuser") var fuser: GatedSelfAttentionDense
        override init() {
            super.init()
            positionNet = PositionNet(positiveDim: 24, outputDim: 24)
            fuser = GatedSelfAttentionDense(queryDim: 16, contextDim: 24, heads: 2, headDim: 8)
        }
    }

    func testPositionNetAndFuserMatchDiffusers() throws {
        let pair = Pair()
        try pair.load(from: [try SafetensorsFile(path: Self.fixtures.appendingPathComponent("gligen.safetensors").path)])
        let root = try JSONValue.parse(bytes: [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent("tiny-outputs.json")))).objectValue!
        let reference = root["gligen"]!.objectValue!
        func tensor(_ name: String) throws -> Tensor {
            let object = reference[name]!.objectValue!
            return try Tensor(object["values"]!.arrayValue!.compactMap { $0.numberValue.map(Float.init) },
                              shape: object["shape"]!.arrayValue!.compactMap(\.intValue))
        }
        func assertClose(_ ours: Tensor, _ name: String) throws {
            let theirs = try tensor(name)
            XCTAssertEqual(ours.shape, theirs.shape, name)
            let worst = zip(ours.toArray(), theirs.toArray()).map { Swift.abs($0 - $1) - 1e-4 * Swift.abs($1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 1e-4, name)
        }
        try GradMode.withoutGrad {
            let objects = try pair.positionNet(boxes: tensor("boxes"), masks: tensor("masks"), embeddings: tensor("embeddings"))
            try assertClose(objects, "objects")
            try assertClose(try pair.fuser(tensor("visual"), objects: objects), "fused")
        }
    }

    func testFourierFeaturesMatchTheSpecTestVector() throws {
        // METHODS.md §10.4: four([0.1, 0.2, 0.5, 0.6]).
        let features = try PositionNet.fourierFeatures([0.1, 0.2, 0.5, 0.6])
        XCTAssertEqual(features.count, 64)
        let head: [Float] = [0.099833, 0.198669, 0.479426, 0.564642, 0.995004, 0.980067, 0.877583, 0.825336,
                             0.176892, 0.348205, 0.776530, 0.875741, 0.984230, 0.937418, 0.630080, 0.482782]
        let tail: [Float] = [-0.612937, -0.968602, 0.156620, 0.729123, 0.790132, 0.248617, -0.987659, -0.684383]
        for (ours, expected) in zip(features.prefix(16), head) { XCTAssertEqual(ours, expected, accuracy: 2e-6) }
        for (ours, expected) in zip(features.suffix(8), tail) { XCTAssertEqual(ours, expected, accuracy: 2e-6) }
    }
}
