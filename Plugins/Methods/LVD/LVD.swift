import LVDFormats
import LVDGuidance
import LVDPluginKit
import LVDSDK

/// LVD: training-free cross-attention energy guidance (METHODS.md §6). Before the CFG
/// prediction of each early step, the latents move down the gradient of an energy that pulls
/// each object's attention into its box and out of the rest, frame by frame.
final class LVDMethod: MethodPlugin {
    static let info = PluginInfo(
        id: "lvd", kind: .method, name: "LVD energy guidance", version: "1.0.0",
        description: "Training-free cross-attention energy guidance toward the layout's boxes (METHODS.md §6)",
        params: ParamsSchema(params: [
            .init("preset", .string, default: .string("benchmark"),
                  description: "benchmark: the published runs' values; weak: fewer artefacts, weaker control (loss scale 2.5, threshold 250, 1 iteration, top-p 0.25/0.25, weights 1/2, no centre term) — values left at their benchmark defaults take the preset's",
                  allowed: [.string("benchmark"), .string("weak")]),
        ] + GuidanceLoop.params(.lvd) + [
            .init("fg_top_p", .number, default: .number(0.75), description: "pFg: share of the box's cells averaged (top-k) for the foreground term", minimum: 0, maximum: 1),
            .init("bg_top_p", .number, default: .number(0.75), description: "pBg: share of the outside cells averaged for the background term", minimum: 0, maximum: 1),
            .init("fg_weight", .number, default: .number(1), description: "wFg", minimum: 0),
            .init("bg_weight", .number, default: .number(4), description: "wBg", minimum: 0),
            .init("com_weight", .number, default: .number(0.03), description: "cCom: centre-of-mass and velocity term (0.03 in the published runs; 0 = off)", minimum: 0),
        ] + GuidedGeneration.params(keys: "cross-attention layers, e.g. \"down,1,0 up,2,2\"; auto = K_LVD, or every layer of a UNet without them")))

    private let host: HostContext
    private let params: JSONObject

    init(host: HostContext, params: JSONObject) throws {
        self.host = host
        self.params = params
    }

    /// A param, or the preset's value when the param is at its benchmark default.
    func number(_ name: String, benchmark: Double, weak: Double) -> Double {
        let value = params[name]?.numberValue ?? benchmark
        return params["preset"]?.stringValue == "weak" && value == benchmark ? weak : value
    }

    func generate(_ request: MethodRequest) throws -> Tensor {
        var energy = LVDEnergy()
        energy.foregroundTopP = Float(number("fg_top_p", benchmark: 0.75, weak: 0.25))
        energy.backgroundTopP = Float(number("bg_top_p", benchmark: 0.75, weak: 0.25))
        energy.foregroundWeight = Float(number("fg_weight", benchmark: 1, weak: 1))
        energy.backgroundWeight = Float(number("bg_weight", benchmark: 4, weak: 2))
        energy.centreWeight = Float(number("com_weight", benchmark: 0.03, weak: 0))
        let benchmark = GuidanceLoop.Defaults.lvd  // the schema's defaults, which the weak preset replaces
        let loop = GuidanceLoop(scale: Float(number("loss_scale", benchmark: benchmark.scale, weak: 2.5)),
                                threshold: Float(number("loss_threshold", benchmark: benchmark.threshold, weak: 250)),
                                maxIterations: Int(number("max_iter", benchmark: Double(benchmark.maxIterations), weak: 1)),
                                maxIndexStep: params["max_index_step"]?.intValue ?? benchmark.maxIndexStep)
        let generation = GuidedGeneration(params: params)
        return try generation.run(host: host, request: request, loop: loop) { maps, setup, runtime in
            try energy(maps, setup: setup, runtime: runtime)
        }
    }
}

@_cdecl("lvd_plugin_entry")
public func lvdPluginEntry() -> UnsafePointer<lvd_plugin_library> {
    PluginExport.library(methods: [LVDMethod.self])
}
