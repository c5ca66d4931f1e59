import Foundation
import LVDRuntime

/// UNet3DConditionModel as diffusers defines it (ModelScope / Zeroscope), plus LVD-GLIGEN's
/// grounding modules when `attentionType == "gated"` (METHODS.md §2, §10). Parameters only so far:
/// the forward pass builds on these modules.
public struct UNet3DConfiguration: Codable, Equatable, Sendable {
    public var inChannels = 4
    public var outChannels = 4
    public var blockOutChannels = [320, 640, 1280, 1280]
    public var downBlockTypes = ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"]
    public var upBlockTypes = ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"]
    public var layersPerBlock = 2
    /// The head *size* (a historical naming quirk of diffusers' UNet3D).
    public var attentionHeadDim = 64
    public var crossAttentionDim = 1024
    public var normNumGroups = 32
    public var normEps: Float = 1e-5
    public var actFn = "silu"
    public var downsamplePadding = 1
    public var sampleSize: Int? = 32
    /// "default", or "gated" for LVD-GLIGEN checkpoints (PositionNet + fusers).
    public var attentionType = "default"

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels", blockOutChannels = "block_out_channels"
        case downBlockTypes = "down_block_types", upBlockTypes = "up_block_types", layersPerBlock = "layers_per_block"
        case attentionHeadDim = "attention_head_dim", crossAttentionDim = "cross_attention_dim"
        case normNumGroups = "norm_num_groups", normEps = "norm_eps", actFn = "act_fn"
        case downsamplePadding = "downsample_padding", sampleSize = "sample_size", attentionType = "attention_type"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = UNet3DConfiguration()
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? d.inChannels
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? d.outChannels
        blockOutChannels = try c.decodeIfPresent([Int].self, forKey: .blockOutChannels) ?? d.blockOutChannels
        downBlockTypes = try c.decodeIfPresent([String].self, forKey: .downBlockTypes) ?? d.downBlockTypes
        upBlockTypes = try c.decodeIfPresent([String].self, forKey: .upBlockTypes) ?? d.upBlockTypes
        layersPerBlock = try c.decodeIfPresent(Int.self, forKey: .layersPerBlock) ?? d.layersPerBlock
        attentionHeadDim = try c.decodeIfPresent(Int.self, forKey: .attentionHeadDim) ?? d.attentionHeadDim
        crossAttentionDim = try c.decodeIfPresent(Int.self, forKey: .crossAttentionDim) ?? d.crossAttentionDim
        normNumGroups = try c.decodeIfPresent(Int.self, forKey: .normNumGroups) ?? d.normNumGroups
        normEps = try c.decodeIfPresent(Float.self, forKey: .normEps) ?? d.normEps
        actFn = try c.decodeIfPresent(String.self, forKey: .actFn) ?? d.actFn
        downsamplePadding = try c.decodeIfPresent(Int.self, forKey: .downsamplePadding) ?? d.downsamplePadding
        sampleSize = try c.decodeIfPresent(Int.self, forKey: .sampleSize) ?? d.sampleSize
        attentionType = try c.decodeIfPresent(String.self, forKey: .attentionType) ?? d.attentionType
        // Options that would change the computation: accepted only at their neutral values.
        let extra = try decoder.container(keyedBy: ExtraKeys.self)
        if try extra.decodeIfPresent(Int.self, forKey: .numAttentionHeads) != nil { unsupported.append("num_attention_heads") }
        if try extra.decodeIfPresent(Int.self, forKey: .timeCondProjDim) != nil { unsupported.append("time_cond_proj_dim") }
        if let scale = try extra.decodeIfPresent(Double.self, forKey: .midBlockScaleFactor), scale != 1 { unsupported.append("mid_block_scale_factor") }
    }

    /// Keys set to values this implementation does not support (reported by `validate`).
    var unsupported: [String] = []

    enum ExtraKeys: String, CodingKey {
        case numAttentionHeads = "num_attention_heads", timeCondProjDim = "time_cond_proj_dim", midBlockScaleFactor = "mid_block_scale_factor"
    }

    /// Checks what the architecture needs; the message names the key and value.
    public func validate() throws(ConfigurationError) {
        func fail(_ key: CodingKeys, _ reason: String) -> ConfigurationError { ConfigurationError(key: key.rawValue, reason: reason) }
        guard inChannels > 0 else { throw fail(.inChannels, "must be positive, got \(inChannels)") }
        guard outChannels > 0 else { throw fail(.outChannels, "must be positive, got \(outChannels)") }
        guard !blockOutChannels.isEmpty, blockOutChannels.allSatisfy({ $0 > 0 }) else {
            throw fail(.blockOutChannels, "must be a non-empty list of positive channel counts, got \(blockOutChannels)")
        }
        guard downBlockTypes.count == blockOutChannels.count, upBlockTypes.count == blockOutChannels.count else {
            throw fail(.downBlockTypes, "down (\(downBlockTypes.count)) and up (\(upBlockTypes.count)) block lists must match block_out_channels (\(blockOutChannels.count))")
        }
        for type in downBlockTypes where !["CrossAttnDownBlock3D", "DownBlock3D"].contains(type) {
            throw fail(.downBlockTypes, "unknown block type '\(type)' (CrossAttnDownBlock3D, DownBlock3D)")
        }
        for type in upBlockTypes where !["CrossAttnUpBlock3D", "UpBlock3D"].contains(type) {
            throw fail(.upBlockTypes, "unknown block type '\(type)' (CrossAttnUpBlock3D, UpBlock3D)")
        }
        guard layersPerBlock >= 1 else { throw fail(.layersPerBlock, "must be ≥ 1, got \(layersPerBlock)") }
        guard attentionHeadDim > 0, blockOutChannels.allSatisfy({ $0 % attentionHeadDim == 0 }) else {
            throw fail(.attentionHeadDim, "\(attentionHeadDim) must divide every block's channels \(blockOutChannels)")
        }
        guard normNumGroups > 0, blockOutChannels.allSatisfy({ $0 % normNumGroups == 0 }) else {
            throw fail(.normNumGroups, "\(normNumGroups) must divide every block's channels \(blockOutChannels)")
        }
        guard normEps > 0, normEps < 1 else { throw fail(.normEps, "must be in (0, 1), got \(normEps)") }
        guard crossAttentionDim > 0 else { throw fail(.crossAttentionDim, "must be positive, got \(crossAttentionDim)") }
        guard actFn == "silu" else { throw fail(.actFn, "only \"silu\" is supported, got \"\(actFn)\"") }
        guard ["default", "gated"].contains(attentionType) else {
            throw fail(.attentionType, "must be \"default\" or \"gated\", got \"\(attentionType)\"")
        }
        if let key = unsupported.first { throw ConfigurationError(key: key, reason: "is set; this option is not supported") }
    }
}

/// A configuration value the models cannot use; the loader adds the file.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public var key: String
    public var reason: String
    public var description: String { "\(key): \(reason)" }
}

// MARK: - Blocks, in forward order

/// Sinusoidal timestep features → Linear → SiLU → Linear.
public final class TimestepEmbedding: Module {
    @Key("linear_1") public var linear1: Linear
    @Key("linear_2") public var linear2: Linear
    public init(_ input: Int, _ output: Int) {
        super.init()
        linear1 = Linear(input, output)
        linear2 = Linear(output, output)
    }
}

/// GLIGEN's grounding-token projection (diffusers `GLIGENTextBoundingboxProjection`, text only):
/// Fourier features of boxes (8 frequencies × sin/cos × 4 coordinates = 64) and phrase embeddings.
public final class PositionNet: Module {
    @Key("linears") public var linears: [Module]
    @Key("null_positive_feature") public var nullPositive: Parameter
    @Key("null_position_feature") public var nullPosition: Parameter

    /// Grounding tokens (N, slots, out) from boxes (N, slots, 4) in normalised xyxy, masks (N, slots)
    /// of 1/0 and phrase embeddings (N, slots, positiveDim) (METHODS.md §10.4).
    public func callAsFunction(boxes: Tensor, masks: Tensor, embeddings: Tensor) throws(TensorError) -> Tensor {
        let (n, slots) = (boxes.shape[0], boxes.shape[1])
        let fourier = try PositionNet.fourier(boxes.toArray(), count: n * slots).reshaped([n, slots, 64])
        let m = try masks.reshaped([n, slots, 1])
        let position = try fourier * m + (1 - m) * nullPosition.tensor.reshaped([1, 1, -1])
        let positive = try embeddings * m + (1 - m) * nullPositive.tensor.reshaped([1, 1, -1])
        var x = try Tensor.concat([positive, position], axis: 2)
        for (index, layer) in linears.enumerated() {
            guard let linear = layer as? Linear else { continue }
            x = try linear(x)
            if index < linears.count - 1 { x = try x.silu() }
        }
        return x
    }

    /// four(b)[8k + 4s + c] = (s == 0 ? sin : cos)(100^(k/8) · b[c]) for each box (64 values).
    public static func fourierFeatures(_ boxes: [Float]) throws(TensorError) -> [Float] {
        try fourier(boxes, count: boxes.count / 4).toArray()
    }

    static func fourier(_ boxes: [Float], count: Int) throws(TensorError) -> Tensor {
        var values = [Float](repeating: 0, count: count * 64)
        for box in 0..<count {
            for k in 0..<8 {
                let frequency = Foundation.pow(100.0, Double(k) / 8)
                for c in 0..<4 {
                    let v = frequency * Double(boxes[box * 4 + c])
                    values[box * 64 + 8 * k + c] = Float(Foundation.sin(v))
                    values[box * 64 + 8 * k + 4 + c] = Float(Foundation.cos(v))
                }
            }
        }
        return try Tensor(values, shape: [count * 64])
    }

    public init(positiveDim: Int, outputDim: Int, fourierFrequencies: Int = 8) {
        super.init()
        let positionDim = fourierFrequencies * 2 * 4
        // Sequential(Linear, SiLU, Linear, SiLU, Linear): parameters at indices 0, 2, 4.
        linears = [Linear(positiveDim + positionDim, 512), Empty(), Linear(512, 512), Empty(), Linear(512, outputDim)]
        nullPositive = Parameter([positiveDim])
        nullPosition = Parameter([positionDim])
    }
}

/// A parameter-free member of a torch Sequential (activation, dropout): keeps indices aligned.
public final class Empty: Module {}

public final class ResnetBlock2D: Module {
    @Key("norm1") public var norm1: GroupNorm
    @Key("conv1") public var conv1: Conv2d
    @Key("time_emb_proj") public var timeEmbProj: Linear?
    @Key("norm2") public var norm2: GroupNorm
    @Key("conv2") public var conv2: Conv2d
    @Key("conv_shortcut") public var convShortcut: Conv2d?

    /// GN → SiLU → conv1 [+ Linear(SiLU(temb)) per channel] → GN → SiLU → conv2, plus the
    /// (1×1-projected when channels change) input. x (N, C, H, W), temb (N, T).
    public func callAsFunction(_ x: Tensor, timeEmbedding: Tensor? = nil) throws(TensorError) -> Tensor {
        var h = try conv1(norm1(x, thenSiLU: true))
        if let timeEmbProj, let timeEmbedding {
            // (n, c) -> (n, c, 1, 1)
            let t = try timeEmbProj(timeEmbedding.silu())
            h = try h + t.reshaped([t.shape[0], t.shape[1], 1, 1])
        }
        h = try conv2(norm2(h, thenSiLU: true))
        return try (convShortcut.map { shortcut throws(TensorError) in try shortcut(x) } ?? x) + h
    }

    public init(_ input: Int, _ output: Int, timeEmbedding: Int?, groups: Int, eps: Float) {
        super.init()
        norm1 = GroupNorm(groups: groups, channels: input, eps: eps)
        conv1 = Conv2d(input, output, kernel: 3, padding: 1)
        timeEmbProj = timeEmbedding.map { Linear($0, output) }
        norm2 = GroupNorm(groups: groups, channels: output, eps: eps)
        conv2 = Conv2d(output, output, kernel: 3, padding: 1)
        convShortcut = input != output ? Conv2d(input, output, kernel: 1) : nil
    }
}

/// Four GN → SiLU → Conv3d(3,1,1) stages with a residual (diffusers `TemporalConvLayer`):
/// torch Sequentials, so the norms are at index 0 and the convs at 2 (stage 1) or 3 (stages 2–4).
public final class TemporalConvLayer: Module {
    public final class Stage: Module {
        @Key("0") public var norm: GroupNorm
        @Key("2") public var conv2: TemporalConv3d?
        @Key("3") public var conv3: TemporalConv3d?
        public var conv: TemporalConv3d { (conv2 ?? conv3)! }

        init(_ channels: Int, groups: Int, convIndex: Int) {
            super.init()
            norm = GroupNorm(groups: groups, channels: channels, eps: 1e-5)
            conv2 = convIndex == 2 ? TemporalConv3d(channels, channels) : nil
            conv3 = convIndex == 3 ? TemporalConv3d(channels, channels) : nil
        }
    }

    @Key("conv1") public var conv1: Stage
    @Key("conv2") public var conv2: Stage
    @Key("conv3") public var conv3: Stage
    @Key("conv4") public var conv4: Stage

    /// x (B·F, C, H, W) → x + stages(x) with frames as depth.
    public func callAsFunction(_ x: Tensor, frames: Int) throws(TensorError) -> Tensor {
        let (bf, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        // (b f) c h w -> b f c h w -> b c f h w
        let video = try x.reshaped([bf / frames, frames, c, h, w]).permuted([0, 2, 1, 3, 4])
        var y = video
        for stage in [conv1, conv2, conv3, conv4] { y = try stage.conv(stage.norm(y, thenSiLU: true)) }
        // b c f h w -> b f c h w -> (b f) c h w
        return try (video + y).permuted([0, 2, 1, 3, 4]).reshaped([bf, c, h, w])
    }

    public init(_ channels: Int, groups: Int) {
        super.init()
        conv1 = Stage(channels, groups: groups, convIndex: 2)
        conv2 = Stage(channels, groups: groups, convIndex: 3)
        conv3 = Stage(channels, groups: groups, convIndex: 3)
        conv4 = Stage(channels, groups: groups, convIndex: 3)
    }
}

/// Spatial transformer (diffusers `Transformer2DModel`, linear projections, one block).
public final class Transformer2DModel: Module {
    @Key("norm") public var norm: GroupNorm
    @Key("proj_in") public var projIn: Linear
    @Key("transformer_blocks") public var blocks: [BasicTransformerBlock]
    @Key("proj_out") public var projOut: Linear

    /// x (N, C, H, W) with text context (N, 77, D); grounding tokens (N, 30, D) feed the fuser.
    public func callAsFunction(_ x: Tensor, context: Tensor, objects: Tensor? = nil, capture: Bool = false)
        throws(TensorError) -> (output: Tensor, probabilities: Tensor?) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        // n c h w -> n h w c -> n (h w) c
        var tokens = try projIn(norm(x).permuted([0, 2, 3, 1]).reshaped([n, h * w, c]))
        var probabilities: Tensor?
        for block in blocks { (tokens, probabilities) = try block(tokens, context: context, objects: objects, capture: capture) }
        // n (h w) c -> n h w c -> n c h w
        let out = try projOut(tokens).reshaped([n, h, w, c]).permuted([0, 3, 1, 2])
        return (try out + x, probabilities)
    }

    public init(channels: Int, heads: Int, headDim: Int, crossAttentionDim: Int, groups: Int, gated: Bool) {
        super.init()
        let inner = heads * headDim
        norm = GroupNorm(groups: groups, channels: channels, eps: 1e-6)
        projIn = Linear(channels, inner)
        blocks = [BasicTransformerBlock(dim: inner, heads: heads, headDim: headDim, crossAttentionDim: crossAttentionDim, gated: gated)]
        projOut = Linear(inner, channels)
    }
}

/// Temporal transformer over frames (diffusers `TransformerTemporalModel`): both attentions are
/// self-attention over the frame axis.
public final class TransformerTemporalModel: Module {
    @Key("norm") public var norm: GroupNorm
    @Key("proj_in") public var projIn: Linear
    @Key("transformer_blocks") public var blocks: [BasicTransformerBlock]
    @Key("proj_out") public var projOut: Linear

    /// x (B·F, C, H, W): attention over the frame axis at every position.
    public func callAsFunction(_ x: Tensor, frames: Int) throws(TensorError) -> Tensor {
        let (bf, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]), b = bf / frames
        // (b f) c h w -> b f c h w -> b c f h w, normalised over (c/groups, f, h, w)
        let video = try norm(x.reshaped([b, frames, c, h, w]).permuted([0, 2, 1, 3, 4]))
        // b c f h w -> b h w f c -> (b h w) f c
        var tokens = try projIn(video.permuted([0, 3, 4, 2, 1]).reshaped([b * h * w, frames, c]))
        for block in blocks { tokens = try block(tokens, context: nil).output }
        // (b h w) f c -> b h w f c -> b f c h w -> (b f) c h w
        let out = try projOut(tokens).reshaped([b, h, w, frames, c]).permuted([0, 3, 4, 1, 2]).reshaped([bf, c, h, w])
        return try out + x
    }

    public init(channels: Int, heads: Int, headDim: Int, groups: Int) {
        super.init()
        let inner = heads * headDim
        norm = GroupNorm(groups: groups, channels: channels, eps: 1e-6)
        projIn = Linear(channels, inner)
        blocks = [BasicTransformerBlock(dim: inner, heads: heads, headDim: headDim, crossAttentionDim: nil)]
        projOut = Linear(inner, channels)
    }
}

public final class Downsample2D: Module {
    @Key("conv") public var conv: Conv2d
    public init(_ channels: Int, padding: Int) { super.init(); conv = Conv2d(channels, channels, kernel: 3, stride: 2, padding: padding) }

    /// Stride-2 3×3 convolution; with padding 0 (the VAE encoder) the input is first padded by
    /// one on the right and bottom only, as diffusers does.
    public func callAsFunction(_ x: Tensor) throws(TensorError) -> Tensor {
        if conv.padding == 0 { return try conv(x.padded([(0, 1), (0, 1)])) }
        return try conv(x)
    }
}

public final class Upsample2D: Module {
    @Key("conv") public var conv: Conv2d
    public init(_ channels: Int) { super.init(); conv = Conv2d(channels, channels, kernel: 3, padding: 1) }

    /// Nearest ×2, then a 3×3 convolution.
    public func callAsFunction(_ x: Tensor) throws(TensorError) -> Tensor { try conv(x.upsampleNearest2x()) }
}

/// One down or up block of UNet3D: layers of Resnet → TemporalConv [→ Transformer2D →
/// TransformerTemporal], then an optional resampler.
public final class UNet3DBlock: Module {
    @Key("resnets") public var resnets: [ResnetBlock2D]
    @Key("temp_convs") public var tempConvs: [TemporalConvLayer]
    @Key("attentions") public var attentions: [Transformer2DModel]
    @Key("temp_attentions") public var tempAttentions: [TransformerTemporalModel]
    @Key("downsamplers") public var downsamplers: [Downsample2D]
    @Key("upsamplers") public var upsamplers: [Upsample2D]

    init(resnets: [ResnetBlock2D], channels: Int, crossAttention: Bool, config: UNet3DConfiguration,
         downsample: Bool = false, upsample: Bool = false) {
        super.init()
        let heads = channels / config.attentionHeadDim, groups = config.normNumGroups
        self.resnets = resnets
        tempConvs = resnets.map { _ in TemporalConvLayer(channels, groups: groups) }
        attentions = crossAttention ? resnets.map { _ in
            Transformer2DModel(channels: channels, heads: heads, headDim: config.attentionHeadDim,
                               crossAttentionDim: config.crossAttentionDim, groups: groups, gated: config.attentionType == "gated")
        } : []
        tempAttentions = crossAttention ? resnets.map { _ in
            TransformerTemporalModel(channels: channels, heads: heads, headDim: config.attentionHeadDim, groups: groups)
        } : []
        downsamplers = downsample ? [Downsample2D(channels, padding: config.downsamplePadding)] : []
        upsamplers = upsample ? [Upsample2D(channels)] : []
    }
}

/// Identifies a spatial cross-attention layer (METHODS.md §4.5): the Transformer2D `attn2` of
/// layer `layer` of down / mid / up block `block`.
public struct AttentionKey: Hashable, Sendable, CustomStringConvertible {
    public enum Part: String, Sendable { case down, mid, up }
    public var part: Part
    public var block: Int
    public var layer: Int

    public init(_ part: Part, _ block: Int, _ layer: Int) {
        self.part = part
        self.block = block
        self.layer = layer
    }

    public var description: String { "(\(part.rawValue),\(block),\(layer),0)" }
}

/// GLIGEN grounding inputs for one UNet pass, per (batch · frame): boxes (N, 30, 4) normalised
/// xyxy, masks (N, 30), phrase embeddings (N, 30, D).
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

public final class UNet3DConditionModel: Module {
    public private(set) var configuration = UNet3DConfiguration()

    public struct Output {
        /// (B, out channels, F, h, w)
        public var sample: Tensor
        /// Cross-attention probabilities (B·F, heads, h·w, tokens) of the requested keys.
        public var attention: [AttentionKey: Tensor]
    }

    /// The noise prediction for latents (B, C, F, h, w) at `timestep` with text context
    /// (B, tokens, D); `capture` names the cross-attention layers whose probabilities to return
    /// (differentiable); `grounding` runs the GLIGEN fusers (ignored by a model without them).
    /// `recompute` checkpoints each layer (resnet, temporal conv, transformers) when the tape is
    /// on: backward runs the layer again instead of keeping its intermediates (diffusers'
    /// gradient checkpointing) — the same values and gradients for a fraction of the memory.
    public func callAsFunction(_ latents: Tensor, timestep: Float, context: Tensor,
                               capture: Set<AttentionKey> = [], grounding: Grounding? = nil,
                               recompute: Bool = false) throws(TensorError) -> Output {
        guard latents.rank == 5, context.rank == 3, context.shape[0] == latents.shape[0] else {
            throw .invalidArgument(op: "unet", "needs latents (B, C, F, h, w) and context (B, tokens, D), got \(latents.shape) and \(context.shape)")
        }
        let (b, c, frames, h, w) = (latents.shape[0], latents.shape[1], latents.shape[2], latents.shape[3], latents.shape[4])
        let levels = configuration.blockOutChannels.count - 1
        guard h % (1 << levels) == 0, w % (1 << levels) == 0 else {
            throw .invalidArgument(op: "unet", "latent size \(h)×\(w) must be divisible by \(1 << levels)")
        }
        if let unknown = capture.subtracting(attentionKeys).first {
            throw .invalidArgument(op: "unet", "no cross-attention layer \(unknown.name) to capture (this UNet has \(attentionKeys.map(\.name).joined(separator: " ")))")
        }
        // Timestep embedding, repeated per frame (batch-major: index b·F + f).
        let embedding = try timeEmbedding.linear2(timeEmbedding.linear1(sinusoid(timestep, batch: b)).silu())
        let temb = try repeatPerFrame(embedding, frames)
        let ctx = try repeatPerFrame(context, frames)
        let objects = try grounding.flatMap { g throws(TensorError) -> Tensor? in
            try positionNet.map { net throws(TensorError) in try net(boxes: g.boxes, masks: g.masks, embeddings: g.embeddings) }
        }
        // What every layer reads besides its input: [temb, ctx(, objects)].
        let conditioning = [temb, ctx] + (objects.map { [$0] } ?? [])
        var captured: [AttentionKey: Tensor] = [:]

        /// Resnet → temporal conv (→ spatial transformer → temporal transformer) on inputs
        /// [x, temb, ctx(, objects)], returning [x(, probabilities)], checkpointed with `recompute`.
        func layer(_ x: Tensor, _ resnet: ResnetBlock2D, _ tempConv: TemporalConvLayer,
                   _ transformers: (Transformer2DModel, TransformerTemporalModel)?, _ key: AttentionKey?) throws(TensorError) -> Tensor {
            let wanted = key.map(capture.contains) ?? false
            let body: ([Tensor]) throws(TensorError) -> [Tensor] = { t throws(TensorError) in
                var y = try tempConv(resnet(t[0], timeEmbedding: t[1]), frames: frames)
                guard let (spatial, temporal) = transformers else { return [y] }
                let (z, probabilities) = try spatial(y, context: t[2], objects: t.count > 3 ? t[3] : nil, capture: wanted)
                y = try temporal(z, frames: frames)
                return [y] + (probabilities.map { [$0] } ?? [])
            }
            let outputs = recompute ? try Tensor.checkpointed([x] + conditioning, body) : try body([x] + conditioning)
            if let key, outputs.count > 1 { captured[key] = outputs[1] }
            return outputs[0]
        }

        // b c f h w -> b f c h w -> (b f) c h w
        var x = try convIn(latents.permuted([0, 2, 1, 3, 4]).reshaped([b * frames, c, h, w]))
        x = try transformerIn(x, frames: frames)
        var skips = [x]
        for (index, block) in downBlocks.enumerated() {
            for i in block.resnets.indices {
                let attention = block.attentions.isEmpty ? nil : (block.attentions[i], block.tempAttentions[i])
                x = try layer(x, block.resnets[i], block.tempConvs[i], attention, attention == nil ? nil : AttentionKey(.down, index, i))
                skips.append(x)
            }
            for down in block.downsamplers {
                x = try down(x)
                skips.append(x)
            }
        }
        x = try layer(x, midBlock.resnets[0], midBlock.tempConvs[0], (midBlock.attentions[0], midBlock.tempAttentions[0]), AttentionKey(.mid, 0, 0))
        x = try layer(x, midBlock.resnets[1], midBlock.tempConvs[1], nil, nil)
        for (index, block) in upBlocks.enumerated() {
            for i in block.resnets.indices {
                let attention = block.attentions.isEmpty ? nil : (block.attentions[i], block.tempAttentions[i])
                x = try layer(Tensor.concat([x, skips.removeLast()], axis: 1), block.resnets[i], block.tempConvs[i], attention,
                              attention == nil ? nil : AttentionKey(.up, index, i))
            }
            for up in block.upsamplers { x = try up(x) }
        }
        x = try convOut(convNormOut(x, thenSiLU: true))
        // (b f) c h w -> b f c h w -> b c f h w
        let sample = try x.reshaped([b, frames, x.shape[1], h, w]).permuted([0, 2, 1, 3, 4])
        return Output(sample: sample, attention: captured)
    }

    /// Every spatial cross-attention layer, in forward order: the keys `capture` accepts.
    public var attentionKeys: [AttentionKey] {
        var keys: [AttentionKey] = []
        for (index, block) in downBlocks.enumerated() { keys += block.attentions.indices.map { AttentionKey(.down, index, $0) } }
        keys += midBlock.attentions.indices.map { AttentionKey(.mid, 0, $0) }
        for (index, block) in upBlocks.enumerated() { keys += block.attentions.indices.map { AttentionKey(.up, index, $0) } }
        return keys
    }

    /// The UNet of a diffusers folder: config.json and safetensors weights, loaded strictly
    /// (GLIGEN modules are expected exactly when the config's attention_type is "gated").
    public static func load(folder: String) throws(ModelError) -> UNet3DConditionModel {
        try ModelFolder.loadModel(folder: folder, UNet3DConfiguration.self) { config throws(ConfigurationError) in try UNet3DConditionModel(config) }
    }

    /// (b, …) -> (b·frames, …), each row repeated `frames` times in place (repeat_interleave).
    private func repeatPerFrame(_ t: Tensor, _ frames: Int) throws(TensorError) -> Tensor {
        var shape = t.shape
        shape.insert(frames, at: 1)
        let expanded = try t.unsqueezed(1).expanded(shape).contiguous()
        shape.remove(at: 1)
        shape[0] *= frames
        return try expanded.reshaped(shape)
    }

    /// diffusers' Timesteps(dim, flip_sin_to_cos: true, downscale_freq_shift: 0): [cos, sin] of t·e^(−ln(10000)·i/half).
    private func sinusoid(_ t: Float, batch: Int) throws(TensorError) -> Tensor {
        let dim = configuration.blockOutChannels[0], half = dim / 2
        // In float32 step by step, as torch computes it.
        let logPeriod = Float(-Foundation.log(10000.0))
        var values: [Float] = []
        for i in 0..<half { values.append(Foundation.exp(logPeriod * Float(i) / Float(half)) * t) }
        let row = values.map { Foundation.cos($0) } + values.map { Foundation.sin($0) }
        return try Tensor(Array([[Float]](repeating: row, count: batch).joined()), shape: [batch, dim])
    }

    @Key("conv_in") public var convIn: Conv2d
    @Key("time_embedding") public var timeEmbedding: TimestepEmbedding
    @Key("transformer_in") public var transformerIn: TransformerTemporalModel
    @Key("position_net") public var positionNet: PositionNet?
    @Key("down_blocks") public var downBlocks: [UNet3DBlock]
    @Key("mid_block") public var midBlock: UNet3DBlock
    @Key("up_blocks") public var upBlocks: [UNet3DBlock]
    @Key("conv_norm_out") public var convNormOut: GroupNorm
    @Key("conv_out") public var convOut: Conv2d

    public init(_ config: UNet3DConfiguration) throws(ConfigurationError) {
        super.init()
        try config.validate()
        configuration = config
        let channels = config.blockOutChannels, groups = config.normNumGroups, eps = config.normEps
        let timeDim = channels[0] * 4
        convIn = Conv2d(config.inChannels, channels[0], kernel: 3, padding: 1)
        timeEmbedding = TimestepEmbedding(channels[0], timeDim)
        // transformer_in: 8 heads of attention_head_dim over the first block's channels.
        transformerIn = TransformerTemporalModel(channels: channels[0], heads: 8, headDim: config.attentionHeadDim, groups: groups)
        positionNet = config.attentionType == "gated"
            ? PositionNet(positiveDim: config.crossAttentionDim, outputDim: config.crossAttentionDim) : nil

        var down: [UNet3DBlock] = []
        var output = channels[0]
        for (index, type) in config.downBlockTypes.enumerated() {
            let input = output
            output = channels[index]
            let resnets = (0..<config.layersPerBlock).map {
                ResnetBlock2D($0 == 0 ? input : output, output, timeEmbedding: timeDim, groups: groups, eps: eps)
            }
            down.append(UNet3DBlock(resnets: resnets, channels: output, crossAttention: type == "CrossAttnDownBlock3D",
                                    config: config, downsample: index < channels.count - 1))
        }
        downBlocks = down

        let last = channels[channels.count - 1]
        midBlock = UNet3DBlock(
            resnets: (0..<2).map { _ in ResnetBlock2D(last, last, timeEmbedding: timeDim, groups: groups, eps: eps) },
            channels: last, crossAttention: true, config: config)
        // The mid block has one attention layer between its two resnets.
        midBlock.attentions = Array(midBlock.attentions.prefix(1))
        midBlock.tempAttentions = Array(midBlock.tempAttentions.prefix(1))

        var up: [UNet3DBlock] = []
        let reversed = Array(channels.reversed())
        var previous = reversed[0]
        for (index, type) in config.upBlockTypes.enumerated() {
            let output = reversed[index], input = reversed[Swift.min(index + 1, channels.count - 1)]
            let layers = config.layersPerBlock + 1
            let resnets = (0..<layers).map { layer in
                let skip = layer == layers - 1 ? input : output
                return ResnetBlock2D((layer == 0 ? previous : output) + skip, output, timeEmbedding: timeDim, groups: groups, eps: eps)
            }
            up.append(UNet3DBlock(resnets: resnets, channels: output, crossAttention: type == "CrossAttnUpBlock3D",
                                  config: config, upsample: index < channels.count - 1))
            previous = output
        }
        upBlocks = up
        convNormOut = GroupNorm(groups: groups, channels: channels[0], eps: eps)
        convOut = Conv2d(channels[0], config.outChannels, kernel: 3, padding: 1)
    }
}
