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
        params: ParamsSchema(params: GuidanceLoop.params(loop, thresholdNote: "E is summed over frames, so strict; absent frames keep E above it")
            + GuidedGeneration.params(keys: "cross-attention layers; auto = K_LVD, or every layer of a UNet without them")))

    /// The image reference's hyper-parameters (METHODS.md §13).
    static let loop = GuidanceLoop.Defaults(scale: 30, threshold: 0.2, maxIterations: 5)

    private let host: HostContext
    private let params: JSONObject

    init(host: HostContext, params: JSONObject) throws {
        self.host = host
        self.params = params
    }

    func generate(_ request: MethodRequest) throws -> Tensor {
        let loop = GuidanceLoop(params: params, defaults: Self.loop)
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
