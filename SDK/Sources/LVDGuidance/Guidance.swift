import LVDFormats
import LVDGrounding
import LVDPluginKit
import LVDSDK
import LVDStage1

/// What the attention-guidance methods share (METHODS.md §4): the layout's objects with their
/// prompt tokens and per-frame boxes, the attention layers to capture, the box masks on each
/// layer's grid, and the guidance loop of §4.7.
public struct GuidanceSetup {
    public struct Object {
        public init(name: String, tokens: [Int], boxes: [[Double]]) {
            self.name = name
            self.tokens = tokens
            self.boxes = boxes
        }

        public var name: String
        /// Absolute token positions of the name in the generation prompt.
        public var tokens: [Int]
        /// Normalised xyxy per video frame, [0, 0, 0, 0] where absent.
        public var boxes: [[Double]]
    }

    public struct Layer {
        public init(key: String, heads: Int, height: Int, width: Int) {
            self.key = key
            self.heads = heads
            self.height = height
            self.width = width
        }

        public var key: String
        public var heads: Int
        public var height: Int
        public var width: Int
    }

    /// LVD's keys (K_LVD).
    public static let lvdKeys = ["down,1,0", "down,2,0", "down,2,1", "up,1,0", "up,1,1", "up,2,2"]

    public let prompt: String
    public let objects: [Object]
    public let layers: [Layer]
    public let frames: Int

    /// A setup from its parts (tests, custom methods).
    public init(prompt: String, objects: [Object], layers: [Layer], frames: Int) {
        self.prompt = prompt
        self.objects = objects
        self.layers = layers
        self.frames = frames
    }

    /// `keys` "auto" = `defaultKeys` when the UNet has all of them, else every cross-attention
    /// layer it has (a small model); otherwise a space-separated list of keys.
    public init(layout: Layout, pipeline: Pipeline, frames: Int, latentHeight: Int, latentWidth: Int,
                keys: String, defaultKeys: [String], log: (String) -> Void) throws {
        prompt = Grounding.generationPrompt(layout)
        self.frames = frames
        let condition = Condition(layout, frames: frames)
        let tokens: (String) throws -> [String] = { text in try pipeline.tokenize(text).tokens }
        var objects: [Object] = []
        for (index, name) in condition.names.enumerated() {
            let positions = try Grounding.positions(prompt: prompt, phrase: name, maxTokens: pipeline.maxTokens, tokens: tokens)
            objects.append(Object(name: name, tokens: positions, boxes: condition.boxes[index]))
        }
        self.objects = objects
        let available = pipeline.attentionLayers
        let wanted: [String]
        if keys == "auto" {
            wanted = defaultKeys.allSatisfy({ available[$0] != nil }) ? defaultKeys : pipeline.attentionKeyOrder
            if wanted != defaultKeys { log("this UNet lacks the default layers \(defaultKeys.joined(separator: " ")); guiding with \(wanted.joined(separator: " "))") }
        } else {
            wanted = keys.split(separator: " ").map(String.init)
        }
        layers = try wanted.map { key in
            guard let layer = available[key] else {
                throw PluginError.invalidArgument("param keys: this UNet has no cross-attention layer \(key) (it has \(pipeline.attentionKeyOrder.joined(separator: " ")))")
            }
            return Layer(key: key, heads: layer.heads, height: latentHeight / layer.downsample, width: latentWidth / layer.downsample)
        }
    }

    /// Masks (frames, 1, cells) of one object's boxes on one layer's grid, and the count of cells
    /// each frame's box covers.
    public func masks(_ object: Object, _ layer: Layer) -> (values: [Float], inside: [Int]) {
        var values: [Float] = []
        var inside: [Int] = []
        for box in object.boxes {
            let mask = Grounding.rasterise(box, height: layer.height, width: layer.width)
            values += mask
            inside.append(Int(mask.reduce(0, +)))
        }
        return (values, inside)
    }
}

/// The guidance loop of METHODS.md §4.7, with its reference quirks: the loss compared with the
/// threshold is the one computed before the last update, it persists across sampling steps
/// (starting at 10000), and once below the threshold guidance stops for good.
public final class GuidanceLoop {
    public let scale: Float
    public let threshold: Float
    public let maxIterations: Int
    public let maxIndexStep: Int
    /// The last scaled loss (10000 before any).
    public private(set) var previousLoss: Float = 10000
    /// Every unscaled energy evaluated, in order (for reports and tests).
    public private(set) var energies: [Float] = []

    public init(scale: Float, threshold: Float, maxIterations: Int, maxIndexStep: Int) {
        self.scale = scale
        self.threshold = threshold
        self.maxIterations = maxIterations
        self.maxIndexStep = maxIndexStep
    }

    /// The latents after this step's guidance: z ← z − √(1 − ᾱ_t)·∇(s·E) while the stale loss is
    /// above the threshold, at most `maxIterations` times, for steps before `maxIndexStep`.
    public func guide(_ latents: Tensor, stepIndex: Int, alphaCumprod: Double, energy: (Tensor) throws -> Tensor) throws -> Tensor {
        guard stepIndex < maxIndexStep else { return latents }
        var z = latents
        var iteration = 0
        while previousLoss / scale > threshold && iteration < maxIterations {
            z = try z.detached().requiringGrad()
            let e = try energy(z)
            let loss = try e * scale
            try loss.backward()
            guard let gradient = try z.grad() else { throw PluginError(LVD_ERR_INTERNAL, "the energy does not depend on the latents") }
            z = try (z - gradient * Float((1 - alphaCumprod).squareRoot())).detached()
            previousLoss = try loss.item()
            energies.append(previousLoss / scale)
            iteration += 1
        }
        return z
    }
}

extension GuidanceLoop {
    /// A method's defaults for the loop's params.
    public struct Defaults: Sendable {
        public var scale: Double
        public var threshold: Double
        public var maxIterations: Int
        public var maxIndexStep: Int

        public init(scale: Double, threshold: Double, maxIterations: Int, maxIndexStep: Int = 10) {
            self.scale = scale
            self.threshold = threshold
            self.maxIterations = maxIterations
            self.maxIndexStep = maxIndexStep
        }

        /// LVD's benchmark values (METHODS.md §13), also LVD+'s.
        public static let lvd = Defaults(scale: 5, threshold: 200, maxIterations: 5)
    }

    /// The loop's params — loss_scale, loss_threshold, max_iter, max_index_step — with a
    /// method's defaults; `thresholdNote` adds what τ means for that method's energy.
    public static func params(_ defaults: Defaults, thresholdNote: String? = nil) -> [ParamsSchema.Param] {
        [
            .init("loss_scale", .number, default: .number(defaults.scale),
                  description: "s: the energy's scale in the update z ← z − s·√(1−ᾱ_t)·∇E", minimum: 0),
            .init("loss_threshold", .number, default: .number(defaults.threshold),
                  description: "τ: guidance stops for good once the previous scaled loss / s falls below it" + (thresholdNote.map { " (\($0))" } ?? ""),
                  minimum: 0),
            .init("max_iter", .integer, default: .number(Double(defaults.maxIterations)),
                  description: "gradient steps per sampling step at most", minimum: 0, maximum: 100),
            .init("max_index_step", .integer, default: .number(Double(defaults.maxIndexStep)),
                  description: "guide the sampling steps n < this", minimum: 0, maximum: 1000),
        ]
    }

    /// A loop from a method's resolved params (the host fills in every default from the schema;
    /// `defaults` serve a caller that passes fewer).
    public convenience init(params: JSONObject = JSONObject(), defaults: Defaults) {
        self.init(scale: Float(params["loss_scale"]?.numberValue ?? defaults.scale),
                  threshold: Float(params["loss_threshold"]?.numberValue ?? defaults.threshold),
                  maxIterations: params["max_iter"]?.intValue ?? defaults.maxIterations,
                  maxIndexStep: params["max_index_step"]?.intValue ?? defaults.maxIndexStep)
    }
}

/// LVD's cross-attention energy (METHODS.md §6.2): per layer, object, frame and token, top-k
/// mass inside the box (foreground) and outside it (background), and optionally the centre of
/// mass of the attention against the box's and its frame-to-frame velocity; summed over heads and
/// frames, averaged over tokens, objects and layers.
public struct LVDEnergy {
    public var foregroundTopP: Float = 0.75
    public var backgroundTopP: Float = 0.75
    public var foregroundWeight: Float = 1
    public var backgroundWeight: Float = 4
    public var centreWeight: Float = 0.03

    public init() {}

    /// E from the captured maps, one per layer of `setup` (frames, heads, cells, tokens).
    public func callAsFunction(_ maps: [Tensor], setup: GuidanceSetup, runtime: TensorRuntime) throws -> Tensor {
        var total: Tensor?
        for (layer, map) in zip(setup.layers, maps) {
            for object in setup.objects {
                let term = try objectEnergy(map, layer: layer, object: object, setup: setup, runtime: runtime)
                total = try total.map { try $0 + term } ?? term
            }
        }
        guard let total else { return try runtime.tensor([0], shape: []) }
        return try total / Float(setup.objects.count * setup.layers.count)
    }

    /// E_κ,o: Σ over frames and tokens of ℓ, divided by the number of tokens.
    func objectEnergy(_ map: Tensor, layer: GuidanceSetup.Layer, object: GuidanceSetup.Object, setup: GuidanceSetup,
                      runtime: TensorRuntime) throws -> Tensor {
        let frames = setup.frames, heads = layer.heads, cells = layer.height * layer.width
        let (maskValues, inside) = setup.masks(object, layer)
        let mask = try runtime.tensor(maskValues, shape: [frames, 1, cells])
        let outside = try runtime.tensor(maskValues.map { 1 - $0 }, shape: [frames, 1, cells])
        // k per frame: trunc of a float32 product, at least 1; the top-k of the largest k, each
        // frame averaging its own first k (the values come sorted).
        let kForeground = inside.map { Swift.max(1, Int(Float($0) * foregroundTopP)) }
        let kBackground = inside.map { Swift.max(1, Int(Float(cells - $0) * backgroundTopP)) }
        func averaging(_ ks: [Int]) throws -> (Tensor, Int) {
            let width = ks.max()!
            var weights = [Float](repeating: 0, count: frames * width)
            for (f, k) in ks.enumerated() { for i in 0..<k { weights[f * width + i] = 1 / Float(k) } }
            return (try runtime.tensor(weights, shape: [frames, 1, width]), width)
        }
        let (foregroundWeights, foregroundWidth) = try averaging(kForeground)
        let (backgroundWeights, backgroundWidth) = try averaging(kBackground)

        // Centres of mass of the boxes per frame, and which frames count (present; next present).
        var centreY = [Float](repeating: 0, count: frames), centreX = [Float](repeating: 0, count: frames)
        for f in 0..<frames where inside[f] > 0 {
            var sy: Float = 0, sx: Float = 0
            for p in 0..<cells where maskValues[f * cells + p] != 0 { sy += Float(p / layer.width); sx += Float(p % layer.width) }
            centreY[f] = sy / Float(inside[f])
            centreX[f] = sx / Float(inside[f])
        }
        let present = (0..<frames).map { inside[$0] > 0 ? 1 / Float(heads) : 0 }
        let moving = (0..<frames).map { f in inside[f] > 0 && inside[Swift.min(f + 1, frames - 1)] > 0 && f + 1 < frames ? 1 / Float(heads) : 0 }
        let rowIndex = try runtime.tensor((0..<cells).map { Float($0 / layer.width) }, shape: [1, 1, cells])
        let columnIndex = try runtime.tensor((0..<cells).map { Float($0 % layer.width) }, shape: [1, 1, cells])

        var sum: Tensor?
        for token in object.tokens {
            // (frames, heads, cells, tokens) -> (frames, heads, cells) of this token
            let a = try map.sliced(axis: 3, start: token, end: token + 1).reshaped([frames, heads, cells])
            let top = try (a * mask).topK(foregroundWidth)
            let foreground = try (top * foregroundWeights).sum() * -1 + Float(frames * heads)
            let background = try ((a * outside).topK(backgroundWidth) * backgroundWeights).sum()
            var loss = try foreground * foregroundWeight + background * backgroundWeight
            if centreWeight > 0 {
                let mass = try a.sum(axes: [2])
                let cy = try (a * rowIndex).sum(axes: [2]) / mass, cx = try (a * columnIndex).sum(axes: [2]) / mass   // (frames, heads)
                let presentWeights = try runtime.tensor(present, shape: [frames, 1])
                var centre = try ((cy - runtime.tensor(centreY, shape: [frames, 1])).pow(2) * presentWeights).sum()
                centre = try centre + ((cx - runtime.tensor(centreX, shape: [frames, 1])).pow(2) * presentWeights).sum()
                if frames > 1 {
                    // Velocity: (c(f+1) − c(f)) − (box(f+1) − box(f)); the last frame has none.
                    func next(_ t: Tensor) throws -> Tensor { try Tensor.concat([t.sliced(axis: 0, start: 1, end: frames), t.sliced(axis: 0, start: frames - 1, end: frames)], axis: 0) }
                    func shifted(_ v: [Float]) -> [Float] { (0..<frames).map { v[Swift.min($0 + 1, frames - 1)] - v[$0] } }
                    let movingWeights = try runtime.tensor(moving, shape: [frames, 1])
                    let vy = try (next(cy) - cy) - runtime.tensor(shifted(centreY), shape: [frames, 1])
                    let vx = try (next(cx) - cx) - runtime.tensor(shifted(centreX), shape: [frames, 1])
                    centre = try centre + (vy.pow(2) * movingWeights).sum() + (vx.pow(2) * movingWeights).sum()
                }
                loss = try loss + centre * centreWeight
            }
            sum = try sum.map { try $0 + loss } ?? loss
        }
        return try sum! / Float(object.tokens.count)
    }
}

/// Backward guidance's ratio energy (METHODS.md §7.2): for every layer, object, frame and token,
/// the share of the attention inside the box, act = Σ(a ⊙ M) / (Σa + 0.01), enters as
/// mean over heads of (1 − act)²; summed over frames, averaged over tokens, objects and layers.
public struct RatioEnergy {
    public init() {}

    public func callAsFunction(_ maps: [Tensor], setup: GuidanceSetup, runtime: TensorRuntime) throws -> Tensor {
        var total: Tensor?
        for (layer, map) in zip(setup.layers, maps) {
            let cells = layer.height * layer.width
            for object in setup.objects {
                let mask = try runtime.tensor(setup.masks(object, layer).values, shape: [setup.frames, 1, cells])
                var sum: Tensor?
                for token in object.tokens {
                    let a = try map.sliced(axis: 3, start: token, end: token + 1).reshaped([setup.frames, layer.heads, cells])
                    let act = try (a * mask).sum(axes: [2]) / (a.sum(axes: [2]) + 0.01)
                    let loss = try (act * -1 + 1).pow(2).sum() / Float(layer.heads)
                    sum = try sum.map { try $0 + loss } ?? loss
                }
                let term = try sum! / Float(object.tokens.count)
                total = try total.map { try $0 + term } ?? term
            }
        }
        guard let total else { return try runtime.tensor([0], shape: []) }
        return try total / Float(setup.objects.count * setup.layers.count)
    }
}

/// The whole guided generation of LVD, LVD+ and backward guidance (METHODS.md §4.7, §6.3, §7.2):
/// the layout's generation prompt, a guidance pass per iteration that captures the layers'
/// attention with the positive prompt only (no grounding), the method's energy, the loop's
/// update, then CFG and the scheduler step.
public struct GuidedGeneration {
    public var keys = "auto"
    public var defaultKeys = GuidanceSetup.lvdKeys
    public var guidanceScale: Float = 9
    public var recompute = false

    public init() {}

    public func run(host: HostContext, request: MethodRequest, loop: GuidanceLoop,
                    energy: @escaping ([Tensor], GuidanceSetup, TensorRuntime) throws -> Tensor,
                    grounding: ((Sampler.Step, GuidanceSetup) throws -> Pipeline.Grounding?)? = nil) throws -> Tensor {
        guard let text = request.layoutJSON else { throw PluginError.invalidArgument("this method needs a layout (--planner or --layout)") }
        let layout = try Layout.decode(json: text, source: "layout")
        let sampler = try Sampler(host: host, request: request, guidanceScale: guidanceScale)
        let pipeline = sampler.pipeline
        let setup = try GuidanceSetup(layout: layout, pipeline: pipeline, frames: request.frames,
                                      latentHeight: sampler.latentShape[3], latentWidth: sampler.latentShape[4],
                                      keys: keys, defaultKeys: defaultKeys) { host.log(.info, $0) }
        host.log(.info, "generation prompt: \(setup.prompt)")
        let groundingHook = grounding.map { hook in { (step: Sampler.Step) throws -> Pipeline.Grounding? in try hook(step, setup) } }
        if setup.objects.isEmpty {
            // [F] The reference produces no video for a layout without objects; sample unguided.
            host.log(.warning, "the layout has no objects: sampling without guidance")
            return try sampler.run(prompt: setup.prompt, grounding: groundingHook)
        }
        let context = try sampler.context(setup.prompt)
        let capture = setup.layers.map(\.key)
        let video = try sampler.run(prompt: setup.prompt, guide: { step, latents in
            try loop.guide(latents, stepIndex: step.index, alphaCumprod: try sampler.scheduler.alphaCumprod(step.timestep)) { z in
                let maps = try pipeline.unet(z, timestep: Double(step.timestep), context: context, capture: capture, recompute: recompute).attention
                let e = try energy(maps, setup, sampler.models.tensors)
                host.log(.debug, "step \(step.index): energy \(try e.item())")
                return e
            }
        }, grounding: groundingHook)
        if let first = loop.energies.first, let last = loop.energies.last {
            host.log(.info, "guidance: \(loop.energies.count) updates, energy \(first) → \(last)")
        }
        return video
    }
}

extension GuidedGeneration {
    /// The params every attention-guided method takes — keys, guidance_scale, recompute —
    /// with `keys` described for the method (its default layers).
    public static func params(keys description: String) -> [ParamsSchema.Param] {
        [
            .init("keys", .string, default: .string("auto"), description: description),
            .init("guidance_scale", .number, default: .number(9), description: "classifier-free guidance scale", minimum: 0),
            .init("recompute", .boolean, default: .bool(false),
                  description: "recompute layers in the guidance backward (needed for full-size models at 16+ frames in 24 GiB)"),
        ]
    }

    /// Keys, guidance scale and recompute from a method's resolved params.
    public init(params: JSONObject) {
        keys = params["keys"]?.stringValue ?? "auto"
        guidanceScale = Float(params["guidance_scale"]?.numberValue ?? 9)
        recompute = params["recompute"]?.boolValue ?? false
    }
}
