import Foundation
import LVDModels
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
