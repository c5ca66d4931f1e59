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

    init(_ dim: Int) {
        super.init()
        kProj = Linear(dim, dim)
        vProj = Linear(dim, dim)
        qProj = Linear(dim, dim)
        outProj = Linear(dim, dim)
    }
}

public final class CLIPMLP: Module {
    @Key("fc1") public var fc1: Linear
    @Key("fc2") public var fc2: Linear

    init(_ dim: Int, _ inner: Int) {
        super.init()
        fc1 = Linear(dim, inner)
        fc2 = Linear(inner, dim)
    }
}

public final class CLIPEncoderLayer: Module {
    @Key("self_attn") public var selfAttention: CLIPAttention
    @Key("layer_norm1") public var layerNorm1: LayerNorm
    @Key("mlp") public var mlp: CLIPMLP
    @Key("layer_norm2") public var layerNorm2: LayerNorm

    init(_ config: CLIPTextConfiguration) {
        super.init()
        selfAttention = CLIPAttention(config.hiddenSize)
        layerNorm1 = LayerNorm(config.hiddenSize, eps: config.layerNormEps)
        mlp = CLIPMLP(config.hiddenSize, config.intermediateSize)
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

    public init(_ config: CLIPTextConfiguration) throws(ConfigurationError) {
        try config.validate()
        super.init()
        configuration = config
        textModel = CLIPTextTransformer(config)
    }
}
