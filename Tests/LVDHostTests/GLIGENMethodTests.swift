import Foundation
import LVDFormats
import LVDHost
import LVDModels
import LVDRuntime
import LVDSDK
import XCTest

/// lvd-gligen on a tiny gated pipeline: the fixture pipeline with its UNet rebuilt with GLIGEN
/// adapters (attention_type "gated") and random weights, written here with our safetensors writer
/// (diffusers' UNet3D has no gated variant to make a fixture with).
final class GLIGENMethodTests: XCTestCase {
    static let gatedPipeline: String = {
        let folder = NSTemporaryDirectory() + "lvd-gated-pipeline-\(getpid())"
        try? FileManager.default.removeItem(atPath: folder)
        try! FileManager.default.copyItem(atPath: MethodSamplingTests.pipelinePath, toPath: folder)
        let configPath = folder + "/unet/config.json"
        var config = try! JSONValue.parse(String(contentsOfFile: configPath, encoding: .utf8)).objectValue!
        config["attention_type"] = .string("gated")
        try! JSONValue.object(config).serialized(pretty: true).write(toFile: configPath, atomically: true, encoding: .utf8)
        let unet = try! UNet3DConditionModel(try! ModelFolder.configuration(UNet3DConfiguration.self, in: folder + "/unet"))
        try! unet.randomizeParameters(seed: 11, scale: 0.2)
        try! FileManager.default.removeItem(atPath: folder + "/unet/diffusion_pytorch_model.safetensors")
        try! SafetensorsFile.write(unet.parameterTensors(), to: folder + "/unet/diffusion_pytorch_model.safetensors")
        return folder
    }()

    func method(_ id: String, _ library: String, _ params: [String] = []) throws -> MethodInstance {
        let temp = try TempDir()
        try Fixture.writeManifest(in: temp.path, id: id, kind: "method", library: TestPaths.products + "/" + library)
        let catalog = PluginCatalog(searchPath: .standard(pluginPaths: [temp.path], environment: ["HOME": TestConfigHome.path]))
        let plugin = try PluginLoader().load(catalog.require(id: id, kind: .method))
        return try MethodInstance(plugin: plugin, params: try plugin.resolveParams(params))
    }

    func load(_ path: String) throws -> OpaquePointer {
        var pipeline: OpaquePointer?
        var error = lvd_error()
        lvd_error_init(&error)
        let status = ModelAPI.table.pointee.pipeline_load(path, &pipeline, &error)
        XCTAssertEqual(status, LVD_OK, withUnsafeBytes(of: error.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
        return try XCTUnwrap(pipeline)
    }

    func testBetaZeroIsBaselineAndGroundingChangesTheVideo() throws {
        let pipeline = try load(Self.gatedPipeline)
        defer { _ = ModelAPI.table.pointee.pipeline_release(pipeline, nil) }
        // The generation prompt equals the caption: no background, the name is in the caption.
        let layout = Layout(prompt: "a red ball", keyframes: (0..<6).map { k in
            [Layout.Object(id: 0, name: "red ball", box: [Double(60 * k), 200, 120, 120])]
        })
        let request = MethodRequest(prompt: "a red ball", layoutJSON: layout.json.serialized(), seed: 3, frames: 2, width: 16, height: 16,
                                    steps: 4, pipeline: pipeline)
        let baseline = try method("baseline", "libLVDMethodBaseline.so").generate(request).toArray()
        let ungrounded = try method("lvd-gligen", "libLVDMethodGLIGEN.so", ["beta=0"]).generate(request).toArray()
        XCTAssertEqual(ungrounded, baseline, "β = 0 is the base model, bit for bit")
        let grounded = try method("lvd-gligen", "libLVDMethodGLIGEN.so", ["beta=1"]).generate(request).toArray()
        XCTAssertNotEqual(grounded, baseline, "the fusers change the video")
        let half = try method("lvd-gligen", "libLVDMethodGLIGEN.so").generate(request).toArray()
        XCTAssertNotEqual(half, grounded, "β = 0.4 grounds trunc(0.4·4) = 1 step only")
        XCTAssertEqual(try method("lvd-gligen", "libLVDMethodGLIGEN.so").generate(request).toArray(), half, "deterministic")
        let plus = try method("lvd-gligen", "libLVDMethodGLIGEN.so", ["preset=plus"]).generate(request).toArray()
        XCTAssertNotEqual(plus, grounded, "LVD+ adds energy guidance to full grounding")
    }

    func testRefusesAModelWithoutAdapters() throws {
        let pipeline = try load(MethodSamplingTests.pipelinePath)
        defer { _ = ModelAPI.table.pointee.pipeline_release(pipeline, nil) }
        let layout = Layout(prompt: "a ball", keyframes: [[Layout.Object(id: 0, name: "ball", box: [0, 0, 100, 100])]])
        let request = MethodRequest(prompt: "a ball", layoutJSON: layout.json.serialized(), seed: 1, frames: 2, width: 16, height: 16,
                                    steps: 2, pipeline: pipeline)
        XCTAssertThrowsError(try method("lvd-gligen", "libLVDMethodGLIGEN.so").generate(request)) {
            XCTAssertTrue("\($0)".contains("lvd-gligen needs a model with GLIGEN adapters"), "\($0)")
        }
    }
}

/// Every method from the CLI on a pipeline shaped like ModelScope's UNet (four levels, three
/// cross-attention down blocks, 2 layers, 3 in the up blocks: the K_LVD and K_BD layers exist, so
/// the methods take their default keys) with tiny widths and random weights; and `lvd compare`
/// isolating a method that crashes its process.
final class AllMethodsTests: XCTestCase {
    static let shapedPipeline: String = {
        let folder = NSTemporaryDirectory() + "lvd-shaped-pipeline-\(getpid())"
        try? FileManager.default.removeItem(atPath: folder)
        try! FileManager.default.copyItem(atPath: MethodSamplingTests.pipelinePath, toPath: folder)
        let config = """
            {"_class_name": "UNet3DConditionModel", "in_channels": 4, "out_channels": 4, "block_out_channels": [16, 16, 32, 32],
             "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
             "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
             "layers_per_block": 2, "norm_num_groups": 8, "cross_attention_dim": 32, "attention_head_dim": 8, "sample_size": 8}
            """
        try! config.write(toFile: folder + "/unet/config.json", atomically: true, encoding: .utf8)
        let unet = try! UNet3DConditionModel(try! ModelFolder.configuration(UNet3DConfiguration.self, in: folder + "/unet"))
        try! unet.randomizeParameters(seed: 5, scale: 0.2)
        try! FileManager.default.removeItem(atPath: folder + "/unet/diffusion_pytorch_model.safetensors")
        try! SafetensorsFile.write(unet.parameterTensors(), to: folder + "/unet/diffusion_pytorch_model.safetensors")
        return folder
    }()

    func testEveryMethodRunsFromTheCLIWithItsDefaultKeys() throws {
        let temp = try TempDir()
        let methods = ["baseline", "lvd", "backward-guidance", "boxdiff", "multidiffusion"]
        let result = try lvd(["compare", "a cat on the left and a dog on the right", "--methods", methods.joined(separator: ","),
                              "--model", Self.shapedPipeline, "--frames", "2", "--steps", "2", "-o", temp.file("cmp"), "--json"])
        XCTAssertEqual(result.status, 0, String(result.output.suffix(3000)))
        let rows = try XCTUnwrap(try JSONValue.parse(result.stdout).arrayValue?.compactMap(\.objectValue))
        XCTAssertEqual(rows.map { $0["status"]?.stringValue ?? "" }, Array(repeating: "ok", count: methods.count))
        for method in ["lvd", "boxdiff"] {
            let run = try lvd(["generate", "a cat on the left", "--method", method, "--model", Self.shapedPipeline, "--frames", "2",
                               "--steps", "2", "--log-level", "info", "-o", temp.file(method)])
            XCTAssertEqual(run.status, 0, run.output)
            XCTAssertFalse(run.stderr.contains("lacks the default layers"), "\(method) guides its default layers: \(run.stderr)")
        }
        let gligen = try lvd(["generate", "a red ball", "--method", "lvd-gligen", "--model", GLIGENMethodTests.gatedPipeline,
                              "--frames", "2", "--steps", "2", "-o", temp.file("gligen")])
        XCTAssertEqual(gligen.status, 0, gligen.output)
    }

    func testCompareIsolatesACrashingMethod() throws {
        let temp = try TempDir()
        let plugins = try temp.subfolder("plugins")
        try Fixture.writeManifest(in: plugins, id: "test-crash", kind: "method", library: TestPaths.products + "/libLVDTestGuidanceProbe.so")
        let result = try lvd(["compare", "a red ball", "--methods", "baseline,test-crash,lvd", "--plugin-path", plugins,
                              "--model", MethodSamplingTests.pipelinePath, "--frames", "2", "--steps", "2", "-o", temp.file("cmp"), "--json"])
        XCTAssertEqual(result.status, 1)
        let rows = try XCTUnwrap(try JSONValue.parse(result.stdout).arrayValue?.compactMap(\.objectValue), result.output)
        XCTAssertEqual(rows.map { $0["method"]?.stringValue ?? "" }, ["baseline", "test-crash", "lvd"])
        XCTAssertEqual(rows[0]["status"], .string("ok"))
        XCTAssertEqual(rows[1]["status"], .string("killed by signal 6"), "\(rows[1])")
        XCTAssertEqual(rows[2]["status"], .string("ok"), "the method after the crash still runs")
        XCTAssertTrue(FileManager.default.fileExists(atPath: temp.file("cmp/compare.gif")))
    }
}
