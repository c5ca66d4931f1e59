import Foundation
import LVDFormats
import LVDHost
import LVDStage1
import LVDModels
import LVDRuntime
import LVDSDK
import Synchronization
import XCTest

/// Method plugins on a real (tiny) pipeline through both tables: the host loads the pipeline
/// with lvd.model/1, the plugin library — built over LVDPluginKit's Sampler only — encodes,
/// samples and decodes through lvd.model/1 and lvd.tensor/1.
final class MethodSamplingTests: XCTestCase {
    static let pipelinePath = TestPaths.repoRoot + "/Tests/LVDModelsTests/Fixtures/tiny-pipeline"

    func method(_ id: String, library: String, params: [String] = []) throws -> MethodInstance {
        let temp = try TempDir()
        try Fixture.writeManifest(in: temp.path, id: id, kind: "method", library: TestPaths.products + "/" + library)
        let catalog = PluginCatalog(searchPath: .standard(pluginPaths: [temp.path], environment: ["HOME": TestConfigHome.path]))
        let plugin = try PluginLoader().load(catalog.require(id: id, kind: .method))
        return try MethodInstance(plugin: plugin, params: try plugin.resolveParams(params))
    }

    func loadPipeline() throws -> OpaquePointer {
        var pipeline: OpaquePointer?
        var error = lvd_error()
        lvd_error_init(&error)
        XCTAssertEqual(ModelAPI.table.pointee.pipeline_load(Self.pipelinePath, &pipeline, &error), LVD_OK)
        return try XCTUnwrap(pipeline)
    }

    /// The same loop written directly on LVDModels: DPM-Solver++ from the folder's configuration,
    /// CFG 9 over [negative, positive], seeded torch-compatible noise, per-frame decode.
    func directBaseline(prompt: String, seed: UInt64, frames: Int, size: Int, steps: Int) throws -> [Float] {
        let pipeline = try Pipeline(path: Self.pipelinePath)
        return try GradMode.withoutGrad {
            let scheduler = try pipeline.schedulerConfiguration(className: "DPMSolverMultistepScheduler").makeScheduler(steps: steps)
            let context = try pipeline.encode(["dull, gray, unrealistic, colorless, blurry, low-quality, weird, abrupt", prompt]).lastHiddenState
            var latents = try Noise.randn([1, 4, frames, size / 2, size / 2], seed: seed)
            for (index, t) in scheduler.timesteps.enumerated() {
                let noise = try pipeline.unet(Tensor.concat([latents, latents], axis: 0), timestep: Float(t), context: context).sample
                let u = try noise.sliced(axis: 0, start: 0, end: 1), c = try noise.sliced(axis: 0, start: 1, end: 2)
                latents = try scheduler.step(u + (c - u) * 9, index: index, sample: latents)
            }
            return try pipeline.decodeVideo(latents).toArray()
        }
    }

    func testBaselineGeneratesThroughTheModelTable() throws {
        let pipeline = try loadPipeline()
        defer { _ = ModelAPI.table.pointee.pipeline_release(pipeline, nil) }
        let baseline = try method("baseline", library: "libLVDMethodBaseline.so")
        let steps = Mutex(0)
        HostServices.shared.setProgressHandler { source, done, total, what in
            if source == "baseline", what == "denoising step", total == 3 { steps.withLock { $0 = Int(done) } }
        }
        defer { HostServices.shared.setProgressHandler(nil) }
        let handlesBefore = TensorAPI.handles.count
        func generate(seed: UInt64) throws -> [Float] {
            try baseline.generate(MethodRequest(prompt: "a red ball", seed: seed, frames: 2, width: 16, height: 16,
                                                steps: 3, pipeline: pipeline)).toArray()
        }
        let video = try generate(seed: 5)
        XCTAssertEqual(steps.withLock { $0 }, 3, "each denoising step reported")
        XCTAssertEqual(video.count, 2 * 16 * 16 * 3)
        XCTAssertEqual(try generate(seed: 5), video, "same seed, same video")
        XCTAssertNotEqual(try generate(seed: 6), video, "another seed, another video")
        XCTAssertEqual(TensorAPI.handles.count, handlesBefore, "the plugin released every handle it made")
        let direct = try directBaseline(prompt: "a red ball", seed: 5, frames: 2, size: 16, steps: 3)
        let worst = zip(video, direct).map { Swift.abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 1, "the plugin's loop through the C tables equals the loop on LVDModels")
        XCTAssertGreaterThan(Set(video).count, 20, "a picture, not a constant")
    }

    func testLVDPluginGuidesAwayFromTheBaseline() throws {
        let pipeline = try loadPipeline()
        defer { _ = ModelAPI.table.pointee.pipeline_release(pipeline, nil) }
        let layout = try OfflinePlanner.plan("a red ball moving from the left to the right").json.serialized()
        let lvd = try method("lvd", library: "libLVDMethodLVD.so")
        let baseline = try method("baseline", library: "libLVDMethodBaseline.so")
        let request = MethodRequest(prompt: "a red ball moving from the left to the right", layoutJSON: layout, seed: 4,
                                    frames: 2, width: 16, height: 16, steps: 3, pipeline: pipeline)
        let guided = try lvd.generate(request).toArray()
        XCTAssertEqual(try lvd.generate(request).toArray(), guided, "same seed, same video")
        XCTAssertNotEqual(try baseline.generate(request).toArray(), guided, "guidance changed the video")
        var noLayout = request
        noLayout.layoutJSON = nil
        XCTAssertThrowsError(try lvd.generate(noLayout)) { XCTAssertTrue("\($0)".contains("needs a layout"), "\($0)") }
        XCTAssertThrowsError(try method("lvd", library: "libLVDMethodLVD.so", params: ["keys=down,9,0"]).generate(request)) {
            XCTAssertTrue("\($0)".contains("this UNet has no cross-attention layer down,9,0"), "\($0)")
        }
        let backward = try method("backward-guidance", library: "libLVDMethodBackwardGuidance.so")
        let ratio = try backward.generate(request).toArray()
        XCTAssertEqual(try backward.generate(request).toArray(), ratio, "same seed, same video")
        XCTAssertNotEqual(ratio, guided, "another energy, another video")
    }

    /// METHODS.md §6 invariant: one full-frame region whose name is the prompt, no bootstrapping,
    /// is plain text-to-video.
    func testMultiDiffusionWithOneFullFrameRegionEqualsBaseline() throws {
        let pipeline = try loadPipeline()
        defer { _ = ModelAPI.table.pointee.pipeline_release(pipeline, nil) }
        let full = Layout(prompt: "a red ball", keyframes: Array(repeating: [Layout.Object(id: 0, name: "a red ball", box: [0, 0, 512, 512])], count: 6))
        let request = MethodRequest(prompt: "a red ball", layoutJSON: full.json.serialized(), seed: 9, frames: 2, width: 16, height: 16,
                                    steps: 3, pipeline: pipeline)
        let plain = try method("baseline", library: "libLVDMethodBaseline.so").generate(request).toArray()
        let fused = try method("multidiffusion", library: "libLVDMethodMultiDiffusion.so", params: ["boot_steps=0"]).generate(request).toArray()
        XCTAssertEqual(fused, plain, "bit for bit")

        // Two objects with bootstrapping: deterministic per seed, and unlike baseline.
        let layout = try OfflinePlanner.plan("a cat on the left and a dog on the right").json.serialized()
        var twoRegions = request
        twoRegions.layoutJSON = layout
        let regions = try method("multidiffusion", library: "libLVDMethodMultiDiffusion.so")
        let first = try regions.generate(twoRegions).toArray()
        XCTAssertEqual(try regions.generate(twoRegions).toArray(), first, "same seed, same colours, same video")
        XCTAssertNotEqual(first, plain)
    }

    func testBoxDiffGuidesAndSkipsZeroKTerms() throws {
        let pipeline = try loadPipeline()
        defer { _ = ModelAPI.table.pointee.pipeline_release(pipeline, nil) }
        let layout = try OfflinePlanner.plan("a red ball moving from the left to the right").json.serialized()
        let request = MethodRequest(prompt: "a red ball moving from the left to the right", layoutJSON: layout, seed: 2, frames: 2,
                                    width: 16, height: 16, steps: 3, pipeline: pipeline)
        let boxdiff = try method("boxdiff", library: "libLVDMethodBoxDiff.so")
        let video = try boxdiff.generate(request).toArray()
        XCTAssertEqual(try boxdiff.generate(request).toArray(), video, "same seed, same video")
        XCTAssertNotEqual(try method("baseline", library: "libLVDMethodBaseline.so").generate(request).toArray(), video)
        // A box of under five cells on the 8×8 maps: k = trunc(n · 0.2) = 0 drops the inner term
        // (never a top-0 or a NaN); the outer term and the corners still guide.
        let tiny = Layout(prompt: "a red ball", keyframes: Array(repeating: [Layout.Object(id: 0, name: "red ball", box: [100, 100, 40, 40])], count: 6))
        var small = request
        small.layoutJSON = tiny.json.serialized()
        let guided = try boxdiff.generate(small).toArray()
        XCTAssertTrue(guided.allSatisfy(\.isFinite))
        XCTAssertNotEqual(guided, try method("boxdiff", library: "libLVDMethodBoxDiff.so", params: ["guided_steps=0"]).generate(small).toArray())
    }

    func testBaselineRefusesRequestsItCannotServe() throws {
        let baseline = try method("baseline", library: "libLVDMethodBaseline.so")
        XCTAssertThrowsError(try baseline.generate(MethodRequest(prompt: "a dog", seed: 1, frames: 2, width: 16, height: 16, steps: 2))) {
            XCTAssertTrue("\($0)".contains("no model pipeline in the request"), "\($0)")
        }
        let pipeline = try loadPipeline()
        defer { _ = ModelAPI.table.pointee.pipeline_release(pipeline, nil) }
        XCTAssertThrowsError(try baseline.generate(MethodRequest(prompt: "a dog", seed: 1, frames: 2, width: 18, height: 16, steps: 2, pipeline: pipeline))) {
            XCTAssertTrue("\($0)".contains("size 18x16: width and height must be positive multiples of 4"), "\($0)")
        }
        XCTAssertThrowsError(try method("baseline", library: "libLVDMethodBaseline.so", params: ["scheduler=Euler"])) {
            XCTAssertTrue("\($0)".contains("scheduler"), "\($0)")
        }
    }
}

/// A third-party method built out of tree with `cc` against the SDK headers only.
final class OutOfTreeMethodTests: XCTestCase {
    func testCExampleMethodBuiltAgainstTheSDKGenerates() throws {
        let temp = try TempDir()
        let build = try runProcess("/usr/bin/env", ["make", "-C", TestPaths.repoRoot + "/SDK/examples/c-method", "BUILD=\(temp.path)"])
        XCTAssertEqual(build.status, 0, build.output)
        let catalog = PluginCatalog(searchPath: .standard(pluginPaths: [temp.path], environment: ["HOME": TestConfigHome.path]))
        let plugin = try PluginLoader().load(catalog.require(id: "example-denoise", kind: .method))
        let example = try MethodInstance(plugin: plugin, params: try plugin.resolveParams([]))
        var pipeline: OpaquePointer?
        var error = lvd_error()
        lvd_error_init(&error)
        XCTAssertEqual(ModelAPI.table.pointee.pipeline_load(MethodSamplingTests.pipelinePath, &pipeline, &error), LVD_OK)
        defer { _ = ModelAPI.table.pointee.pipeline_release(pipeline, nil) }
        let request = MethodRequest(prompt: "a red ball", seed: 5, frames: 2, width: 16, height: 16, steps: 3, pipeline: pipeline)
        let handles = TensorAPI.handles.count
        let video = try example.generate(request).toArray()
        XCTAssertEqual(TensorAPI.handles.count, handles, "the C plugin released every handle")
        // The same algorithm as the Swift baseline plugin: the same video.
        let temp2 = try TempDir()
        try Fixture.writeManifest(in: temp2.path, id: "baseline", kind: "method", library: TestPaths.products + "/libLVDMethodBaseline.so")
        let baselinePlugin = try PluginLoader().load(PluginCatalog(searchPath: .standard(pluginPaths: [temp2.path], environment: ["HOME": TestConfigHome.path]))
            .require(id: "baseline", kind: .method))
        let baseline = try MethodInstance(plugin: baselinePlugin, params: try baselinePlugin.resolveParams([])).generate(request).toArray()
        XCTAssertLessThanOrEqual(zip(video, baseline).map { Swift.abs($0 - $1) }.max() ?? 0, 1)
    }
}
