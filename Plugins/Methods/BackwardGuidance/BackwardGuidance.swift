import LVDFormats
import LVDGuidance
import LVDPluginKit
import LVDSDK

/// Backward guidance ("layout guidance") adapted to video (METHODS.md §7.2): LVD's loop with the
/// ratio energy — the share of each object's attention inside its box — and the image
/// reference's hyper-parameters.
final class BackwardGuidance: MethodPlugin {
    static let info = PluginInfo(
        id: "backward-guidance", kind: .method, name: "Backward guidance", version: "1.0.0",
        description: "Cross-attention guidance with the inside-box ratio energy (METHODS.md §7)",
        params: ParamsSchema(params: [
            .init("loss_scale", .number, default: .number(30), description: "s in z ← z − s·√(1−ᾱ_t)·∇E", minimum: 0),
            .init("loss_threshold", .number, default: .number(0.2), description: "τ on E (summed over frames, so strict; absent frames keep E above it)", minimum: 0),
            .init("max_iter", .integer, default: .number(5), description: "gradient steps per sampling step at most", minimum: 0, maximum: 100),
            .init("max_index_step", .integer, default: .number(10), description: "guide the sampling steps n < this", minimum: 0, maximum: 1000),
        ] + GuidedGeneration.params(keys: "cross-attention layers; auto = K_LVD, or every layer of a UNet without them")))

    private let host: HostContext
    private let params: JSONObject

    init(host: HostContext, params: JSONObject) throws {
        self.host = host
        self.params = params
    }

    func generate(_ request: MethodRequest) throws -> Tensor {
        let loop = GuidanceLoop(scale: Float(params["loss_scale"]?.numberValue ?? 30), threshold: Float(params["loss_threshold"]?.numberValue ?? 0.2),
                                maxIterations: params["max_iter"]?.intValue ?? 5, maxIndexStep: params["max_index_step"]?.intValue ?? 10)
        let generation = GuidedGeneration(params: params)
        let energy = RatioEnergy()
        return try generation.run(host: host, request: request, loop: loop) { maps, setup, runtime in
            try energy(maps, setup: setup, runtime: runtime)
        }
    }
}

@_cdecl("lvd_plugin_entry")
public func lvdPluginEntry() -> UnsafePointer<lvd_plugin_library> {
    PluginExport.library(methods: [BackwardGuidance.self])
}
