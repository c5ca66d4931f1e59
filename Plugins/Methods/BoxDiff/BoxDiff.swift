import LVDFormats
import LVDGrounding
import LVDGuidance
import LVDPluginKit
import LVDSDK

/// BoxDiff adapted to video (METHODS.md §8): at each of the first steps, one gradient step on a
/// loss of the token-softmaxed, head- and layer-averaged, smoothed attention maps — inner-box
/// and outer-box top-k terms and box-corner terms — summed over frames.
final class BoxDiff: MethodPlugin {
    /// K_BD: 16×16 maps at 256 × 256.
    static let keys = ["down,1,0", "down,1,1", "up,2,0", "up,2,1", "up,2,2"]

    static let info = PluginInfo(
        id: "boxdiff", kind: .method, name: "BoxDiff", version: "1.0.0",
        description: "Inner-box, outer-box and corner constraints on smoothed cross-attention, one step per early sampling step (METHODS.md §8)",
        params: ParamsSchema(params: [
            .init("guided_steps", .integer, default: .number(20), description: "guide the sampling steps n < this (20 of 40, as 25 of 50 in the image reference)", minimum: 0, maximum: 1000),
            .init("step_size", .number, default: .number(20), description: "z ← z − step_size·√(1 − 0.5·n/(T−1))·∇L", minimum: 0),
            .init("top_p", .number, default: .number(0.2), description: "P: share of the cells in (outside) the box averaged", minimum: 0, maximum: 1),
            .init("clamp_k", .boolean, default: .bool(false), description: "clamp k to at least 1 (the reference drops a term whose k is 0 — boxes under 5 cells)"),
            .init("smoothing_sigma", .number, default: .number(0.5), description: "σ of the 3×3 Gaussian (the reference's exp(−((d−μ)/(2σ))²))", minimum: 0.01),
        ] + GuidedGeneration.params(keys: "cross-attention layers of one grid; auto = K_BD, or every layer of a UNet without them that shares the first one's grid")))

    private let host: HostContext
    private let params: JSONObject

    init(host: HostContext, params: JSONObject) throws {
        self.host = host
        self.params = params
    }

    func generate(_ request: MethodRequest) throws -> Tensor {
        guard let text = request.layoutJSON else { throw PluginError.invalidArgument("boxdiff needs a layout (--planner or --layout)") }
        let layout = try Layout.decode(json: text, source: "layout")
        let settings = GuidedGeneration(params: params)
        let sampler = try Sampler(host: host, request: request, guidanceScale: settings.guidanceScale)
        let pipeline = sampler.pipeline, runtime = sampler.models.tensors
        var setup = try GuidanceSetup(layout: layout, pipeline: pipeline, frames: request.frames,
                                      latentHeight: sampler.latentShape[3], latentWidth: sampler.latentShape[4],
                                      keys: settings.keys, defaultKeys: Self.keys) { host.log(.info, $0) }
        // All maps are averaged together: they must share one grid.
        let grid = (setup.layers[0].height, setup.layers[0].width)
        let sameGrid = setup.layers.filter { ($0.height, $0.width) == grid }
        if sameGrid.count != setup.layers.count {
            guard settings.keys == "auto" else {
                throw PluginError.invalidArgument("param keys: BoxDiff averages the maps, so all layers must share one grid")
            }
            host.log(.info, "using the layers on the \(grid.0)×\(grid.1) grid: \(sameGrid.map(\.key).joined(separator: " "))")
            setup = GuidanceSetup(prompt: setup.prompt, objects: setup.objects, layers: sameGrid, frames: setup.frames)
        }
        host.log(.info, "generation prompt: \(setup.prompt)")
        let guidedSteps = params["guided_steps"]?.intValue ?? 20
        let stepSize = params["step_size"]?.numberValue ?? 20
        let topP = Float(params["top_p"]?.numberValue ?? 0.2)
        let clamp = params["clamp_k"]?.boolValue ?? false
        let sigma = params["smoothing_sigma"]?.numberValue ?? 0.5
        let recompute = settings.recompute
        let context = try sampler.context(setup.prompt)
        let capture = setup.layers.map(\.key)
        let (height, width) = grid
        let cells = height * width
        let totalHeads = Float(setup.layers.map(\.heads).reduce(0, +))

        return try sampler.run(prompt: setup.prompt, guide: { step, latents in
            guard step.index < guidedSteps, !setup.objects.isEmpty else { return latents }
            let z = try latents.detached().requiringGrad()
            let maps = try pipeline.unet(z, timestep: Double(step.timestep), context: context, capture: capture, recompute: recompute).attention
            // Ā: mean over all heads of all layers → (F, cells, tokens); softmax over tokens 1..<76 of 100·Ā.
            var summed: Tensor?
            for map in maps { let s = try map.sum(axes: [1]); summed = try summed.map { try $0 + s } ?? s }
            let mean = try summed! / totalHeads
            let tokenCount = mean.shape[2]
            let scores = try (mean.sliced(axis: 2, start: 1, end: tokenCount - 1) * 100).softmax(axis: 2)
            var loss: Tensor?
            func add(_ term: Tensor) throws { loss = try loss.map { try $0 + term } ?? term }
            for object in setup.objects {
                for token in object.tokens {
                    // Column τ − 1 (the start token was dropped), smoothed per frame: (F, H, W).
                    let maps = try scores.sliced(axis: 2, start: token - 1, end: token).reshaped([setup.frames, height, width])
                        .op("gaussian_smooth", attributes: "{\"sigma\": \(sigma)}")
                    for f in 0..<setup.frames {
                        let x = try maps.sliced(axis: 0, start: f, end: f + 1).reshaped([height, width])
                        let bounds = Grounding.rasterBounds(object.boxes[f], height: height, width: width)
                        let mask = Grounding.rasterise(object.boxes[f], height: height, width: width)
                        let inside = Int(mask.reduce(0, +))
                        let flat = try x.reshaped([cells])
                        for (weights, count, isInner) in [(mask, inside, true), (mask.map { 1 - $0 }, cells - inside, false)] {
                            var k = Int(Float(count) * topP)
                            if clamp { k = Swift.max(k, 1) }
                            // k = 0: the reference's mean of nothing is NaN and its hinge drops the term.
                            guard k > 0 else { continue }
                            let top = try (flat * runtime.tensor(weights, shape: [cells])).topK(k).mean()
                            try add(isInner ? (top * -1 + 1).relu() : top.relu())
                        }
                        // Corner terms: the map's column / row maxima against the box's, in windows at the edges.
                        var cornerX = [Float](repeating: 0, count: width), cornerY = [Float](repeating: 0, count: height)
                        for edge in [bounds.x0, bounds.rawX1] { for i in Swift.max(edge - 1, 0)..<Swift.max(Swift.min(edge + 2, width), 0) { cornerX[i] = 1 } }
                        for edge in [bounds.y0, bounds.rawY1] { for i in Swift.max(edge - 1, 0)..<Swift.max(Swift.min(edge + 2, height), 0) { cornerY[i] = 1 } }
                        let maskGrid = try runtime.tensor(mask, shape: [height, width])
                        let columnGap = try (x.max(axes: [0]) - maskGrid.max(axes: [0])).op("abs") * runtime.tensor(cornerX, shape: [width])
                        let rowGap = try (x.max(axes: [1]) - maskGrid.max(axes: [1])).op("abs") * runtime.tensor(cornerY, shape: [height])
                        try add(columnGap.mean() + rowGap.mean())
                    }
                }
            }
            guard let loss else { return latents }
            try loss.backward()
            guard let gradient = try z.grad() else { return latents }
            let scale = stepSize * (1 - 0.5 * Double(step.index) / Double(Swift.max(step.count - 1, 1))).squareRoot()
            self.host.log(.debug, "step \(step.index): BoxDiff loss \(try loss.item())")
            return try (z - gradient * Float(scale)).detached()
        })
    }
}

@_cdecl("lvd_plugin_entry")
public func lvdPluginEntry() -> UnsafePointer<lvd_plugin_library> {
    PluginExport.library(methods: [BoxDiff.self])
}
