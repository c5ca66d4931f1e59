import LVDFormats
import LVDPluginKit
import LVDSDK

/// Plain text-to-video (METHODS.md §5): the prompt as given, the video negative prompt,
/// classifier-free guidance, DPM-Solver++ 2M. No layout. The reference every grounding method
/// is compared with.
final class Baseline: MethodPlugin {
    static let info = PluginInfo(
        id: "baseline", kind: .method, name: "Baseline text-to-video", version: "1.0.0",
        description: "Plain text-to-video sampling: the prompt only, no layout (METHODS.md §5)",
        params: ParamsSchema(params: [
            .init("guidance_scale", .number, default: .number(9), description: "classifier-free guidance scale g", minimum: 0),
            .init("scheduler", .string, default: .string("DPMSolverMultistepScheduler"),
                  description: "sampler built from the model's scheduler configuration",
                  allowed: [.string("DPMSolverMultistepScheduler"), .string("DDIMScheduler")]),
        ]))

    private let host: HostContext
    private let guidanceScale: Float
    private let scheduler: String

    init(host: HostContext, params: JSONObject) throws {
        self.host = host
        guidanceScale = Float(params["guidance_scale"]?.numberValue ?? 9)
        scheduler = params["scheduler"]?.stringValue ?? "DPMSolverMultistepScheduler"
    }

    func generate(_ request: MethodRequest) throws -> Tensor {
        let sampler = try Sampler(host: host, request: request, guidanceScale: guidanceScale, schedulerClass: scheduler)
        return try sampler.run(prompt: request.prompt)
    }
}

@_cdecl("lvd_plugin_entry")
public func lvdPluginEntry() -> UnsafePointer<lvd_plugin_library> {
    PluginExport.library(methods: [Baseline.self])
}
