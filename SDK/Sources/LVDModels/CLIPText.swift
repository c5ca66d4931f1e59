import Foundation
import LVDRuntime

/// transformers' CLIPTextModel (METHODS.md §2.5). Parameters only so far.
public struct CLIPTextConfiguration: Codable, Equatable, Sendable {
    public var vocabSize = 49408
    public var hiddenSize = 1024
    public var intermediateSize = 4096
    public var numHiddenLayers = 23
    public var numAttentionHeads = 16
    public var maxPositionEmbeddings = 77
    public var layerNormEps: Float = 1e-5
    public var hiddenAct = "gelu"
    public var eosTokenID = 2
    public var bosTokenID = 0
    public var padTokenID = 1

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings", layerNormEps = "layer_norm_eps", hiddenAct = "hidden_act"
        case eosTokenID = "eos_token_id", bosTokenID = "bos_token_id", padTokenID = "pad_token_id"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CLIPTextConfiguration()
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? d.layerNormEps
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        eosTokenID = try c.decodeIfPresent(Int.self, forKey: .eosTokenID) ?? d.eosTokenID
        bosTokenID = try c.decodeIfPresent(Int.self, forKey: .bosTokenID) ?? d.bosTokenID
        padTokenID = try c.decodeIfPresent(Int.self, forKey: .padTokenID) ?? d.padTokenID
    }

    public func validate() throws(ConfigurationError) {
        func fail(_ key: CodingKeys, _ reason: String) -> ConfigurationError { ConfigurationError(key: key.rawValue, reason: reason) }
        for (key, value) in [(CodingKeys.vocabSize, vocabSize), (.hiddenSize, hiddenSize), (.intermediateSize, intermediateSize),
                             (.numHiddenLayers, numHiddenLayers), (.numAttentionHeads, numAttentionHeads),
                             (.maxPositionEmbeddings, maxPositionEmbeddings)] where value <= 0 {
            throw fail(key, "must be positive, got \(value)")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw fail(.numAttentionHeads, "\(numAttentionHeads) must divide hidden_size \(hiddenSize)")
        }
        guard ["gelu", "quick_gelu"].contains(hiddenAct) else { throw fail(.hiddenAct, "must be gelu or quick_gelu, got \"\(hiddenAct)\"") }
        guard layerNormEps > 0, layerNormEps < 1 else { throw fail(.layerNormEps, "must be in (0, 1), got \(layerNormEps)") }
    }
}

public final class CLIPAttention: Module {
    @Key("k_proj") public var kProj: Linear
    @Key("v_proj") public var vProj: Linear
    @Key("q_proj") public var qProj: Linear
    @Key("out_proj") public var outProj: Linear
    private(set) var heads = 1

    /// Causal multi-head self-attention of x (B, L, D).
    func callAsFunction(_ x: Tensor, mask: Tensor) throws(TensorError) -> Tensor {
        let (b, l, d) = (x.shape[0], x.shape[1], x.shape[2]), head = d / heads
        // (b, l, d) -> (b, l, h, hd) -> (b, h, l, hd)
        func split(_ t: Tensor) throws(TensorError) -> Tensor { try t.reshaped([b, l, heads, head]).permuted([0, 2, 1, 3]) }
        let attended = try Tensor.attention(query: split(qProj(x)), key: split(kProj(x)), value: split(vProj(x)),
                                            scale: 1 / Float(head).squareRoot(), mask: mask).output
        // (b, h, l, hd) -> (b, l, h, hd) -> (b, l, d)
        return try outProj(attended.permuted([0, 2, 1, 3]).reshaped([b, l, d]))
    }

    init(_ dim: Int, heads: Int) {
        super.init()
        self.heads = heads
        kProj = Linear(dim, dim)
        vProj = Linear(dim, dim)
        qProj = Linear(dim, dim)
        outProj = Linear(dim, dim)
    }
}

public final class CLIPMLP: Module {
    @Key("fc1") public var fc1: Linear
    @Key("fc2") public var fc2: Linear
    private(set) var quickGELU = false

    func callAsFunction(_ x: Tensor) throws(TensorError) -> Tensor {
        let hidden = try fc1(x)
        return try fc2(quickGELU ? hidden.quickGELU() : hidden.gelu())
    }

    init(_ dim: Int, _ inner: Int, quickGELU: Bool) {
        super.init()
        self.quickGELU = quickGELU
        fc1 = Linear(dim, inner)
        fc2 = Linear(inner, dim)
    }
}

public final class CLIPEncoderLayer: Module {
    @Key("self_attn") public var selfAttention: CLIPAttention
    @Key("layer_norm1") public var layerNorm1: LayerNorm
    @Key("mlp") public var mlp: CLIPMLP
    @Key("layer_norm2") public var layerNorm2: LayerNorm

    /// Pre-LayerNorm block: x + attn(ln1(x)), then x + mlp(ln2(x)).
    func callAsFunction(_ x: Tensor, mask: Tensor) throws(TensorError) -> Tensor {
        let h = try x + selfAttention(layerNorm1(x), mask: mask)
        return try h + mlp(layerNorm2(h))
    }

    init(_ config: CLIPTextConfiguration) {
        super.init()
        selfAttention = CLIPAttention(config.hiddenSize, heads: config.numAttentionHeads)
        layerNorm1 = LayerNorm(config.hiddenSize, eps: config.layerNormEps)
        mlp = CLIPMLP(config.hiddenSize, config.intermediateSize, quickGELU: config.hiddenAct == "quick_gelu")
        layerNorm2 = LayerNorm(config.hiddenSize, eps: config.layerNormEps)
    }
}

public final class CLIPTextEmbeddings: Module {
    @Key("token_embedding") public var tokenEmbedding: Embedding
    @Key("position_embedding") public var positionEmbedding: Embedding

    init(_ config: CLIPTextConfiguration) {
        super.init()
        tokenEmbedding = Embedding(config.vocabSize, config.hiddenSize)
        positionEmbedding = Embedding(config.maxPositionEmbeddings, config.hiddenSize)
    }
}

public final class CLIPEncoder: Module {
    @Key("layers") public var layers: [CLIPEncoderLayer]

    init(_ config: CLIPTextConfiguration) {
        super.init()
        layers = (0..<config.numHiddenLayers).map { _ in CLIPEncoderLayer(config) }
    }
}

public final class CLIPTextTransformer: Module {
    @Key("embeddings") public var embeddings: CLIPTextEmbeddings
    @Key("encoder") public var encoder: CLIPEncoder
    @Key("final_layer_norm") public var finalLayerNorm: LayerNorm

    init(_ config: CLIPTextConfiguration) {
        super.init()
        embeddings = CLIPTextEmbeddings(config)
        encoder = CLIPEncoder(config)
        finalLayerNorm = LayerNorm(config.hiddenSize, eps: config.layerNormEps)
    }
}

public final class CLIPTextModel: Module {
    public private(set) var configuration = CLIPTextConfiguration()
    @Key("text_model") public var textModel: CLIPTextTransformer

    public struct Output {
        /// (batch, length, hidden): the final normalised hidden states (the conditioning).
        public var lastHiddenState: Tensor
        /// (batch, hidden): the hidden state at each sequence's EOS position, unprojected.
        public var pooled: Tensor
    }

    /// Encodes token id sequences of equal length.
    public func callAsFunction(_ ids: [[Int]]) throws(TensorError) -> Output {
        guard let length = ids.first?.count, length > 0, ids.allSatisfy({ $0.count == length }) else {
            throw .invalidArgument(op: "clip", "needs sequences of one non-zero length")
        }
        guard length <= configuration.maxPositionEmbeddings else {
            throw .invalidArgument(op: "clip", "\(length) tokens exceed max_position_embeddings \(configuration.maxPositionEmbeddings)")
        }
        let model = textModel, d = configuration.hiddenSize
        let tokens = try model.embeddings.tokenEmbedding.weight.tensor.rows(ids.flatMap { $0 }).reshaped([ids.count, length, d])
        let positions = try model.embeddings.positionEmbedding.weight.tensor.rows(Array(0..<length))
        var x = try tokens + positions
        // Causal mask: position i attends to j ≤ i (transformers uses the float minimum above the diagonal).
        var maskValues = [Float](repeating: 0, count: length * length)
        for i in 0..<length { for j in (i + 1)..<Swift.max(i + 1, length) { maskValues[i * length + j] = -Float.greatestFiniteMagnitude } }
        let mask = try Tensor(maskValues, shape: [length, length])
        for layer in model.encoder.layers { x = try layer(x, mask: mask) }
        x = try model.finalLayerNorm(x)
        // EOS position: the legacy rule (largest id) when eos_token_id is 2, as transformers does; else the first EOS.
        let eos = ids.map { row in
            configuration.eosTokenID == 2 ? row.indices.max { row[$0] < row[$1] }! : (row.firstIndex(of: configuration.eosTokenID) ?? row.count - 1)
        }
        let pooled = try Tensor.concat(eos.enumerated().map { b, position throws(TensorError) in
            try x.sliced(axis: 0, start: b, end: b + 1).sliced(axis: 1, start: position, end: position + 1).reshaped([1, d])
        }, axis: 0)
        return Output(lastHiddenState: x, pooled: pooled)
    }

    /// The text encoder of a diffusers folder's `text_encoder`: config.json and safetensors weights,
    /// keys with or without the "text_model." prefix, the position_ids buffer dropped.
    public static func load(folder: String) throws(ModelError) -> CLIPTextModel {
        try ModelFolder.loadModel(folder: folder, CLIPTextConfiguration.self, sanitize: sanitize) { config throws(ConfigurationError) in try CLIPTextModel(config) }
    }

    /// The one place text-encoder checkpoint quirks are handled.
    public static func sanitize(_ key: String) -> String? {
        if key.hasSuffix("embeddings.position_ids") { return nil }
        return key.hasPrefix("text_model.") ? key : "text_model." + key
    }

    public init(_ config: CLIPTextConfiguration) throws(ConfigurationError) {
        try config.validate()
        super.init()
        configuration = config
        textModel = CLIPTextTransformer(config)
    }
}
