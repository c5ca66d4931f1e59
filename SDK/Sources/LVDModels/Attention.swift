import LVDRuntime

// Attention, feed-forward and transformer blocks shared by the UNet3D and the VAE
// (diffusers attention_processor.py / attention.py).

/// diffusers `Attention`: to_q/to_k/to_v (bias optional), to_out.0 with bias; the VAE's variant
/// has its own group norm.
public final class Attention: Module {
    @Key("group_norm") public var groupNorm: GroupNorm?
    @Key("to_q") public var toQ: Linear
    @Key("to_k") public var toK: Linear
    @Key("to_v") public var toV: Linear
    @Key("to_out.0") public var toOut: Linear
    public private(set) var heads = 1, headDim = 1

    /// Multi-head attention of x (N, L, C) over `context` (N, S, D), or over x itself. Returns the
    /// output and, when asked, the probabilities (N, heads, L, S), still on the autodiff tape.
    public func callAsFunction(_ x: Tensor, context: Tensor? = nil, probabilities wanted: Bool = false)
        throws(TensorError) -> (output: Tensor, probabilities: Tensor?) {
        let source = context ?? x
        let (n, l, s) = (x.shape[0], x.shape[1], source.shape[1])
        // (n, len, heads·d) -> (n, len, heads, d) -> (n, heads, len, d)
        func split(_ t: Tensor, _ length: Int) throws(TensorError) -> Tensor {
            try t.reshaped([n, length, heads, headDim]).permuted([0, 2, 1, 3])
        }
        let (attended, probabilities) = try Tensor.attention(
            query: split(toQ(x), l), key: split(toK(source), s), value: split(toV(source), s),
            scale: 1 / Float(headDim).squareRoot(), returnProbabilities: wanted)
        // (n, heads, l, d) -> (n, l, heads, d) -> (n, l, heads·d)
        let merged = try attended.permuted([0, 2, 1, 3]).reshaped([n, l, heads * headDim])
        return (try toOut(merged), probabilities)
    }

    public init(queryDim: Int, contextDim: Int? = nil, heads: Int, headDim: Int, bias: Bool = false,
                groupNorm: (groups: Int, eps: Float)? = nil) {
        super.init()
        let inner = heads * headDim
        self.groupNorm = groupNorm.map { GroupNorm(groups: $0.groups, channels: queryDim, eps: $0.eps) }
        toQ = Linear(queryDim, inner, bias: bias)
        toK = Linear(contextDim ?? queryDim, inner, bias: bias)
        toV = Linear(contextDim ?? queryDim, inner, bias: bias)
        toOut = Linear(inner, queryDim)
        self.heads = heads
        self.headDim = headDim
    }
}

/// GEGLU's projection: one Linear to twice the inner width (value and gate halves).
public final class GEGLU: Module {
    @Key("proj") public var proj: Linear
    public init(_ input: Int, _ output: Int) { super.init(); proj = Linear(input, output * 2) }
}

/// diffusers `FeedForward` with GEGLU: net.0 (GEGLU), net.1 (dropout), net.2 (Linear).
public final class FeedForward: Module {
    @Key("net.0") public var gate: GEGLU
    @Key("net.2") public var out: Linear

    public func callAsFunction(_ x: Tensor) throws(TensorError) -> Tensor {
        let (input, hidden, dim) = (x.shape[x.rank - 1], gate.proj.weight.shape[0], out.weight.shape[0])
        let rows = x.count / Swift.max(input, 1)
        let (w1, w2) = (try gate.proj.weight.tensor, try out.weight.tensor)
        let recording = GradMode.isEnabled && (x.requiresGrad || w1.requiresGrad || w2.requiresGrad)
        let chunk = Swift.max(256, FeedForward.chunkElements / Swift.max(hidden, 1))
        guard !recording, x.rank >= 2, rows > chunk else { return try out(gate.proj(x).geglu()) }
        // Inference: blocks of rows, so the (rows, 2·inner) hidden state exists one block at a time
        // (the same few buffers, reused from the pool, instead of hundreds of fresh megabytes).
        let flat = try x.reshaped([rows, input]), result = try Tensor.empty([rows, dim])
        for start in stride(from: 0, to: rows, by: chunk) {
            let end = Swift.min(rows, start + chunk)
            let h = try gate.proj(flat.sliced(axis: 0, start: start, end: end)).geglu()
            try h.linear(out.weight.tensor, bias: out.bias?.tensor, into: result.sliced(axis: 0, start: start, end: end))
        }
        return try result.reshaped(Array(x.shape.dropLast()) + [dim])
    }

    /// Elements of the hidden (rows, 2·inner) block of the inference path (32 MB): blocks of 800
    /// and more rows keep the GEMMs at ~90 GFLOP/s per thread (400-row halves; 100-row halves of
    /// 8 MB blocks at the 1280-channel level ran at ~75), with no change in peak RSS.
    nonisolated(unsafe) public static var chunkElements = 8 << 20

    public init(_ dim: Int, multiplier: Int = 4) {
        super.init()
        gate = GEGLU(dim, dim * multiplier)
        out = Linear(dim * multiplier, dim)
    }
}

/// GLIGEN's gated self-attention fuser (diffusers `GatedSelfAttentionDense`).
public final class GatedSelfAttentionDense: Module {
    @Key("linear") public var linear: Linear
    @Key("attn") public var attn: Attention
    @Key("ff") public var ff: FeedForward
    @Key("norm1") public var norm1: LayerNorm
    @Key("norm2") public var norm2: LayerNorm
    @Key("alpha_attn") public var alphaAttn: Parameter
    @Key("alpha_dense") public var alphaDense: Parameter

    /// x (N, L, C) with grounding tokens objs (N, 30, D):
    /// x += tanh(α_attn)·SelfAttn(LN1([x, Linear(objs)]))[:L]; x += tanh(α_dense)·FF(LN2(x)).
    public func callAsFunction(_ x: Tensor, objects: Tensor) throws(TensorError) -> Tensor {
        let visual = x.shape[1]
        let tokens = try Tensor.concat([x, linear(objects)], axis: 1)
        let attended = try attn(norm1(tokens)).output.sliced(axis: 1, start: 0, end: visual)
        let h = try x + alphaAttn.tensor.tanh() * attended
        return try h + alphaDense.tensor.tanh() * ff(norm2(h))
    }

    public init(queryDim: Int, contextDim: Int, heads: Int, headDim: Int) {
        super.init()
        linear = Linear(contextDim, queryDim)
        attn = Attention(queryDim: queryDim, heads: heads, headDim: headDim)
        ff = FeedForward(queryDim)
        norm1 = LayerNorm(queryDim)
        norm2 = LayerNorm(queryDim)
        alphaAttn = Parameter([])
        alphaDense = Parameter([])
    }
}

/// diffusers `BasicTransformerBlock`: self-attention, [GLIGEN fuser], cross-attention (or a second
/// self-attention when `doubleSelfAttention`), GEGLU feed-forward; LayerNorms before each.
public final class BasicTransformerBlock: Module {
    @Key("norm1") public var norm1: LayerNorm
    @Key("attn1") public var attn1: Attention
    @Key("norm2") public var norm2: LayerNorm
    @Key("attn2") public var attn2: Attention
    @Key("norm3") public var norm3: LayerNorm
    @Key("ff") public var ff: FeedForward
    @Key("fuser") public var fuser: GatedSelfAttentionDense?

    /// x (N, L, C): self-attention, [the GLIGEN fuser when `objects` are given], cross-attention
    /// to `context` (or self-attention again when there is none), feed-forward; each pre-normed and
    /// residual. Returns the cross-attention probabilities when asked.
    public func callAsFunction(_ x: Tensor, context: Tensor?, objects: Tensor? = nil, capture: Bool = false)
        throws(TensorError) -> (output: Tensor, probabilities: Tensor?) {
        var h = try x + attn1(norm1(x)).output
        if let fuser, let objects { h = try fuser(h, objects: objects) }
        let cross = try attn2(norm2(h), context: context, probabilities: capture)
        h = try h + cross.output
        return (try h + ff(norm3(h)), cross.probabilities)
    }

    public init(dim: Int, heads: Int, headDim: Int, crossAttentionDim: Int?, gated: Bool = false) {
        super.init()
        norm1 = LayerNorm(dim)
        attn1 = Attention(queryDim: dim, heads: heads, headDim: headDim)
        norm2 = LayerNorm(dim)
        attn2 = Attention(queryDim: dim, contextDim: crossAttentionDim, heads: heads, headDim: headDim)
        norm3 = LayerNorm(dim)
        ff = FeedForward(dim)
        fuser = gated && crossAttentionDim != nil
            ? GatedSelfAttentionDense(queryDim: dim, contextDim: crossAttentionDim!, heads: heads, headDim: headDim) : nil
    }
}
