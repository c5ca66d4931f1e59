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
        var h = try conv1(norm1(x).silu())
        if let timeEmbProj, let timeEmbedding {
            // (n, c) -> (n, c, 1, 1)
            let t = try timeEmbProj(timeEmbedding.silu())
            h = try h + t.reshaped([t.shape[0], t.shape[1], 1, 1])
        }
        h = try conv2(norm2(h).silu())
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

public final class UNet3DConditionModel: Module {
    public private(set) var configuration = UNet3DConfiguration()

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
