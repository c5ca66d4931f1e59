import LVDFormats
import LVDSDK
#if canImport(Glibc)
import Glibc
#endif

/// The host's model runtime (`lvd.model/1`) for Swift plugins, over the C table only.
public final class ModelRuntime: @unchecked Sendable {
    let api: UnsafePointer<lvd_model_api>
    public let tensors: TensorRuntime

    /// The runtime the host offers, or nil when it offers no model or tensor table.
    public init?(host: HostContext) {
        guard let api = host.extensionTable(LVD_MODEL_EXTENSION_ID, as: lvd_model_api.self),
              let tensors = TensorRuntime(host: host) else { return nil }
        self.api = api
        self.tensors = tensors
    }

    /// Loads a diffusers pipeline folder.
    public func load(folder: String) throws(PluginError) -> Pipeline {
        var handle: OpaquePointer?
        try tensors.check { api.pointee.pipeline_load(folder, &handle, $0) }
        return try Pipeline(raw: handle!, runtime: self)
    }

    /// The pipeline a host passed in a request (borrowed: retained here, released with the value).
    public func pipeline(_ raw: OpaquePointer) throws(PluginError) -> Pipeline {
        try tensors.check { api.pointee.pipeline_retain(raw, $0) }
        return try Pipeline(raw: raw, runtime: self)
    }

    /// Standard normal noise from `seed` (torch.randn-compatible).
    public func randn(_ shape: [Int], seed: UInt64) throws(PluginError) -> Tensor {
        try tensors.make { out, error in api.pointee.randn(seed, UInt32(shape.count), shape.map(Int64.init), out, error) }
    }

    func string(_ call: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, UnsafeMutablePointer<lvd_error>) -> lvd_status) throws(PluginError) -> String {
        var text: UnsafeMutablePointer<CChar>?
        try tensors.check { call(&text, $0) }
        defer { api.pointee.free_string(text) }
        return String(cString: text!)
    }
}

/// A text-to-video pipeline of the host's model runtime.
public final class Pipeline: @unchecked Sendable {
    public let raw: OpaquePointer
    public let runtime: ModelRuntime

    /// What the pipeline is (model.h `pipeline_info`).
    public let info: JSONObject

    /// Takes over one reference to `raw`.
    init(raw: OpaquePointer, runtime: ModelRuntime) throws(PluginError) {
        let text: String
        do {
            text = try runtime.string { out, error in runtime.api.pointee.pipeline_info(raw, out, error) }
        } catch {
            _ = runtime.api.pointee.pipeline_release(raw, nil)
            throw error
        }
        self.raw = raw
        self.runtime = runtime
        info = (try? JSONValue.parse(text).objectValue) ?? JSONObject()
    }

    deinit { _ = runtime.api.pointee.pipeline_release(raw, nil) }

    private var tensors: TensorRuntime { runtime.tensors }

    public var latentChannels: Int { info["latent_channels"]?.intValue ?? 4 }
    public var vaeScaleFactor: Int { info["vae_scale_factor"]?.intValue ?? 8 }
    public var latentMultiple: Int { info["latent_multiple"]?.intValue ?? 1 }
    public var hasGLIGEN: Bool { info["gligen"]?.boolValue ?? false }
    public var maxTokens: Int { info["max_tokens"]?.intValue ?? 77 }

    /// Heads and downsampling of each capturable cross-attention layer, by key name ("down,1,0").
    public var attentionLayers: [String: (heads: Int, downsample: Int)] {
        var layers: [String: (heads: Int, downsample: Int)] = [:]
        for entry in info["attention_keys"]?.arrayValue ?? [] {
            guard let object = entry.objectValue, let key = object["key"]?.stringValue,
                  let heads = object["heads"]?.intValue, let downsample = object["downsample"]?.intValue else { continue }
            layers[key] = (heads, downsample)
        }
        return layers
    }

    /// The capturable cross-attention layers in forward order ("down,0,0", …).
    public var attentionKeyOrder: [String] {
        (info["attention_keys"]?.arrayValue ?? []).compactMap { $0.objectValue?["key"]?.stringValue }
    }

    /// Token strings (BOS … EOS, no padding) and ids of `text` as the encoder sees it.
    public func tokenize(_ text: String) throws(PluginError) -> (ids: [Int], tokens: [String]) {
        let json = try runtime.string { out, error in runtime.api.pointee.tokenize(raw, text, out, error) }
        guard let object = try? JSONValue.parse(json).objectValue,
              let ids = object["ids"]?.arrayValue?.compactMap(\.intValue), let tokens = object["tokens"]?.arrayValue?.compactMap(\.stringValue) else {
            throw PluginError(LVD_ERR_INTERNAL, "tokenize returned malformed JSON")
        }
        return (ids, tokens)
    }

    /// Hidden states (count, tokens, D) and pooled outputs (count, D) of `texts`.
    public func encode(_ texts: [String]) throws(PluginError) -> (hidden: Tensor, pooled: Tensor) {
        var hidden: OpaquePointer?, pooled: OpaquePointer?
        let copies = texts.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer<CChar>($0) }
        try tensors.check { error in
            pointers.withUnsafeBufferPointer { runtime.api.pointee.encode_text(raw, $0.baseAddress, UInt32(texts.count), &hidden, &pooled, error) }
        }
        return (Tensor(handle: hidden!, runtime: tensors), Tensor(handle: pooled!, runtime: tensors))
    }

    /// GLIGEN grounding inputs per (batch · frame): boxes (N, S, 4), masks (N, S), embeddings (N, S, D).
    public struct Grounding {
        public var boxes: Tensor
        public var masks: Tensor
        public var embeddings: Tensor
        public init(boxes: Tensor, masks: Tensor, embeddings: Tensor) {
            self.boxes = boxes
            self.masks = masks
            self.embeddings = embeddings
        }
    }

    /// The UNet's noise prediction for `latents` (B, C, F, h, w) and the cross-attention
    /// probabilities (B·F, heads, cells, tokens) of the `capture` keys, in their order.
    /// With `recompute`, backward runs each layer again instead of keeping its intermediates
    /// (gradient checkpointing: the same gradients in a fraction of the memory).
    public func unet(_ latents: Tensor, timestep: Double, context: Tensor, capture: [String] = [],
                     grounding: Grounding? = nil, recompute: Bool = false) throws(PluginError) -> (noise: Tensor, attention: [Tensor]) {
        let keys = capture.map { strdup($0) }
        defer { keys.forEach { free($0) } }
        let keyPointers = keys.map { UnsafePointer<CChar>($0) }
        var noise: OpaquePointer?
        var captured = [OpaquePointer?](repeating: nil, count: capture.count)
        try tensors.check { error in
            keyPointers.withUnsafeBufferPointer { names in
                captured.withUnsafeMutableBufferPointer { slots in
                    var call = lvd_unet_call(
                        struct_size: UInt32(MemoryLayout<lvd_unet_call>.size), latents: latents.handle.raw, timestep: timestep,
                        context: context.handle.raw, capture: names.baseAddress, capture_count: UInt32(capture.count),
                        flags: recompute ? UInt32(LVD_UNET_RECOMPUTE) : 0,
                        grounding_boxes: grounding?.boxes.handle.raw, grounding_masks: grounding?.masks.handle.raw,
                        grounding_embeddings: grounding?.embeddings.handle.raw)
                    return runtime.api.pointee.unet(raw, &call, &noise, slots.baseAddress, error)
                }
            }
        }
        return (Tensor(handle: noise!, runtime: tensors), captured.map { Tensor(handle: $0!, runtime: tensors) })
    }

    /// Video frames u8 (F, H, W, 3) from latents (1, C, F, h, w).
    public func decode(_ latents: Tensor) throws(PluginError) -> Tensor {
        try tensors.make { out, error in runtime.api.pointee.vae_decode(raw, latents.handle.raw, out, error) }
    }

    /// Latents (N, C, H/s, W/s) of images (N, 3, H, W) in [−1, 1]: the posterior mean, or a
    /// sample drawn with `sampleSeed`.
    public func encodeImages(_ images: Tensor, sampleSeed: UInt64? = nil) throws(PluginError) -> Tensor {
        try tensors.make { out, error in
            runtime.api.pointee.vae_encode(raw, images.handle.raw, sampleSeed != nil, sampleSeed ?? 0, out, error)
        }
    }

    /// A scheduler for `steps` steps (`className` overrides the folder's, as from_config).
    public func scheduler(steps: Int, className: String? = nil) throws(PluginError) -> Scheduler {
        var handle: OpaquePointer?
        try tensors.check { error in runtime.api.pointee.scheduler_create(raw, className, UInt32(steps), &handle, error) }
        return try Scheduler(raw: handle!, runtime: runtime)
    }
}

/// A denoising scheduler run: timesteps, ᾱ_t, and one step per call, in order.
public final class Scheduler: @unchecked Sendable {
    let raw: OpaquePointer
    let runtime: ModelRuntime
    public let timesteps: [Int]

    init(raw: OpaquePointer, runtime: ModelRuntime) throws(PluginError) {
        self.raw = raw
        self.runtime = runtime
        var count: UInt32 = 0
        try runtime.tensors.check { runtime.api.pointee.scheduler_timesteps(raw, nil, 0, &count, $0) }
        var values = [Int64](repeating: 0, count: Int(count))
        try runtime.tensors.check { runtime.api.pointee.scheduler_timesteps(raw, &values, count, &count, $0) }
        timesteps = values.map(Int.init)
    }

    deinit { runtime.api.pointee.scheduler_destroy(raw) }

    /// ᾱ at training timestep `t`.
    public func alphaCumprod(_ t: Int) throws(PluginError) -> Double {
        var value = 0.0
        try runtime.tensors.check { runtime.api.pointee.scheduler_alpha_cumprod(raw, Int64(t), &value, $0) }
        return value
    }

    /// The next sample from the model output at step `index`.
    public func step(_ modelOutput: Tensor, index: Int, sample: Tensor) throws(PluginError) -> Tensor {
        try runtime.tensors.make { out, error in
            runtime.api.pointee.scheduler_step(raw, modelOutput.handle.raw, UInt32(index), sample.handle.raw, out, error)
        }
    }
}
