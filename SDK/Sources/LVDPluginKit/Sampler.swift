import LVDSDK

/// The sampling core every method shares (METHODS.md §3): prompt encoding with the negative
/// prompt, seeded initial latents, the scheduler loop with classifier-free guidance, progress
/// and cancellation through the host, and the VAE decode. A method supplies only what makes it
/// different: a `guide` hook that moves the latents before a step's prediction (§4.7) and a
/// `grounding` hook for GLIGEN inputs.
public final class Sampler {
    /// The video negative prompt of the reference (§3.4).
    public static let defaultNegativePrompt = "dull, gray, unrealistic, colorless, blurry, low-quality, weird, abrupt"

    public struct Step: Sendable {
        /// 0-based step number, the training timestep, and the number of steps.
        public let index: Int
        public let timestep: Int
        public let count: Int
    }

    public let host: HostContext
    public let models: ModelRuntime
    public let pipeline: Pipeline
    public let request: MethodRequest
    public let scheduler: Scheduler
    /// (1, C, F, h, w)
    public let latentShape: [Int]
    public var guidanceScale: Float

    /// Checks the request against the pipeline; `schedulerClass` as the reference samples
    /// (DPM-Solver++ 2M built from the folder's configuration).
    public init(host: HostContext, request: MethodRequest, guidanceScale: Float = 9,
                schedulerClass: String? = "DPMSolverMultistepScheduler") throws(PluginError) {
        guard let models = ModelRuntime(host: host) else { throw PluginError.unsupported("the host offers no lvd.model/1 table") }
        guard let raw = request.pipeline else {
            throw PluginError.invalidArgument("no model pipeline in the request (the host loads one from --model)")
        }
        let pipeline = try models.pipeline(raw)
        let multiple = pipeline.vaeScaleFactor * pipeline.latentMultiple
        guard request.width > 0, request.height > 0, request.width % multiple == 0, request.height % multiple == 0 else {
            throw PluginError.invalidArgument("size \(request.width)x\(request.height): width and height must be positive multiples of \(multiple) for this model")
        }
        guard request.frames >= 1 else { throw PluginError.invalidArgument("frames \(request.frames): at least 1") }
        guard request.steps >= 1 else { throw PluginError.invalidArgument("steps \(request.steps): at least 1") }
        self.host = host
        self.models = models
        self.pipeline = pipeline
        self.request = request
        self.guidanceScale = guidanceScale
        scheduler = try pipeline.scheduler(steps: request.steps, className: schedulerClass)
        latentShape = [1, pipeline.latentChannels, request.frames, request.height / pipeline.vaeScaleFactor, request.width / pipeline.vaeScaleFactor]
    }

    /// The text conditioning (1, tokens, D) of `prompt`.
    public func context(_ prompt: String) throws(PluginError) -> Tensor {
        try models.tensors.withoutGrad { () throws(PluginError) in try pipeline.encode([prompt]).hidden }
    }

    /// The negative prompt's conditioning: the request's, or the reference's default.
    public func negativeContext() throws(PluginError) -> Tensor {
        try context(request.negativePrompt ?? Self.defaultNegativePrompt)
    }

    /// z_T: standard normal latents from the request's seed.
    public func initialLatents() throws(PluginError) -> Tensor { try models.randn(latentShape, seed: request.seed) }

    /// The guided noise prediction ε_u + g·(ε_c − ε_u), both halves in one batch
    /// [negative, positive]; `grounding`, when given, covers both halves (2·F rows).
    public func predict(_ latents: Tensor, step: Step, negative: Tensor, positive: Tensor,
                        grounding: Pipeline.Grounding? = nil) throws(PluginError) -> Tensor {
        try predict([latents], step: step, negatives: [negative], positives: [positive], grounding: grounding)[0]
    }

    /// Guided predictions for several latents with their own prompt pairs, all in one UNet batch
    /// [negatives…, positives…] (MultiDiffusion's regions).
    public func predict(_ latents: [Tensor], step: Step, negatives: [Tensor], positives: [Tensor],
                        grounding: Pipeline.Grounding? = nil) throws(PluginError) -> [Tensor] {
        let n = latents.count
        guard n > 0, negatives.count == n, positives.count == n else { throw PluginError.invalidArgument("predict: one prompt pair per latents") }
        return try models.tensors.withoutGrad { () throws(PluginError) in
            let batch = try Tensor.concat(latents + latents, axis: 0)
            let context = try Tensor.concat(negatives + positives, axis: 0)
            let noise = try pipeline.unet(batch, timestep: Double(step.timestep), context: context, grounding: grounding).noise
            return try (0..<n).map { i throws(PluginError) in
                let unconditional = try noise.sliced(axis: 0, start: i, end: i + 1), conditional = try noise.sliced(axis: 0, start: n + i, end: n + i + 1)
                return try unconditional + (conditional - unconditional) * guidanceScale
            }
        }
    }

    /// The loop every method runs: for each scheduler step, `body` returns the next latents
    /// from the current ones; progress is reported, the host's stop request honoured, and the
    /// final latents decoded to u8 frames (F, H, W, 3).
    public func loop(from initial: Tensor, _ body: (Step, Tensor) throws -> Tensor) throws -> Tensor {
        var latents = initial
        let timesteps = scheduler.timesteps
        for (index, timestep) in timesteps.enumerated() {
            try host.checkCancellation()
            latents = try body(Step(index: index, timestep: timestep, count: timesteps.count), latents)
            host.progress(done: index + 1, total: timesteps.count, what: "denoising step")
        }
        try host.checkCancellation()
        return try pipeline.decode(latents)
    }

    /// Runs the whole loop for `prompt` and decodes: u8 frames (F, H, W, 3). Before each step's
    /// prediction `guide` may return new latents (it runs with grad mode on); `grounding`
    /// gives the step's GLIGEN inputs or nil (fusers off). Reports each step as progress and
    /// stops with LVD_ERR_CANCELLED when the host asks.
    public func run(prompt: String,
                    guide: ((Step, Tensor) throws -> Tensor)? = nil,
                    grounding: ((Step) throws -> Pipeline.Grounding?)? = nil) throws -> Tensor {
        let positive = try context(prompt), negative = try negativeContext()
        return try loop(from: initialLatents()) { step, current in
            var latents = current
            if let guide { latents = try guide(step, latents).detached() }
            let noise = try predict(latents, step: step, negative: negative, positive: positive, grounding: grounding?(step))
            return try scheduler.step(noise, index: step.index, sample: latents)
        }
    }
}
