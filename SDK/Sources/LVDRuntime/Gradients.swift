#if canImport(Glibc)
import Glibc
#endif
import LVDKernels

/// The primitive ops the tape records, with what each backward rule needs. Composite ops
/// (mean, GEGLU, QuickGELU, masked or captured attention, reflect padding, Gaussian smoothing, linear, …) are
/// built from these and get their gradients for free.
enum Op {
    // Views and copies
    case copy
    case reshape(from: [Int])
    case permute([Int])
    case slice(axis: Int, start: Int, step: Int, inputShape: [Int])
    case expand(from: [Int])
    case concat(axis: Int, sizes: [Int])
    case pad([(Int, Int)])
    // Elementwise
    case add, sub, mul, div, maximum
    case neg, exp, log, sqrt, sin, cos, tanh, abs, relu, sigmoid, silu, gelu, geglu
    case pow(Float)
    case whereMask(Tensor)
    // Reductions and selection
    case sum(inputShape: [Int], axes: [Int], keepDims: Bool)
    /// max, top-k and max-pool: output element i came from flat input position indices[i].
    case gather(inputShape: [Int], indices: IndexBox)
    // Neural-network ops
    case matmul
    case softmax, logSoftmax
    /// Scaled dot-product attention of (query, key, value), its probabilities kept.
    case attention(scale: Float, probabilities: Tensor)
    /// Row normalisation shared by layer norm and group norm (affine parts are composites).
    case normalize(NormStats, groupSize: Int)
    case upsampleNearest2x
    case conv2d(ConvGeometry)
    // Recomputation (gradient checkpointing): the packed outputs of a function of the inputs
    case checkpoint(Checkpoint)

    var name: String {
        switch self {
        case .copy: return "copy"
        case .reshape: return "reshape"
        case .permute: return "permute"
        case .slice: return "slice"
        case .expand: return "expand"
        case .concat: return "concat"
        case .pad: return "pad"
        case .add: return "add"
        case .sub: return "sub"
        case .mul: return "mul"
        case .div: return "div"
        case .maximum: return "maximum"
        case .neg: return "neg"
        case .exp: return "exp"
        case .log: return "log"
        case .sqrt: return "sqrt"
        case .sin: return "sin"
        case .cos: return "cos"
        case .tanh: return "tanh"
        case .abs: return "abs"
        case .relu: return "relu"
        case .sigmoid: return "sigmoid"
        case .silu: return "silu"
        case .gelu: return "gelu"
        case .geglu: return "geglu"
        case .pow: return "pow"
        case .whereMask: return "where"
        case .sum: return "sum"
        case .gather: return "gather"
        case .matmul: return "matmul"
        case .softmax: return "softmax"
        case .logSoftmax: return "log_softmax"
        case .attention: return "attention"
        case .normalize: return "normalize"
        case .upsampleNearest2x: return "upsample"
        case .conv2d: return "conv2d"
        case .checkpoint: return "checkpoint"
        }
    }
}

/// Every backward rule: vector-Jacobian products of the primitives. Runs with the tape off.
enum Gradients {
    /// The gradients of `inputs` given the gradient of `output` (nil for an input that needs none).
    static func vjp(_ op: Op, inputs x: [Tensor], output y: Tensor, gradient g: Tensor) throws(TensorError) -> [Tensor?] {
        switch op {
        case .copy:
            return [g]
        case .reshape(let from):
            return [try g.reshaped(from)]
        case .permute(let axes):
            var inverse = [Int](repeating: 0, count: axes.count)
            for (i, axis) in axes.enumerated() { inverse[axis] = i }
            return [try g.permuted(inverse).contiguous()]
        case .slice(let axis, let start, let step, let inputShape):
            let dx = try Tensor.zeros(inputShape)
            var strides = dx.strides
            strides[axis] *= step
            copyElements(from: g, into: Tensor(storage: dx.storage, shape: g.shape, strides: strides, offset: start * dx.strides[axis]))
            return [dx]
        case .expand(let from):
            return [try reduce(g, to: from)]
        case .concat(let axis, let sizes):
            var start = 0
            var parts: [Tensor?] = []
            for size in sizes {
                parts.append(try g.sliced(axis: axis, start: start, end: start + size).contiguous())
                start += size
            }
            return parts
        case .pad(let pads):
            var region = g
            for (axis, pad) in pads.enumerated() where pad.0 > 0 || pad.1 > 0 {
                region = try region.sliced(axis: axis, start: pad.0, end: g.shape[axis] - pad.1)
            }
            return [try region.contiguous()]

        case .add:
            return [try reduce(g, to: x[0].shape), try reduce(g, to: x[1].shape)]
        case .sub:
            return [try reduce(g, to: x[0].shape), try reduce(-g, to: x[1].shape)]
        case .mul:
            return [x[0].requiresGrad ? try reduce(g * x[1], to: x[0].shape) : nil,
                    x[1].requiresGrad ? try reduce(g * x[0], to: x[1].shape) : nil]
        case .div:
            return [x[0].requiresGrad ? try reduce(g / x[1], to: x[0].shape) : nil,
                    x[1].requiresGrad ? try reduce(-(g * y) / x[1], to: x[1].shape) : nil]
        case .maximum:
            let toA = try Tensor.mapBinary(x[0], x[1], "maximum", .copy, Kernel.GreaterOrEqual())
            return [try reduce(g * toA, to: x[0].shape), try reduce(g * (1 - toA), to: x[1].shape)]

        case .neg: return [try -g]
        case .exp: return [try g * y]
        case .log: return [try g / x[0]]
        case .sqrt: return [try zip(g, y) { g, y in g * 0.5 / y }]
        case .sin: return [try zip(g, x[0]) { g, x in g * cosf(x) }]
        case .cos: return [try zip(g, x[0]) { g, x in -g * sinf(x) }]
        case .tanh: return [try zip(g, y) { g, y in g * (1 - y * y) }]
        case .abs: return [try zip(g, x[0]) { g, x in x > 0 ? g : (x < 0 ? -g : 0) }]
        case .relu: return [try zip(g, x[0]) { g, x in x > 0 ? g : 0 }]
        case .sigmoid: return [try zip(g, y) { g, y in g * y * (1 - y) }]
        case .silu:
            if let fast = try vectorisedGrad(g, x[0], lvdk_silu_grad) { return [fast] }
            return [try Tensor.mapBinary(g, x[0], "backward", .copy, Kernel.SiLUGrad())]
        case .gelu:
            if let fast = try vectorisedGrad(g, x[0], lvdk_gelu_grad) { return [fast] }
            return [try Tensor.mapBinary(g, x[0], "backward", .copy, Kernel.GELUGrad())]
        case .geglu:
            let gc = try g.contiguous(), xc = try x[0].contiguous()
            let d = gc.shape[gc.rank - 1], rows = d == 0 ? 0 : gc.count / d
            let dx = try Tensor.empty(x[0].shape)
            let pg = gc.floats, px = xc.floats, out = dx.floats
            Parallel.forEachChunk(rows, grain: Swift.max(1, 16_384 / Swift.max(d, 1))) { range in
                lvdk_geglu_grad_rows(pg + range.lowerBound * d, px + range.lowerBound * 2 * d, out + range.lowerBound * 2 * d, range.count, d)
            }
            return [dx]
        case .pow(let p):
            return [try zip(g, x[0]) { g, x in g * p * powf(x, p - 1) }]
        case .whereMask(let mask):
            return [x[0].requiresGrad ? try reduce(g * mask, to: x[0].shape) : nil,
                    x[1].requiresGrad ? try reduce(g * (1 - mask), to: x[1].shape) : nil]

        case .sum(let inputShape, let axes, let keepDims):
            var kept = inputShape
            for axis in axes { kept[axis] = 1 }
            let shaped = keepDims ? g : try g.reshaped(kept)
            return [try shaped.expanded(inputShape).contiguous()]
        case .gather(let inputShape, let indices):
            let dx = try Tensor.zeros(inputShape)
            let source = try g.contiguous()
            let out = dx.floats, pg = source.floats
            for (i, position) in indices.values.enumerated() { out[position] += pg[i] }
            return [dx]

        case .matmul:
            let a = x[0], b = x[1]
            var da: Tensor?, db: Tensor?
            if a.requiresGrad { da = try reduce(g.matmul(b.transposed(-2, -1)), to: a.shape) }
            if b.requiresGrad {
                if b.rank == 2, a.rank > 2 {
                    // A shared weight: one GEMM over the flattened batch.
                    let k = a.shape[a.rank - 1], n = g.shape[g.rank - 1]
                    db = try a.reshaped([-1, k]).transposed(0, 1).matmul(g.reshaped([-1, n]))
                } else {
                    db = try reduce(a.transposed(-2, -1).matmul(g), to: b.shape)
                }
            }
            return [da, db]
        case .softmax:
            let gc = try g.contiguous(), yc = try y.contiguous()
            let n = y.shape[y.rank - 1], rows = n == 0 ? 0 : y.count / n
            let dx = try Tensor.empty(y.shape)
            let pg = gc.floats, py = yc.floats, out = dx.floats
            Parallel.forEachChunk(rows, grain: Swift.max(1, 16_384 / Swift.max(n, 1))) { range in
                lvdk_softmax_grad_rows(pg + range.lowerBound * n, py + range.lowerBound * n, out + range.lowerBound * n, range.count, n)
            }
            return [dx]
        case .attention(let scale, let probabilities):
            return try Tensor.attentionBackward(query: x[0], key: x[1], value: x[2], probabilities: probabilities, scale: scale, gradient: g)
        case .logSoftmax:
            return [try g - y.exp() * g.sum(axes: [-1], keepDims: true)]
        case .normalize(let stats, let length):
            return [try normalizeBackward(g, yHat: y, rstd: stats.rstd, length: length)]
        case .upsampleNearest2x:
            return [try upsampleBackward(g, inputShape: x[0].shape)]
        case .checkpoint(let checkpoint):
            return try checkpoint.inputGradients(x, gradient: g)
        case .conv2d(let geometry):
            let grads = try conv2dBackward(geometry, x: x[0], weight: x[1], dy: g,
                                           needInput: x[0].requiresGrad, needWeight: x[1].requiresGrad)
            let dBias = x.count > 2 && x[2].requiresGrad ? try g.sum(axes: [0, 2, 3]) : nil
            return [grads.dx, grads.dw] + (x.count > 2 ? [dBias] : [])
        }
    }

    /// g · f'(x) through a C vector kernel when both are contiguous and of one shape; nil otherwise.
    static func vectorisedGrad(_ g: Tensor, _ x: Tensor,
                               _ kernel: (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void)
        throws(TensorError) -> Tensor? {
        guard g.isContiguous, x.isContiguous, g.shape == x.shape, g.dtype == .f32, x.dtype == .f32 else { return nil }
        let output = try Tensor.empty(g.shape)
        let pg = g.floats, px = x.floats, out = output.floats
        withoutActuallyEscaping(kernel) { kernel in
            Parallel.forEachChunk(output.count) { range in
                kernel(pg + range.lowerBound, px + range.lowerBound, out + range.lowerBound, range.count)
            }
        }
        return output
    }

    /// Sums a broadcast gradient back to `shape` (leading axes and axes of extent 1).
    static func reduce(_ g: Tensor, to shape: [Int]) throws(TensorError) -> Tensor {
        if g.shape == shape { return g }
        let lead = g.rank - shape.count
        var axes = Array(0..<lead)
        for (i, extent) in shape.enumerated() where extent == 1 && g.shape[lead + i] != 1 { axes.append(lead + i) }
        return try g.sum(axes: axes, keepDims: true).reshaped(shape)
    }

    /// f(g, t) elementwise, both of the output's shape (t broadcast if needed).
    static func zip(_ g: Tensor, _ t: Tensor, _ f: @escaping (Float, Float) -> Float) throws(TensorError) -> Tensor {
        try Tensor.mapBinary(g, t, "backward", .copy, Kernel.Closure(body: f))
    }

    /// dx = rstd · (g − mean(g) − ŷ · mean(g · ŷ)) per normalised row.
    static func normalizeBackward(_ g: Tensor, yHat: Tensor, rstd: [Float], length: Int) throws(TensorError) -> Tensor {
        let gc = try g.contiguous(), yc = try yHat.contiguous()
        let dx = try Tensor.empty(g.shape)
        let pg = gc.floats, py = yc.floats, out = dx.floats
        rstd.withUnsafeBufferPointer { scales in
            let scales = scales
            Parallel.forEachChunk(rstd.count, grain: Swift.max(1, 16_384 / Swift.max(length, 1))) { rows in
                let start = rows.lowerBound * length
                lvdk_normalize_grad_rows(pg + start, py + start, scales.baseAddress! + rows.lowerBound, out + start, rows.count, length)
            }
        }
        return dx
    }

    /// The adjoint of nearest ×2 upsampling: each input element sums its 2×2 block.
    static func upsampleBackward(_ g: Tensor, inputShape: [Int]) throws(TensorError) -> Tensor {
        let gc = try g.contiguous()
        let dx = try Tensor.empty(inputShape)
        let r = inputShape.count, h = inputShape[r - 2], w = inputShape[r - 1]
        let planes = dx.count / Swift.max(h * w, 1)
        let pg = gc.floats, out = dx.floats
        Parallel.forEachChunk(planes * h, grain: 1024) { range in
            for index in range {
                let plane = index / h, yy = index % h
                let top = pg + plane * 4 * h * w + 2 * yy * 2 * w, bottom = top + 2 * w
                let o = out + plane * h * w + yy * w
                for xx in 0..<w { o[xx] = top[2 * xx] + top[2 * xx + 1] + bottom[2 * xx] + bottom[2 * xx + 1] }
            }
        }
        return dx
    }
}
