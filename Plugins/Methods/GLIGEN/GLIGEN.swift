import LVDFormats
import LVDGrounding
import LVDGuidance
import LVDPluginKit
import LVDSDK
import LVDStage1

/// LVD-GLIGEN (METHODS.md §10): the boxes and names of each frame enter the UNet through the
/// checkpoint's GLIGEN adapters (PositionNet + gated fusers) for the first trunc(β·T) steps.
/// The `plus` preset is LVD+ (§11): β = 1 and LVD's energy guidance, whose guidance passes run
/// without grounding.
final class GLIGEN: MethodPlugin {
    static let info = PluginInfo(
        id: "lvd-gligen", kind: .method, name: "LVD-GLIGEN", version: "1.0.0",
        description: "Per-frame boxes through the model's GLIGEN adapters, scheduled sampling β; preset plus = LVD+ (METHODS.md §10, §11)",
        params: ParamsSchema(params: [
            .init("preset", .string, default: .string("gligen"),
                  description: "gligen: grounding only (β 0.4); plus: LVD+ — grounding at every step (β 1.0) and LVD's energy guidance with its benchmark defaults",
                  allowed: [.string("gligen"), .string("plus")]),
            .init("beta", .number, default: .number(0.4), description: "β: the fusers run for the first trunc(β·T) steps (plus: 1.0 when left at 0.4)", minimum: 0, maximum: 1),
            .init("max_objects", .integer, default: .number(30), description: "grounding slots per frame (the checkpoints have 30; more objects are dropped with a warning)", minimum: 1, maximum: 30),
        ] + GuidedGeneration.params(keys: "plus: cross-attention layers guided (auto = K_LVD)")))

    private let host: HostContext
    private let params: JSONObject

    init(host: HostContext, params: JSONObject) throws {
        self.host = host
        self.params = params
    }

    func generate(_ request: MethodRequest) throws -> Tensor {
        guard let text = request.layoutJSON else { throw PluginError.invalidArgument("lvd-gligen needs a layout (--planner or --layout)") }
        let layout = try Layout.decode(json: text, source: "layout")
        let plus = params["preset"]?.stringValue == "plus"
        var beta = params["beta"]?.numberValue ?? 0.4
        if plus && beta == 0.4 { beta = 1 }
        let maxObjects = params["max_objects"]?.intValue ?? 30
        let generation = GuidedGeneration(params: params)
        let probe = try Sampler(host: host, request: request, guidanceScale: generation.guidanceScale)
        guard probe.pipeline.hasGLIGEN else {
            throw PluginError.invalidArgument("lvd-gligen needs a model with GLIGEN adapters (a UNet with attention_type \"gated\", e.g. text-to-video-lvd-ms); pass it with --model")
        }
        let runtime = probe.models.tensors
        let frames = request.frames
        let condition = Condition(layout, frames: frames)

        // Phrase embeddings: each name's pooled text embedding (the reference encodes a frame's
        // phrases together, padded; the encoder is causal, so alone is the same).
        let width = probe.pipeline.info["context_dim"]?.intValue ?? 0
        var embeddings: [[Float]] = []
        if !condition.names.isEmpty {
            let pooled = try runtime.withoutGrad { () throws(PluginError) in try probe.pipeline.encode(condition.names).pooled.toArray() }
            embeddings = (0..<condition.names.count).map { Array(pooled[($0 * width)..<(($0 + 1) * width)]) }
        }
        // (2F, slots, ·), batch-major [negative frames…, positive frames…]; the negative half's masks are 0.
        let slots = 30
        var boxes = [Float](repeating: 0, count: 2 * frames * slots * 4)
        var masks = [Float](repeating: 0, count: 2 * frames * slots)
        var phrases = [Float](repeating: 0, count: 2 * frames * slots * width)
        var dropped = 0
        for f in 0..<frames {
            let present = condition.boxes.indices.filter { condition.boxes[$0][f] != [0, 0, 0, 0] }
            dropped = Swift.max(dropped, present.count - maxObjects)
            for (slot, object) in present.prefix(maxObjects).enumerated() {
                for half in 0..<2 {
                    let row = half * frames + f
                    for c in 0..<4 { boxes[(row * slots + slot) * 4 + c] = Float(condition.boxes[object][f][c]) }
                    for d in 0..<width { phrases[(row * slots + slot) * width + d] = embeddings[object][d] }
                    if half == 1 { masks[row * slots + slot] = 1 }
                }
            }
        }
        if dropped > 0 { host.log(.warning, "a frame has more than \(maxObjects) objects; \(dropped) were left out of the grounding") }
        let grounding = Pipeline.Grounding(boxes: try runtime.tensor(boxes, shape: [2 * frames, slots, 4]),
                                           masks: try runtime.tensor(masks, shape: [2 * frames, slots]),
                                           embeddings: try runtime.tensor(phrases, shape: [2 * frames, slots, width]))
        let groundedSteps = Int(beta * Double(request.steps))
        host.log(.info, "grounding the first \(groundedSteps) of \(request.steps) steps")
        let hook = { (step: Sampler.Step) -> Pipeline.Grounding? in step.index < groundedSteps ? grounding : nil }

        if plus {
            let energy = LVDEnergy() // LVD's benchmark defaults, the centre-of-mass term included
            let loop = GuidanceLoop(defaults: .lvd)
            return try generation.run(host: host, request: request, loop: loop, energy: { maps, setup, runtime in
                try energy(maps, setup: setup, runtime: runtime)
            }, grounding: { step, _ in hook(step) })
        }
        let prompt = Grounding.generationPrompt(layout)
        host.log(.info, "generation prompt: \(prompt)")
        return try probe.run(prompt: prompt, grounding: hook)
    }
}

@_cdecl("lvd_plugin_entry")
public func lvdPluginEntry() -> UnsafePointer<lvd_plugin_library> {
    PluginExport.library(methods: [GLIGEN.self])
}
