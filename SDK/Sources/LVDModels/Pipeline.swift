import Foundation
import LVDFormats
import LVDRuntime

/// A loaded text-to-video pipeline folder (diffusers layout): tokenizer, CLIP text encoder,
/// UNet3D (with GLIGEN adapters when the checkpoint has them), VAE and the scheduler
/// configuration. Immutable once loaded, so concurrent calls are safe.
public final class Pipeline: @unchecked Sendable {
    public let folder: ModelFolder
    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    public let unet: UNet3DConditionModel
    public let vae: AutoencoderKL
    public let scheduler: SchedulerConfiguration
    /// scheduler_config.json as read, for building another class from it (from_config).
    private let schedulerJSON: JSONObject
    private let schedulerFile: String

    /// The scheduler used when a folder has none: the one ModelScope / Zeroscope ship.
    public static let defaultSchedulerJSON = #"""
        {"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
         "num_train_timesteps": 1000, "prediction_type": "epsilon", "clip_sample": false, "set_alpha_to_one": false,
         "steps_offset": 1}
        """#

    public init(path: String) throws(ModelError) {
        let folder = try ModelFolder(path: path)
        self.folder = folder
        func component(_ kind: ModelFolder.Kind, _ name: String) throws(ModelError) -> ModelFolder.Component {
            guard let found = folder[kind] else {
                throw ModelError(file: path + "/model_index.json", reason: "names no \(name) component")
            }
            return found
        }
        tokenizer = try CLIPTokenizer(folder: component(.tokenizer, "tokenizer").folder)
        textEncoder = try CLIPTextModel.load(folder: component(.clipText, "text encoder (CLIPTextModel)").folder)
        unet = try UNet3DConditionModel.load(folder: component(.unet3d, "UNet3DConditionModel").folder)
        vae = try AutoencoderKL.load(folder: component(.vae, "VAE (AutoencoderKL)").folder)
        if let schedulerFolder = folder[.scheduler]?.folder {
            schedulerFile = schedulerFolder + "/scheduler_config.json"
            guard let object = try ModelFolder.readJSON(schedulerFile).objectValue else { throw ModelError(file: schedulerFile, reason: "must be a JSON object") }
            schedulerJSON = object
        } else {
            schedulerFile = "default scheduler"
            schedulerJSON = try! JSONValue.parse(Self.defaultSchedulerJSON).objectValue!
        }
        scheduler = try SchedulerConfiguration(json: schedulerJSON, file: schedulerFile)
        guard textEncoder.configuration.hiddenSize == unet.configuration.crossAttentionDim else {
            throw ModelError(file: path, reason: "text encoder width \(textEncoder.configuration.hiddenSize) != UNet cross_attention_dim \(unet.configuration.crossAttentionDim)")
        }
        guard vae.configuration.latentChannels == unet.configuration.inChannels else {
            throw ModelError(file: path, reason: "VAE latent_channels \(vae.configuration.latentChannels) != UNet in_channels \(unet.configuration.inChannels)")
        }
    }

    /// The scheduler configuration as another class would read it (diffusers' `from_config`:
    /// the reference builds DPM-Solver++ from the DDIM configuration the checkpoints ship).
    public func schedulerConfiguration(className: String?) throws(ModelError) -> SchedulerConfiguration {
        guard let className else { return scheduler }
        return try SchedulerConfiguration(json: schedulerJSON, className: className, file: schedulerFile)
    }

    /// Pixels per latent cell: 2^(VAE levels − 1).
    public var vaeScaleFactor: Int { 1 << (vae.configuration.blockOutChannels.count - 1) }
    /// Latent cells per side the UNet's input must be divisible by.
    public var latentMultiple: Int { 1 << (unet.configuration.blockOutChannels.count - 1) }
    public var hasGLIGEN: Bool { unet.positionNet != nil }

    /// Conditioning for `texts`: (count, maxLength, D) hidden states and (count, D) pooled outputs.
    public func encode(_ texts: [String]) throws(TensorError) -> CLIPTextModel.Output {
        try textEncoder(texts.map { tokenizer.encode($0).ids })
    }

    /// The token strings of `text` as the encoder sees them: BOS, the text's tokens, EOS (no
    /// padding), truncated to maxLength, with their ids.
    public func tokens(_ text: String) -> (ids: [Int], strings: [String]) {
        let encoding = tokenizer.encode(text)
        let count = encoding.eosIndex + 1
        return (Array(encoding.ids.prefix(count)), Array(encoding.tokens.prefix(count)))
    }

    /// Video frames (N, H, W, 3) uint8 from latents (1, C, F, h, w) or (N, C, h, w), decoded one
    /// frame at a time as the reference does (memory stays that of one frame).
    public func decodeVideo(_ latents: Tensor) throws(TensorError) -> Tensor {
        let frames: Tensor
        switch latents.rank {
        case 5 where latents.shape[0] == 1:
            frames = try latents.reshaped(Array(latents.shape.dropFirst())).permuted([1, 0, 2, 3])
        case 4:
            frames = latents
        default:
            throw .invalidArgument(op: "vae_decode", "needs latents (1, C, F, h, w) or (N, C, h, w), got \(latents.shape)")
        }
        guard frames.shape[1] == vae.configuration.latentChannels else {
            throw .invalidArgument(op: "vae_decode", "latents have \(frames.shape[1]) channels, the VAE \(vae.configuration.latentChannels)")
        }
        var bytes: [UInt8] = []
        var frameShape: [Int] = []
        try GradMode.withoutGrad { () throws(TensorError) in
            for index in 0..<frames.shape[0] {
                let frame = try AutoencoderKL.frames(vae.decode(frames.sliced(axis: 0, start: index, end: index + 1).contiguous()))
                frameShape = Array(frame.shape.dropFirst())
                bytes += UnsafeRawBufferPointer(start: frame.storage.bytes + frame.offset, count: frame.count)
            }
        }
        let shape = [frames.shape[0]] + frameShape
        let video = try Tensor.empty(shape, dtype: .u8)
        video.storage.bytes.copyMemory(from: bytes, byteCount: bytes.count)
        return video
    }

    /// The attention keys whose cross-attention probabilities the UNet can capture.
    public var attentionKeys: [AttentionKey] { unet.attentionKeys }

    /// A description for plugins (lvd.model/1 `pipeline_info`).
    public var info: JSONObject {
        let unetConfig = unet.configuration
        let channels = unetConfig.blockOutChannels
        let keys: [JSONValue] = attentionKeys.map { key in
            let level: Int, width: Int
            switch key.part {
            case .down: level = key.block; width = channels[key.block]
            case .mid: level = channels.count - 1; width = channels[channels.count - 1]
            case .up: level = channels.count - 1 - key.block; width = channels[channels.count - 1 - key.block]
            }
            return .object(JSONObject([
                "key": .string(key.name), "channels": .number(Double(width)),
                "heads": .number(Double(width / unetConfig.attentionHeadDim)), "downsample": .number(Double(1 << level)),
            ]))
        }
        return JSONObject([
            "folder": .string(folder.path),
            "pipeline_class": .string(folder.pipelineClass),
            "latent_channels": .number(Double(unetConfig.inChannels)),
            "vae_scale_factor": .number(Double(vaeScaleFactor)),
            "latent_multiple": .number(Double(latentMultiple)),
            "scaling_factor": .number(Double(vae.configuration.scalingFactor)),
            "max_tokens": .number(Double(tokenizer.maxLength)),
            "context_dim": .number(Double(unetConfig.crossAttentionDim)),
            "gligen": .bool(hasGLIGEN),
            "gligen_max_objects": .number(30),
            "scheduler": .string(scheduler.className),
            "num_train_timesteps": .number(Double(scheduler.numTrainTimesteps)),
            "attention_keys": .array(keys),
        ])
    }
}

extension AttentionKey {
    /// "down,1,0": the form plugins name keys in.
    public var name: String { "\(part.rawValue),\(block),\(layer)" }

    /// Parses "down,1,0" or the spec's "(down,1,0,0)" (the fourth index must be 0).
    public init?(name: String) {
        var text = Substring(name.filter { !$0.isWhitespace })
        if text.hasPrefix("("), text.hasSuffix(")") { text = text.dropFirst().dropLast() }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 3 || (parts.count == 4 && parts[3] == "0"),
              let part = Part(rawValue: String(parts[0])), let block = Int(parts[1]), let layer = Int(parts[2]),
              block >= 0, layer >= 0 else { return nil }
        self.init(part, block, layer)
    }
}
