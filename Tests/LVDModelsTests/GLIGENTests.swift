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

/// GLIGEN inside the UNet: invariants on a gated tiny UNet with random weights.
final class GroundedUNetTests: XCTestCase {
    func tinyGated() throws -> UNet3DConditionModel {
        var config = UNet3DConfiguration()
        config.blockOutChannels = [16, 32]
        config.downBlockTypes = ["CrossAttnDownBlock3D", "DownBlock3D"]
        config.upBlockTypes = ["UpBlock3D", "CrossAttnUpBlock3D"]
        config.layersPerBlock = 1
        config.attentionHeadDim = 8
        config.crossAttentionDim = 16
        config.normNumGroups = 8
        config.attentionType = "gated"
        let unet = try UNet3DConditionModel(config)
        try unet.randomizeParameters(seed: 3, scale: 0.2)
        for (key, parameter) in unet.namedParameters() where key.hasSuffix("alpha_attn") || key.hasSuffix("alpha_dense") {
            parameter.value = Tensor.scalar(0.7)
        }
        return unet
    }

    func testGroundingChangesTheOutputAndClosedGatesAreTheIdentity() throws {
        let unet = try tinyGated()
        let latents = try Noise.randn([1, 4, 2, 4, 4], seed: 1), context = try Noise.randn([1, 8, 16], seed: 2)
        var masks = [Float](repeating: 0, count: 2 * 30)
        masks[0] = 1
        masks[30] = 1
        let grounding = Grounding(boxes: try Noise.randn([2, 30, 4], seed: 3), masks: try Tensor(masks, shape: [2, 30]),
                                  embeddings: try Noise.randn([2, 30, 16], seed: 4))
        try GradMode.withoutGrad {
            let plain = try unet(latents, timestep: 400, context: context).sample.toArray()
            let grounded = try unet(latents, timestep: 400, context: context, grounding: grounding).sample.toArray()
            XCTAssertGreaterThan(zip(plain, grounded).map { Swift.abs($0 - $1) }.max()!, 1e-3, "the fusers act")
            // tanh(0) = 0: with every gate closed, grounding changes nothing, to the bit.
            for (key, parameter) in unet.namedParameters() where key.hasSuffix("alpha_attn") || key.hasSuffix("alpha_dense") {
                parameter.value = Tensor.scalar(0)
            }
            XCTAssertEqual(try unet(latents, timestep: 400, context: context, grounding: grounding).sample.toArray(), plain)
        }
    }

    func testMaskedSlotsUseTheNullFeatures() throws {
        // A slot with mask 0 gives the same token whatever its box and phrase (METHODS.md §10.4).
        let net = try tinyGated().positionNet!
        let masks = try Tensor([0, 0], shape: [1, 2])
        let a = try net(boxes: Noise.randn([1, 2, 4], seed: 5), masks: masks, embeddings: Noise.randn([1, 2, 16], seed: 6)).toArray()
        let b = try net(boxes: Noise.randn([1, 2, 4], seed: 7), masks: masks, embeddings: Noise.randn([1, 2, 16], seed: 8)).toArray()
        XCTAssertEqual(a, b)
    }
}
