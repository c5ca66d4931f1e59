import LVDFormats
import LVDGrounding
import LVDPluginKit
import LVDSDK
import LVDStage1

/// MultiDiffusion adapted to video (METHODS.md §9.2): a background region and one region per
/// object, each denoised from its own latents with its own prompt and its own DPM-Solver history,
/// fused by the regions' masks (which partition every frame); in the first steps each object's
/// region sees a random constant colour outside its mask (bootstrapping).
final class MultiDiffusion: MethodPlugin {
    static let imageNegative = "artifacts, blurry, smooth texture, bad quality, distortions, unrealistic, distorted image, bad proportions, duplicate, headshot, close-up, partial, large, large, huge, gigantic"

    static let info = PluginInfo(
        id: "multidiffusion", kind: .method, name: "MultiDiffusion", version: "1.0.0",
        description: "Region-based fusion: one prompt per box and one for the background (METHODS.md §9)",
        params: ParamsSchema(params: [
            .init("boot_steps", .integer, default: .number(10), description: "nBoot: steps with bootstrapping (random constant colours outside each object's region)", minimum: 0, maximum: 1000),
            .init("pool_size", .integer, default: .number(10), description: "colours in the bootstrapping pool; colours, their VAE samples and the per-step picks come from SplitMix64 seeded with seed XOR 0x4D756C7469446966", minimum: 1, maximum: 256),
            .init("guidance_scale", .number, default: .number(9), description: "classifier-free guidance scale per region", minimum: 0),
            .init("background_prompt", .string, default: .string("A realistic scene"), description: "the background region's prompt when the layout names no background"),
            .init("negatives", .string, default: .string("video"), description: "video: the video negative prompt for every region; image: the image reference's background / foreground negatives",
                  allowed: [.string("video"), .string("image")]),
        ]))

    private let host: HostContext
    private let params: JSONObject

    init(host: HostContext, params: JSONObject) throws {
        self.host = host
        self.params = params
    }

    func generate(_ request: MethodRequest) throws -> Tensor {
        guard let text = request.layoutJSON else { throw PluginError.invalidArgument("multidiffusion needs a layout (--planner or --layout)") }
        let layout = try Layout.decode(json: text, source: "layout")
        let sampler = try Sampler(host: host, request: request, guidanceScale: Float(params["guidance_scale"]?.numberValue ?? 9))
        let pipeline = sampler.pipeline, runtime = sampler.models.tensors
        let (c, frames, h, w) = (sampler.latentShape[1], sampler.latentShape[2], sampler.latentShape[3], sampler.latentShape[4])
        let condition = Condition(layout, frames: frames)
        let objects = condition.names.count

        // Regions: 0 background, 1…O the objects; masks painted in object order (later wins).
        var owner = [Int](repeating: 0, count: frames * h * w)
        for o in 0..<objects {
            for f in 0..<frames {
                let cells = Grounding.rasterise(condition.boxes[o][f], height: h, width: w)
                for p in 0..<(h * w) where cells[p] != 0 { owner[f * h * w + p] = o + 1 }
            }
        }
        let masks = try (0...objects).map { r in try runtime.tensor(owner.map { $0 == r ? 1 : 0 }, shape: [1, 1, frames, h, w]) }
        let outside = try (0...objects).map { r in try runtime.tensor(owner.map { $0 == r ? 0 : 1 }, shape: [1, 1, frames, h, w]) }

        // Prompts and negatives per region.
        let background = layout.background.isEmpty ? (params["background_prompt"]?.stringValue ?? "A realistic scene") : layout.background
        let prompts = [background] + condition.names
        let imageNegatives = params["negatives"]?.stringValue == "image"
        let negativeTexts = prompts.indices.map { r in
            imageNegatives ? (r == 0 ? Self.imageNegative : Self.imageNegative + ", cut-out, partial, occluded, weird")
                : (request.negativePrompt ?? Sampler.defaultNegativePrompt)
        }
        let (positives, negatives) = try runtime.withoutGrad { () throws(PluginError) in
            (try pipeline.encode(prompts).hidden, try pipeline.encode(negativeTexts).hidden)
        }
        let positive = try prompts.indices.map { try positives.sliced(axis: 0, start: $0, end: $0 + 1) }
        let negative = try prompts.indices.map { try negatives.sliced(axis: 0, start: $0, end: $0 + 1) }
        host.log(.info, "regions: \(prompts.enumerated().map { "\($0.offset): \($0.element)" }.joined(separator: "; "))")

        // Bootstrapping pool: constant colours, each VAE-encoded once (a posterior sample) and
        // broadcast over the frames. Colours, samples and per-step picks come from one generator
        // seeded by SplitMix64 of the request seed (documented in the params).
        var random = SplitMix64(seed: request.seed ^ 0x4D75_6C74_6944_6966)
        let bootSteps = params["boot_steps"]?.intValue ?? 10, poolSize = params["pool_size"]?.intValue ?? 10
        var pool: [Tensor] = []
        if bootSteps > 0 && objects > 0 {
            let pixels = request.height * request.width
            for _ in 0..<poolSize {
                let colour = (0..<3).map { _ in Float(random.unit()) * 2 - 1 }
                let image = try runtime.tensor((0..<3).flatMap { channel in Array(repeating: colour[channel], count: pixels) },
                                               shape: [1, 3, request.height, request.width])
                let latent = try runtime.withoutGrad { () throws(PluginError) in try pipeline.encodeImages(image, sampleSeed: random.next()) }
                pool.append(try latent.reshaped([1, c, 1, h, w]))
            }
        }

        // One solver history per region: the sampler's scheduler serves the background.
        var schedulers = [sampler.scheduler]
        for _ in 0..<objects { schedulers.append(try pipeline.scheduler(steps: request.steps, className: "DPMSolverMultistepScheduler")) }
        let initial = try sampler.initialLatents()
        return try sampler.loop(from: initial) { step, z in
            try runtime.withoutGrad { () throws -> Tensor in
                let alpha = try sampler.scheduler.alphaCumprod(step.timestep)
                var regions = [z]
                for r in 1..<(objects + 1) {
                    if step.index < bootSteps && !pool.isEmpty {
                        let colour = pool[Int(random.next() % UInt64(pool.count))]
                        let noised = try colour * Float(alpha.squareRoot()) + initial * Float((1 - alpha).squareRoot())
                        regions.append(try z * masks[r] + noised * outside[r])
                    } else {
                        regions.append(z)
                    }
                }
                let noise = try sampler.predict(regions, step: step, negatives: negative, positives: positive)
                var fused: Tensor?
                for r in 0...objects {
                    let next = try schedulers[r].step(noise[r], index: step.index, sample: regions[r]) * masks[r]
                    fused = try fused.map { try $0 + next } ?? next
                }
                return fused!
            }
        }
    }
}

@_cdecl("lvd_plugin_entry")
public func lvdPluginEntry() -> UnsafePointer<lvd_plugin_library> {
    PluginExport.library(methods: [MultiDiffusion.self])
}
