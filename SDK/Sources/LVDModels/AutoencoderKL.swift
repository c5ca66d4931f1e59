import Foundation
import LVDRuntime

/// diffusers' AutoencoderKL (METHODS.md §2.6). Parameters only so far.
public struct AutoencoderKLConfiguration: Codable, Equatable, Sendable {
    public var inChannels = 3
    public var outChannels = 3
    public var latentChannels = 4
    public var blockOutChannels = [128, 256, 512, 512]
    public var layersPerBlock = 2
    public var normNumGroups = 32
    public var actFn = "silu"
    public var scalingFactor: Float = 0.18215
    public var downBlockTypes = Array(repeating: "DownEncoderBlock2D", count: 4)
    public var upBlockTypes = Array(repeating: "UpDecoderBlock2D", count: 4)

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels", latentChannels = "latent_channels"
        case blockOutChannels = "block_out_channels", layersPerBlock = "layers_per_block", normNumGroups = "norm_num_groups"
        case actFn = "act_fn", scalingFactor = "scaling_factor", downBlockTypes = "down_block_types", upBlockTypes = "up_block_types"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AutoencoderKLConfiguration()
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? d.inChannels
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? d.outChannels
        latentChannels = try c.decodeIfPresent(Int.self, forKey: .latentChannels) ?? d.latentChannels
        blockOutChannels = try c.decodeIfPresent([Int].self, forKey: .blockOutChannels) ?? d.blockOutChannels
        layersPerBlock = try c.decodeIfPresent(Int.self, forKey: .layersPerBlock) ?? d.layersPerBlock
        normNumGroups = try c.decodeIfPresent(Int.self, forKey: .normNumGroups) ?? d.normNumGroups
        actFn = try c.decodeIfPresent(String.self, forKey: .actFn) ?? d.actFn
        scalingFactor = try c.decodeIfPresent(Float.self, forKey: .scalingFactor) ?? d.scalingFactor
        downBlockTypes = try c.decodeIfPresent([String].self, forKey: .downBlockTypes) ?? d.downBlockTypes
        upBlockTypes = try c.decodeIfPresent([String].self, forKey: .upBlockTypes) ?? d.upBlockTypes
        // Newer diffusers options: accepted at the values that mean this architecture, refused otherwise.
        let extra = try decoder.container(keyedBy: ExtraKeys.self)
        for key in [ExtraKeys.midBlockAddAttention, .useQuantConv, .usePostQuantConv] {
            if let value = try extra.decodeIfPresent(Bool.self, forKey: key), !value { unsupported.append("\(key.rawValue) = false") }
        }
        if let shift = try extra.decodeIfPresent(Double.self, forKey: .shiftFactor) { unsupported.append("shift_factor = \(shift)") }
    }

    /// Options of newer diffusers this implementation does not have (reported by `validate`).
    var unsupported: [String] = []

    enum ExtraKeys: String, CodingKey {
        case midBlockAddAttention = "mid_block_add_attention", useQuantConv = "use_quant_conv"
        case usePostQuantConv = "use_post_quant_conv", shiftFactor = "shift_factor"
    }

    public func validate() throws(ConfigurationError) {
        func fail(_ key: CodingKeys, _ reason: String) -> ConfigurationError { ConfigurationError(key: key.rawValue, reason: reason) }
        guard !blockOutChannels.isEmpty, blockOutChannels.allSatisfy({ $0 > 0 && $0 % normNumGroups == 0 }) else {
            throw fail(.blockOutChannels, "must be positive multiples of norm_num_groups \(normNumGroups), got \(blockOutChannels)")
        }
        guard downBlockTypes.count == blockOutChannels.count, downBlockTypes.allSatisfy({ $0 == "DownEncoderBlock2D" }) else {
            throw fail(.downBlockTypes, "must be \(blockOutChannels.count) × DownEncoderBlock2D, got \(downBlockTypes)")
        }
        guard upBlockTypes.count == blockOutChannels.count, upBlockTypes.allSatisfy({ $0 == "UpDecoderBlock2D" }) else {
            throw fail(.upBlockTypes, "must be \(blockOutChannels.count) × UpDecoderBlock2D, got \(upBlockTypes)")
        }
        for (key, value) in [(CodingKeys.inChannels, inChannels), (.outChannels, outChannels), (.latentChannels, latentChannels),
                             (.layersPerBlock, layersPerBlock)] where value <= 0 {
            throw fail(key, "must be positive, got \(value)")
        }
        guard scalingFactor > 0 else { throw fail(.scalingFactor, "must be positive, got \(scalingFactor)") }
        guard actFn == "silu" else { throw fail(.actFn, "only \"silu\" is supported, got \"\(actFn)\"") }
        if let first = unsupported.first { throw ConfigurationError(key: String(first.prefix { $0 != " " }), reason: "\(first) is not supported") }
    }
}

/// The VAE's mid block: resnet, single-head self-attention with its own group norm, resnet.
public final class VAEMidBlock: Module {
    @Key("attentions") public var attentions: [Attention]
    @Key("resnets") public var resnets: [ResnetBlock2D]

    func callAsFunction(_ x: Tensor) throws(TensorError) -> Tensor {
        try resnets[1](spatialSelfAttention(resnets[0](x)))
    }

    /// Single-head self-attention over the H·W positions with its own group norm and a residual.
    private func spatialSelfAttention(_ x: Tensor) throws(TensorError) -> Tensor {
        let attention = attentions[0]
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        // (n, c, h, w) -> (n, c, h·w) -> (n, h·w, c)
        let tokens = try attention.groupNorm!(x).reshaped([n, c, h * w]).transposed(1, 2)
        let attended = try Tensor.attention(query: attention.toQ(tokens), key: attention.toK(tokens), value: attention.toV(tokens),
                                            scale: 1 / Float(attention.headDim).squareRoot()).output
        // (n, h·w, c) -> (n, c, h·w) -> (n, c, h, w)
        return try attention.toOut(attended).transposed(1, 2).reshaped([n, c, h, w]) + x
    }

    init(_ channels: Int, groups: Int) {
        super.init()
        attentions = [Attention(queryDim: channels, heads: 1, headDim: channels, bias: true, groupNorm: (groups, 1e-6))]
        resnets = (0..<2).map { _ in ResnetBlock2D(channels, channels, timeEmbedding: nil, groups: groups, eps: 1e-6) }
    }
}

public final class VAEBlock: Module {
    @Key("resnets") public var resnets: [ResnetBlock2D]
    @Key("downsamplers") public var downsamplers: [Downsample2D]
    @Key("upsamplers") public var upsamplers: [Upsample2D]

    init(resnets: [ResnetBlock2D], channels: Int, downsample: Bool = false, upsample: Bool = false) {
        super.init()
        self.resnets = resnets
        // The encoder's downsampler pads asymmetrically in forward (0, 1, 0, 1), so padding 0 here.
        downsamplers = downsample ? [Downsample2D(channels, padding: 0)] : []
        upsamplers = upsample ? [Upsample2D(channels)] : []
    }
}

public final class VAEEncoder: Module {
    @Key("conv_in") public var convIn: Conv2d
    @Key("down_blocks") public var downBlocks: [VAEBlock]
    @Key("mid_block") public var midBlock: VAEMidBlock
    @Key("conv_norm_out") public var convNormOut: GroupNorm
    @Key("conv_out") public var convOut: Conv2d

    func callAsFunction(_ image: Tensor) throws(TensorError) -> Tensor {
        var x = try convIn(image)
        for block in downBlocks {
            for resnet in block.resnets { x = try resnet(x) }
            for down in block.downsamplers { x = try down(x) }
        }
        return try convOut(convNormOut(midBlock(x), thenSiLU: true))
    }

    init(_ config: AutoencoderKLConfiguration) {
        super.init()
        let channels = config.blockOutChannels, groups = config.normNumGroups
        convIn = Conv2d(config.inChannels, channels[0], kernel: 3, padding: 1)
        var blocks: [VAEBlock] = []
        var output = channels[0]
        for index in channels.indices {
            let input = output
            output = channels[index]
            let resnets = (0..<config.layersPerBlock).map {
                ResnetBlock2D($0 == 0 ? input : output, output, timeEmbedding: nil, groups: groups, eps: 1e-6)
            }
            blocks.append(VAEBlock(resnets: resnets, channels: output, downsample: index < channels.count - 1))
        }
        downBlocks = blocks
        midBlock = VAEMidBlock(channels[channels.count - 1], groups: groups)
        convNormOut = GroupNorm(groups: groups, channels: channels[channels.count - 1], eps: 1e-6)
        convOut = Conv2d(channels[channels.count - 1], 2 * config.latentChannels, kernel: 3, padding: 1)
    }
}

public final class VAEDecoder: Module {
    @Key("conv_in") public var convIn: Conv2d
    @Key("up_blocks") public var upBlocks: [VAEBlock]
    @Key("mid_block") public var midBlock: VAEMidBlock
    @Key("conv_norm_out") public var convNormOut: GroupNorm
    @Key("conv_out") public var convOut: Conv2d

    func callAsFunction(_ latents: Tensor) throws(TensorError) -> Tensor {
        var x = try midBlock(convIn(latents))
        for block in upBlocks {
            for resnet in block.resnets { x = try resnet(x) }
            for up in block.upsamplers { x = try up(x) }
        }
        return try convOut(convNormOut(x, thenSiLU: true))
    }

    init(_ config: AutoencoderKLConfiguration) {
        super.init()
        let reversed = Array(config.blockOutChannels.reversed()), groups = config.normNumGroups
        convIn = Conv2d(config.latentChannels, reversed[0], kernel: 3, padding: 1)
        midBlock = VAEMidBlock(reversed[0], groups: groups)
        var blocks: [VAEBlock] = []
        var previous = reversed[0]
        for index in reversed.indices {
            let output = reversed[index]
            let resnets = (0...config.layersPerBlock).map {
                ResnetBlock2D($0 == 0 ? previous : output, output, timeEmbedding: nil, groups: groups, eps: 1e-6)
            }
            blocks.append(VAEBlock(resnets: resnets, channels: output, upsample: index < reversed.count - 1))
            previous = output
        }
        upBlocks = blocks
        convNormOut = GroupNorm(groups: groups, channels: config.blockOutChannels[0], eps: 1e-6)
        convOut = Conv2d(config.blockOutChannels[0], config.outChannels, kernel: 3, padding: 1)
    }
}

public final class AutoencoderKL: Module {
    public private(set) var configuration = AutoencoderKLConfiguration()
    @Key("encoder") public var encoder: VAEEncoder
    @Key("decoder") public var decoder: VAEDecoder
    @Key("quant_conv") public var quantConv: Conv2d
    @Key("post_quant_conv") public var postQuantConv: Conv2d

    /// Images (N, 3, H, W) in [−1, 1] from latents (N, 4, H/8, W/8) as the UNet sees them
    /// (divided by the scaling factor first).
    public func decode(_ latents: Tensor) throws(TensorError) -> Tensor {
        try decoder(postQuantConv(latents * (1 / configuration.scalingFactor)))
    }

    /// Latents of images (N, 3, H, W) in [−1, 1], times the scaling factor: the mean of the
    /// latent distribution (its mode), or with `noise` (N, C, H/8, W/8) a sample of it,
    /// mean + exp(½·clamp(logvar, −30, 20))·noise (diffusers' DiagonalGaussianDistribution).
    public func encode(_ images: Tensor, noise: Tensor? = nil) throws(TensorError) -> Tensor {
        let moments = try quantConv(encoder(images))
        let c = configuration.latentChannels
        var latents = try moments.sliced(axis: 1, start: 0, end: c)
        if let noise {
            guard noise.shape == latents.shape else {
                throw .invalidArgument(op: "vae_encode", "noise \(noise.shape) does not match the latents \(latents.shape)")
            }
            let logVariance = try moments.sliced(axis: 1, start: c, end: 2 * c)
            let clamped = try Tensor.maximum(Tensor.maximum(logVariance, Tensor.scalar(-30)) * -1, Tensor.scalar(-20)) * -1
            latents = try latents + (clamped * 0.5).exp() * noise
        }
        return try latents * configuration.scalingFactor
    }

    /// Video frames from decoded images: v = clamp(x/2 + 0.5, 0, 1), uint8 = trunc(255·v)
    /// (METHODS.md §2.6), as (N, H, W, 3).
    public static func frames(_ images: Tensor) throws(TensorError) -> Tensor {
        let unit = try Tensor.maximum(Tensor.maximum((images * 0.5 + 0.5) * -1, Tensor.scalar(-1)) * -1, Tensor.scalar(0))
        // (n, 3, h, w) -> (n, h, w, 3)
        return try (unit * 255).permuted([0, 2, 3, 1]).contiguous().to(.u8)
    }

    public static func load(folder: String) throws(ModelError) -> AutoencoderKL {
        try ModelFolder.loadModel(folder: folder, AutoencoderKLConfiguration.self) { config throws(ConfigurationError) in try AutoencoderKL(config) }
    }

    public init(_ config: AutoencoderKLConfiguration) throws(ConfigurationError) {
        try config.validate()
        super.init()
        configuration = config
        encoder = VAEEncoder(config)
        decoder = VAEDecoder(config)
        quantConv = Conv2d(2 * config.latentChannels, 2 * config.latentChannels, kernel: 1)
        postQuantConv = Conv2d(config.latentChannels, config.latentChannels, kernel: 1)
    }
}
