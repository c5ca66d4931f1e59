import Foundation
import LVDFormats
import LVDGuidance
import LVDHost
import LVDPluginKit
import LVDStage1
import XCTest

/// The guidance machinery shared by the attention methods, over the plugin kit's view of the
/// C tables (as a plugin sees them), on the tiny fixture pipeline.
final class GuidanceTests: XCTestCase {
    /// LVD's energy (METHODS.md §6.2) through the C tables on the tiny pipeline: one guidance
    /// update lowers it; the loop's control flow keeps the reference's quirks.
    func testLVDGuidanceLowersItsOwnEnergy() throws {
        let host = HostContext(raw: HostServices.shared.table, source: "test")
        let models = try XCTUnwrap(ModelRuntime(host: host))
        let pipeline = try models.load(folder: MethodSamplingTests.pipelinePath)
        let layout = try OfflinePlanner.plan("a red ball moving from the left to the right")
        var notes: [String] = []
        let setup = try GuidanceSetup(layout: layout, pipeline: pipeline, frames: 2, latentHeight: 8, latentWidth: 8,
                                      keys: "auto", defaultKeys: GuidanceSetup.lvdKeys) { notes.append($0) }
        XCTAssertEqual(setup.prompt, "a red ball moving from the left to the right, grass background")
        XCTAssertEqual(setup.layers.map(\.key), ["down,0,0", "mid,0,0", "up,1,0", "up,1,1"], "the tiny UNet lacks K_LVD: all its layers")
        XCTAssertEqual(notes.count, 1)
        XCTAssertEqual(setup.objects.map(\.name), ["red ball"])
        XCTAssertFalse(setup.objects[0].tokens.isEmpty)
        let context = try pipeline.encode([setup.prompt]).hidden
        let keys = setup.layers.map(\.key)
        let energy = LVDEnergy()
        func e(_ z: Tensor) throws -> Tensor {
            try energy(pipeline.unet(z, timestep: 999, context: context, capture: keys).attention, setup: setup, runtime: models.tensors)
        }
        let scheduler = try pipeline.scheduler(steps: 10, className: "DPMSolverMultistepScheduler")
        let alpha = try scheduler.alphaCumprod(999)
        let z = try models.randn([1, 4, 2, 8, 8], seed: 3)
        let before = try models.tensors.withoutGrad { try e(z).item() }
        let loop = GuidanceLoop(scale: 5, threshold: 0, maxIterations: 3, maxIndexStep: 10)
        let guided = try loop.guide(z, stepIndex: 0, alphaCumprod: alpha, energy: e)
        let after = try models.tensors.withoutGrad { try e(guided).item() }
        XCTAssertEqual(loop.energies.count, 3)
        XCTAssertEqual(loop.energies[0], before, accuracy: 1e-4 * Swift.abs(before))
        XCTAssertLessThan(after, before, "guidance lowers the energy (\(before) → \(after))")
        XCTAssertEqual(loop.previousLoss / 5, loop.energies[2], accuracy: 1e-4)
        // Backward guidance's ratio energy falls too.
        let ratio = RatioEnergy()
        func r(_ z: Tensor) throws -> Tensor {
            try ratio(pipeline.unet(z, timestep: 999, context: context, capture: keys).attention, setup: setup, runtime: models.tensors)
        }
        let ratioBefore = try models.tensors.withoutGrad { try r(z).item() }
        let ratioLoop = GuidanceLoop(scale: 30, threshold: 0, maxIterations: 3, maxIndexStep: 10)
        let ratioGuided = try ratioLoop.guide(z, stepIndex: 0, alphaCumprod: alpha, energy: r)
        let ratioAfter = try models.tensors.withoutGrad { try r(ratioGuided).item() }
        XCTAssertLessThan(ratioAfter, ratioBefore, "ratio energy \(ratioBefore) → \(ratioAfter)")
        XCTAssertLessThanOrEqual(ratioBefore, Float(setup.frames), "at most 1 per frame and token (one token here)")
        // Above max_index_step nothing happens; with τ ≥ 10000/s guidance never runs.
        XCTAssertEqual(try loop.guide(z, stepIndex: 10, alphaCumprod: alpha, energy: e).toArray(), try z.toArray())
        let never = GuidanceLoop(scale: 5, threshold: 2000, maxIterations: 5, maxIndexStep: 10)
        _ = try never.guide(z, stepIndex: 0, alphaCumprod: alpha, energy: e)
        XCTAssertTrue(never.energies.isEmpty)
        // The test uses the loss computed before the update: with τ = E(z) the first evaluation
        // already ends guidance, for this step and every later one.
        let once = GuidanceLoop(scale: 1, threshold: before, maxIterations: 5, maxIndexStep: 10)
        _ = try once.guide(z, stepIndex: 0, alphaCumprod: alpha, energy: e)
        XCTAssertEqual(once.energies.count, 1, "one update, then the stale loss is not above τ")
        _ = try once.guide(z, stepIndex: 1, alphaCumprod: alpha, energy: e)
        XCTAssertEqual(once.energies.count, 1, "stopped for good")
    }


    /// METHODS.md §14.4: uniform attention 1/77 has closed forms — per present frame and head,
    /// Lfg = 1 − 1/77 and Lbg = 1/77 whatever k is; an absent frame adds a constant foreground
    /// term (h) with no gradient, and its background term suppresses the token everywhere.
    func testLVDEnergyClosedFormOnUniformAttention() throws {
        let host = HostContext(raw: HostServices.shared.table, source: "test")
        let runtime = try XCTUnwrap(TensorRuntime(host: host))
        let (frames, heads, side, tokens) = (3, 2, 16, 77)
        let box = [0.15625, 0.15625, 0.34375, 0.34375] // 3×3 cells on 16×16
        let object = GuidanceSetup.Object(name: "ball", tokens: [2], boxes: [box, box, [0, 0, 0, 0]])
        let setup = GuidanceSetup(prompt: "a ball", objects: [object], layers: [.init(key: "down,1,0", heads: heads, height: side, width: side)], frames: frames)
        let uniform = Float(1) / Float(tokens)
        let maps = try runtime.tensor(Array(repeating: uniform, count: frames * heads * side * side * tokens), shape: [frames, heads, side * side, tokens]).requiringGrad()
        var energy = LVDEnergy()
        energy.centreWeight = 0
        let e = try energy([maps], setup: setup, runtime: runtime)
        // Two present frames: 1·h·(1 − u) + 4·h·u each; the absent frame: 1·h (fg of zeros) + 4·h·u.
        let h = Float(heads)
        let expected = 2 * (h * (1 - uniform) + 4 * h * uniform) + (h + 4 * h * uniform)
        XCTAssertEqual(try e.item(), expected, accuracy: 1e-5)
        try e.backward()
        let gradient = try XCTUnwrap(try maps.grad()).toArray()
        // Gradient only at token 2; in the absent frame only the background term (4/k per cell in the top-k).
        let perFrame = heads * side * side * tokens
        XCTAssertEqual(gradient.enumerated().filter { $0.offset % tokens != 2 }.map(\.element).max() ?? 0, 0)
        let absent = (0..<(heads * side * side)).map { gradient[2 * perFrame + $0 * tokens + 2] }
        XCTAssertTrue(absent.allSatisfy { $0 >= 0 }, "the absent frame's gradient only pushes attention down")
        XCTAssertEqual(absent.filter { $0 > 0 }.count, heads * Int(Float(side * side) * 0.75), "k = trunc(256 · 0.75) = 192 cells per head")
        // kFg = max(1, trunc(9 · 0.75)) = 6 cells of the box get −1/6; kBg = trunc(247 · 0.75) = 185 get 4/185.
        let first = (0..<(side * side)).map { gradient[$0 * tokens + 2] }
        XCTAssertEqual(first.filter { Swift.abs($0 + 1 / 6) < 1e-6 }.count, 6)
        XCTAssertEqual(first.filter { Swift.abs($0 - 4 / 185) < 1e-6 }.count, 185)
    }
}
