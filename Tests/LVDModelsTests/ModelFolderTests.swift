import Foundation
import LVDModels
import LVDRuntime
import XCTest

final class ModelFolderTests: XCTestCase {
    static let configs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/configs/lvd-zs").path

    private var temp: URL!

    override func setUpWithError() throws {
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("lvd-model-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: temp) }

    private func write(_ path: String, _ text: String) throws {
        let url = temp.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    /// A pipeline folder with the committed full-size configs (no weights).
    private func configOnlyFolder() throws {
        try write("model_index.json", """
        {"_class_name": ["lvd_pipeline", "GroundedTextToVideoSDPipeline"], "_diffusers_version": "0.17.0.dev0",
         "unet": ["lvd_unet_3d_condition", "GroundedUNet3DConditionModel"], "text_encoder": ["transformers", "CLIPTextModel"],
         "vae": ["diffusers", "AutoencoderKL"], "safety_checker": [null, null]}
        """)
        for component in ["unet", "text_encoder", "vae"] {
            try write("\(component)/config.json", try String(contentsOfFile: "\(Self.configs)/\(component)/config.json", encoding: .utf8))
        }
    }

    func testConfigOnlyFolderCountsFromTheArchitecture() throws {
        try configOnlyFolder()
        let folder = try ModelFolder(path: temp.path)
        XCTAssertEqual(folder.pipelineClass, "GroundedTextToVideoSDPipeline")
        XCTAssertEqual(folder.components.map(\.name).sorted(), ["text_encoder", "unet", "vae"], "null components are skipped")
        let unet = try XCTUnwrap(try folder.summary(try XCTUnwrap(folder[.unet3d])))
        XCTAssertFalse(unet.fromWeights)
        XCTAssertEqual(unet.parameters, 1_623_793_636)
        XCTAssertEqual(try folder.summary(folder[.clipText]!)?.parameters, 340_387_840)
        XCTAssertEqual(try folder.summary(folder[.vae]!)?.parameters, 83_653_863)
    }

    func testWeightsAreCountedFromHeadersAndLoadStrictly() throws {
        // A small VAE config and fp16 weights made from its own parameter list.
        try write("model_index.json", #"{"_class_name": "TextToVideoSDPipeline", "vae": ["diffusers", "AutoencoderKL"]}"#)
        let config = #"{"block_out_channels": [32, 32], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "layers_per_block": 1}"#
        try write("vae/config.json", config)
        let vae = try AutoencoderKL(try ModelFolder.configuration(AutoencoderKLConfiguration.self, in: temp.path + "/vae"))
        var header: [String] = [], data: [UInt8] = [], offset = 0
        for (key, parameter) in vae.namedParameters() {
            let bytes = parameter.count * 2
            header.append("\"\(key)\": {\"dtype\": \"F16\", \"shape\": \(parameter.shape), \"data_offsets\": [\(offset), \(offset + bytes)]}")
            data += [UInt8](repeating: 0, count: bytes - 2) + (bytes >= 2 ? [0x00, 0x3C] : []) // last element 1.0
            offset += bytes
        }
        let file = SafetensorsTests.build(header: "{" + header.joined(separator: ", ") + "}", data: data)
        try Data(file).write(to: temp.appendingPathComponent("vae/diffusion_pytorch_model.safetensors"))

        let folder = try ModelFolder(path: temp.path)
        let summary = try XCTUnwrap(try folder.summary(folder[.vae]!))
        XCTAssertTrue(summary.fromWeights)
        XCTAssertEqual(summary.parameters, vae.parameterCount)
        XCTAssertEqual(summary.dtypes, ["F16": vae.namedParameters().count])
        try vae.load(from: folder[.vae]!.weightFiles.map { try SafetensorsFile(path: $0) })
        XCTAssertEqual(vae.quantConv.bias?.value?.toArray().last, 1, "fp16 1.0 read back as f32")
    }

    func testBadFoldersNameTheFileAndKey() throws {
        func error(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(error { _ = try ModelFolder(path: temp.path) }.hasSuffix("model_index.json: cannot read (missing?)"))

        try write("model_index.json", #"{"_class_name": "P", "unet": ["diffusers", "UNet9000"]}"#)
        XCTAssertTrue(error { _ = try ModelFolder(path: temp.path) }.contains("model_index.json: unet: unknown class 'UNet9000' (known: "))

        try write("model_index.json", #"{"_class_name": "P", "unet": ["diffusers", "UNet3DConditionModel"]}"#)
        XCTAssertEqual(error { _ = try ModelFolder(path: temp.path) }, "\(temp.path)/unet: component folder 'unet' named by model_index.json is missing")

        try write("unet/config.json", #"{"attention_head_dim": 48}"#)
        let folder = try ModelFolder(path: temp.path)
        XCTAssertEqual(error { _ = try folder.summary(folder[.unet3d]!) },
                       "\(temp.path)/unet/config.json: attention_head_dim: 48 must divide every block's channels [320, 640, 1280, 1280]")
        try write("unet/config.json", #"{"layers_per_block": "two"}"#)
        XCTAssertEqual(error { _ = try folder.summary(folder[.unet3d]!) }, "\(temp.path)/unet/config.json: layers_per_block: wrong type")

        try write("unet/diffusion_pytorch_model.safetensors.index.json", #"{"weight_map": {"conv_in.weight": "part-1.safetensors"}}"#)
        XCTAssertEqual(error { _ = try ModelFolder(path: temp.path) },
                       "\(temp.path)/unet/diffusion_pytorch_model.safetensors.index.json: shard 'part-1.safetensors' is missing")
    }
}

final class TinyPipelineFolderTests: XCTestCase {
    static let pipeline = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/tiny-pipeline").path

    func testWeightHeadersAgreeWithTheArchitectureTheConfigsDescribe() throws {
        let folder = try ModelFolder(path: Self.pipeline)
        XCTAssertEqual(folder.components.map(\.name).sorted(), ["scheduler", "text_encoder", "tokenizer", "unet", "vae"])
        let built: [ModelFolder.Kind: Module] = [
            .unet3d: try UNet3DConditionModel(try ModelFolder.configuration(UNet3DConfiguration.self, in: folder[.unet3d]!.folder)),
            .clipText: try CLIPTextModel(try ModelFolder.configuration(CLIPTextConfiguration.self, in: folder[.clipText]!.folder)),
            .vae: try AutoencoderKL(try ModelFolder.configuration(AutoencoderKLConfiguration.self, in: folder[.vae]!.folder)),
        ]
        for (kind, module) in built {
            let summary = try XCTUnwrap(try folder.summary(folder[kind]!))
            XCTAssertTrue(summary.fromWeights, "\(kind)")
            XCTAssertEqual(summary.dtypes.keys.sorted(), ["F16"], "\(kind)")
            XCTAssertEqual(summary.parameters, module.parameterCount, "\(kind)")
        }
    }

    func testShardedWeightsLoadLikeOneFile() throws {
        let source = Self.pipeline + "/vae"
        let file = try SafetensorsFile(path: source + "/diffusion_pytorch_model.safetensors")
        let names = file.entries.keys.sorted()
        let halves = [Array(names.prefix(names.count / 2)), Array(names.dropFirst(names.count / 2))]
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lvd-shards-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(atPath: source + "/config.json", toPath: folder.appendingPathComponent("config.json").path)
        var weightMap: [String] = []
        for (index, keys) in halves.enumerated() {
            let shard = "diffusion_pytorch_model-0000\(index + 1)-of-00002.safetensors"
            var header: [String] = [], data: [UInt8] = []
            for name in keys {
                let values = try file.tensor(name).toArray()
                header.append("\"\(name)\": {\"dtype\": \"F32\", \"shape\": \(file.entries[name]!.shape), \"data_offsets\": [\(data.count), \(data.count + values.count * 4)]}")
                data += values.flatMap { v in withUnsafeBytes(of: v) { Array($0) } }
                weightMap.append("\"\(name)\": \"\(shard)\"")
            }
            try Data(SafetensorsTests.build(header: "{" + header.joined(separator: ", ") + "}", data: data))
                .write(to: folder.appendingPathComponent(shard))
        }
        try "{\"metadata\": {}, \"weight_map\": {\(weightMap.joined(separator: ", "))}}"
            .write(to: folder.appendingPathComponent("diffusion_pytorch_model.safetensors.index.json"), atomically: true, encoding: .utf8)

        let sharded = try AutoencoderKL.load(folder: folder.path), whole = try AutoencoderKL.load(folder: source)
        let latents = try Noise.randn([1, 4, 4, 4], seed: 9)
        try GradMode.withoutGrad {
            XCTAssertEqual(try sharded.decode(latents).toArray(), try whole.decode(latents).toArray())
        }
    }
}
