import Foundation
import LVDFormats
import LVDModels
import LVDRuntime
import XCTest

/// The full-size models built from the real config.json files (copies of the LVD-GLIGEN
/// Zeroscope folder's, in Fixtures/configs) without weights, against the key → shape lists
/// diffusers / transformers produce for the same configs (Fixtures/keys, made by
///     .venv/bin/python Scripts/dump_model_keys.py ../shared/data/text-to-video-lvd-zs Tests/LVDModelsTests/Fixtures/keys)
/// and the figures of the models issue.
final class ArchitectureTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func config<T: Decodable>(_ component: String, as _: T.Type) throws -> T {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("configs/lvd-zs/\(component)/config.json"))
        return try JSONDecoder().decode(T.self, from: data)
    }

    /// Reference key → shape, and the parameter total.
    func reference(_ name: String) throws -> (keys: [String: [Int]], parameters: Int) {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("keys/\(name).json"))
        let root = try JSONValue.parse(bytes: [UInt8](data)).objectValue!
        var keys: [String: [Int]] = [:]
        for (key, shape) in root["keys"]!.objectValue! { keys[key] = shape.arrayValue!.compactMap(\.intValue) }
        return (keys, root["parameters"]!.intValue!)
    }

    func shapes(_ module: Module, dropping prefix: String = "") -> [String: [Int]] {
        var result: [String: [Int]] = [:]
        for (key, parameter) in module.namedParameters() {
            result[key.hasPrefix(prefix) ? String(key.dropFirst(prefix.count)) : key] = parameter.shape
        }
        return result
    }

    func assertSameKeys(_ ours: [String: [Int]], _ theirs: [String: [Int]], file: StaticString = #filePath, line: UInt = #line) {
        let missing = Set(theirs.keys).subtracting(ours.keys).sorted(), extra = Set(ours.keys).subtracting(theirs.keys).sorted()
        XCTAssertTrue(missing.isEmpty, "missing \(missing.count): \(missing.prefix(5))", file: file, line: line)
        XCTAssertTrue(extra.isEmpty, "extra \(extra.count): \(extra.prefix(5))", file: file, line: line)
        for (key, shape) in theirs where ours[key] != nil && ours[key] != shape {
            XCTFail("\(key): shape \(ours[key]!), diffusers \(shape)", file: file, line: line)
        }
    }

    func testUNet3DMatchesDiffusers() throws {
        var config = try self.config("unet", as: UNet3DConfiguration.self)
        XCTAssertEqual(config.attentionType, "gated", "the lvd-zs folder is a GLIGEN checkpoint")
        config.attentionType = "default"
        let unet = try UNet3DConditionModel(config)
        let (keys, parameters) = try reference("unet")
        assertSameKeys(shapes(unet), keys)
        XCTAssertEqual(unet.namedParameters().count, 1_480)
        XCTAssertEqual(unet.parameterCount, 1_411_233_860)
        XCTAssertEqual(parameters, 1_411_233_860)
    }

    func testGLIGENAddsPositionNetAndSixteenFusers() throws {
        let config = try self.config("unet", as: UNet3DConfiguration.self)
        let unet = try UNet3DConditionModel(config)
        let all = unet.namedParameters()
        XCTAssertEqual(all.count, 1_760)
        XCTAssertEqual(unet.parameterCount, 1_623_793_636)
        let grounding = all.filter { $0.key.hasPrefix("position_net.") || $0.key.contains(".fuser.") }
        XCTAssertEqual(grounding.count, 280)
        XCTAssertEqual(grounding.reduce(0) { $0 + $1.parameter.count }, 212_559_776)
        let fusers = Set(grounding.compactMap { entry in entry.key.range(of: ".fuser.").map { String(entry.key[..<$0.lowerBound]) } })
        XCTAssertEqual(fusers.count, 16)
        XCTAssertFalse(fusers.contains { $0.contains("temp_attentions") || $0.hasPrefix("transformer_in") }, "no fuser in temporal transformers")
        let shape = Dictionary(uniqueKeysWithValues: all.map { ($0.key, $0.parameter.shape) })
        // METHODS.md §10.1
        XCTAssertEqual(shape["position_net.linears.0.weight"], [512, 1088])
        XCTAssertEqual(shape["position_net.linears.2.weight"], [512, 512])
        XCTAssertEqual(shape["position_net.linears.4.weight"], [1024, 512])
        XCTAssertEqual(shape["position_net.null_positive_feature"], [1024])
        XCTAssertEqual(shape["position_net.null_position_feature"], [64])
        let fuser = "down_blocks.0.attentions.0.transformer_blocks.0.fuser."
        XCTAssertEqual(shape[fuser + "linear.weight"], [320, 1024])
        XCTAssertEqual(shape[fuser + "attn.to_q.weight"], [320, 320])
        XCTAssertNil(shape[fuser + "attn.to_q.bias"])
        XCTAssertEqual(shape[fuser + "ff.net.0.proj.weight"], [2560, 320])
        XCTAssertEqual(shape[fuser + "ff.net.2.weight"], [320, 1280])
        XCTAssertEqual(shape[fuser + "alpha_attn"], [])
        XCTAssertEqual(shape[fuser + "alpha_dense"], [])
        // Without the grounding keys, exactly the base UNet.
        let base = try reference("unet").keys
        assertSameKeys(Dictionary(uniqueKeysWithValues: all.filter { !$0.key.hasPrefix("position_net.") && !$0.key.contains(".fuser.") }
                                                            .map { ($0.key, $0.parameter.shape) }), base)
    }

    func testCLIPTextModelMatchesTransformers() throws {
        let model = try CLIPTextModel(try config("text_encoder", as: CLIPTextConfiguration.self))
        XCTAssertEqual(model.configuration.numHiddenLayers, 23)
        // This transformers version saves without the "text_model." prefix; checkpoints have either.
        let ours = shapes(model, dropping: "text_model.")
        var theirs: [String: [Int]] = [:]
        for (key, shape) in try reference("text_encoder").keys where !key.hasSuffix("position_ids") {
            theirs[key.hasPrefix("text_model.") ? String(key.dropFirst("text_model.".count)) : key] = shape
        }
        assertSameKeys(ours, theirs)
        XCTAssertEqual(model.parameterCount, 340_387_840)
    }

    func testAutoencoderKLMatchesDiffusers() throws {
        let vae = try AutoencoderKL(try config("vae", as: AutoencoderKLConfiguration.self))
        assertSameKeys(shapes(vae), try reference("vae").keys)
        XCTAssertEqual(vae.parameterCount, 83_653_863)
        XCTAssertEqual(vae.configuration.scalingFactor, 0.18215)
    }

    func testConfigurationErrorsNameTheKeyAndValue() throws {
        func unetError(_ change: (inout UNet3DConfiguration) -> Void) -> String {
            var config = UNet3DConfiguration()
            change(&config)
            do { _ = try UNet3DConditionModel(config); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(unetError { $0.downBlockTypes[1] = "SpiralBlock3D" }, "down_block_types: unknown block type 'SpiralBlock3D' (CrossAttnDownBlock3D, DownBlock3D)")
        XCTAssertEqual(unetError { $0.attentionHeadDim = 48 }, "attention_head_dim: 48 must divide every block's channels [320, 640, 1280, 1280]")
        XCTAssertEqual(unetError { $0.attentionType = "fancy" }, "attention_type: must be \"default\" or \"gated\", got \"fancy\"")
        XCTAssertEqual(unetError { $0.upBlockTypes.removeLast() }, "down_block_types: down (4) and up (3) block lists must match block_out_channels (4)")
        XCTAssertEqual(unetError { $0.normEps = 0 }, "norm_eps: must be in (0, 1), got 0.0")
        var clip = CLIPTextConfiguration()
        clip.numAttentionHeads = 7
        XCTAssertThrowsError(try CLIPTextModel(clip)) { XCTAssertEqual("\($0)", "num_attention_heads: 7 must divide hidden_size 1024") }
        var vae = AutoencoderKLConfiguration()
        vae.blockOutChannels = [128, 250]
        XCTAssertThrowsError(try AutoencoderKL(vae)) { XCTAssertTrue("\($0)".hasPrefix("block_out_channels: must be positive multiples")) }
        let newer = try JSONDecoder().decode(AutoencoderKLConfiguration.self, from: Data(#"{"mid_block_add_attention": false}"#.utf8))
        XCTAssertThrowsError(try AutoencoderKL(newer)) { XCTAssertEqual("\($0)", "mid_block_add_attention: mid_block_add_attention = false is not supported") }
    }
}

/// Inference runs the feed-forward in blocks of rows and linear layers with the bias folded
/// into the GEMM; both must give what the recorded (tape) path gives.
final class InferencePathTests: XCTestCase {
    func testChunkedFeedForwardEqualsTheWholeProduct() throws {
        let ff = FeedForward(64)
        try ff.randomizeParameters(seed: 5, scale: 0.2)
        // 2 × 2600 rows of width 64: hidden 512 → with 2M-element blocks, blocks of 4096 rows,
        // the last one partial.
        let elements = FeedForward.chunkElements
        FeedForward.chunkElements = 2 << 20
        defer { FeedForward.chunkElements = elements }
        let x = try Noise.randn([2, 2600, 64], seed: 6)
        let blocked = try GradMode.withoutGrad { try ff(x) }
        let whole = try ff(x.detached().requiringGrad())
        XCTAssertTrue(whole.requiresGrad, "the reference ran on the tape, not the blocked path")
        XCTAssertEqual(blocked.shape, [2, 2600, 64])
        let (a, b) = (try blocked.toArray(), try whole.toArray())
        XCTAssertLessThan(zip(a, b).map { Swift.abs($0 - $1) }.max()!, 1e-5)
    }

    func testLinearWithFoldedBiasEqualsProductPlusBias() throws {
        let x = try Noise.randn([3, 7, 5], seed: 1), w = try Noise.randn([4, 5], seed: 2), b = try Noise.randn([4], seed: 3)
        let folded = try GradMode.withoutGrad { try x.linear(w, bias: b) }.toArray()
        let reference = try (x.matmul(w.transposed(0, 1)) + b).toArray()
        XCTAssertLessThan(zip(folded, reference).map { Swift.abs($0 - $1) }.max()!, 1e-5)
        // Into a block of rows of a larger result.
        let result = try Tensor.zeros([2, 3, 7, 4])
        try x.linear(w, bias: b, into: result.sliced(axis: 0, start: 1, end: 2).reshaped([3, 7, 4]))
        XCTAssertEqual(try result.sliced(axis: 0, start: 1, end: 2).toArray(), folded)
        XCTAssertEqual(Set(try result.sliced(axis: 0, start: 0, end: 1).toArray()), [0], "nothing written outside the block")
        XCTAssertThrowsError(try x.linear(w, bias: b, into: Tensor.zeros([3, 7, 5])))
    }
}
