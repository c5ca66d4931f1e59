#if canImport(Glibc)
import Glibc
#endif
import LVDKernels

// Elementwise ops: broadcasting binary arithmetic, unary math, where. Outputs are contiguous.

/// Strides that read `tensor` as if broadcast to `shape` (0 along repeated axes), without recording.
func broadcastStrides(_ tensor: Tensor, to shape: [Int]) -> [Int] {
    let lead = shape.count - tensor.rank
    var strides = [Int](repeating: 0, count: shape.count)
    for axis in 0..<tensor.rank where tensor.shape[axis] != 1 { strides[lead + axis] = tensor.strides[axis] }
    return strides
}

extension Tensor {
    func mapUnary<K: UnaryKernel>(_ name: String, _ op: @autoclosure () -> Op, _ f: K) throws(TensorError) -> Tensor {
        try requireF32(name)
        let output = try Tensor.empty(shape)
        let runs = StridedRuns(shape: shape, strides: [output.strides, strides])
        let src = storage.floats(offset), dst = output.floats
        let inner = runs.inner, sIn = runs.innerStrides[1]
        runs.forEach { offsets, _ in
            let o = dst + offsets[0], i = src + offsets[1]
            if sIn == 1 {
                for j in 0..<inner { o[j] = f(i[j]) }
            } else {
                for j in 0..<inner { o[j] = f(i[j * sIn]) }
            }
        }
        return Tensor.record(output, op(), [self])
    }

    static func mapBinary<K: BinaryKernel>(_ a: Tensor, _ b: Tensor, _ name: String, _ op: @autoclosure () -> Op,
                                           _ f: K) throws(TensorError) -> Tensor {
        // A scalar operand on the right of a contiguous tensor: one flat loop.
        if b.count == 1, a.isContiguous, a.dtype == .f32, b.dtype == .f32, b.rank <= a.rank {
            let output = try Tensor.empty(a.shape)
            let value = b.storage.floats(b.offset)[0], src = a.floats, dst = output.floats
            Parallel.forEachChunk(a.count) { range in
                for i in range { dst[i] = f(src[i], value) }
            }
            return record(output, op(), [a, b])
        }
        try a.requireF32(name)
        try b.requireF32(name)
        guard let shape = broadcastShape(a.shape, b.shape) else {
            throw .shapeMismatch(op: name, "\(a.shape) and \(b.shape) do not broadcast")
        }
        let output = try Tensor.empty(shape)
        let runs = StridedRuns(shape: shape, strides: [output.strides, broadcastStrides(a, to: shape), broadcastStrides(b, to: shape)])
        let pa = a.storage.floats(a.offset), pb = b.storage.floats(b.offset), dst = output.floats
        let inner = runs.inner, sa = runs.innerStrides[1], sb = runs.innerStrides[2]
        runs.forEach { offsets, _ in
            let o = dst + offsets[0], x = pa + offsets[1], y = pb + offsets[2]
            switch (sa, sb) {
            case (1, 1): for j in 0..<inner { o[j] = f(x[j], y[j]) }
            case (1, 0): let v = y[0]; for j in 0..<inner { o[j] = f(x[j], v) }
            case (0, 1): let v = x[0]; for j in 0..<inner { o[j] = f(v, y[j]) }
            default: for j in 0..<inner { o[j] = f(x[j * sa], y[j * sb]) }
            }
        }
        return record(output, op(), [a, b])
    }

    // MARK: Arithmetic (broadcasting)

    public static func + (a: Tensor, b: Tensor) throws(TensorError) -> Tensor { try mapBinary(a, b, "add", .add, Kernel.Add()) }
    public static func - (a: Tensor, b: Tensor) throws(TensorError) -> Tensor { try mapBinary(a, b, "sub", .sub, Kernel.Sub()) }
    public static func * (a: Tensor, b: Tensor) throws(TensorError) -> Tensor { try mapBinary(a, b, "mul", .mul, Kernel.Mul()) }
    public static func / (a: Tensor, b: Tensor) throws(TensorError) -> Tensor { try mapBinary(a, b, "div", .div, Kernel.Div()) }

    public static func + (a: Tensor, b: Float) throws(TensorError) -> Tensor { try a + Tensor.scalar(b) }
    public static func - (a: Tensor, b: Float) throws(TensorError) -> Tensor { try a - Tensor.scalar(b) }
    public static func * (a: Tensor, b: Float) throws(TensorError) -> Tensor { try a * Tensor.scalar(b) }
    public static func / (a: Tensor, b: Float) throws(TensorError) -> Tensor { try a / Tensor.scalar(b) }
    public static func + (a: Float, b: Tensor) throws(TensorError) -> Tensor { try Tensor.scalar(a) + b }
    public static func - (a: Float, b: Tensor) throws(TensorError) -> Tensor { try Tensor.scalar(a) - b }
    public static func * (a: Float, b: Tensor) throws(TensorError) -> Tensor { try Tensor.scalar(a) * b }
    public static func / (a: Float, b: Tensor) throws(TensorError) -> Tensor { try Tensor.scalar(a) / b }
    public static prefix func - (a: Tensor) throws(TensorError) -> Tensor { try a.mapUnary("neg", .neg, Kernel.Neg()) }

    /// Elementwise maximum (ties send the gradient to `a`).
    public static func maximum(_ a: Tensor, _ b: Tensor) throws(TensorError) -> Tensor {
        try mapBinary(a, b, "maximum", .maximum, Kernel.Maximum())
    }

    // MARK: Unary math

    public func exp() throws(TensorError) -> Tensor {
        if let fast = try vectorised(.exp, lvdk_exp) { return fast }
        return try mapUnary("exp", .exp, Kernel.Exp())
    }
    public func log() throws(TensorError) -> Tensor { try mapUnary("log", .log, Kernel.Log()) }
    public func sqrt() throws(TensorError) -> Tensor { try mapUnary("sqrt", .sqrt, Kernel.Sqrt()) }
    public func sin() throws(TensorError) -> Tensor { try mapUnary("sin", .sin, Kernel.Sin()) }
    public func cos() throws(TensorError) -> Tensor { try mapUnary("cos", .cos, Kernel.Cos()) }
    public func tanh() throws(TensorError) -> Tensor { try mapUnary("tanh", .tanh, Kernel.Tanh()) }
    public func abs() throws(TensorError) -> Tensor { try mapUnary("abs", .abs, Kernel.Abs()) }
    public func relu() throws(TensorError) -> Tensor { try mapUnary("relu", .relu, Kernel.Relu()) }
    public func sigmoid() throws(TensorError) -> Tensor { try mapUnary("sigmoid", .sigmoid, Kernel.Sigmoid()) }
    /// x · sigmoid(x).
    public func silu() throws(TensorError) -> Tensor {
        if let fast = try vectorised(.silu, lvdk_silu) { return fast }
        return try mapUnary("silu", .silu, Kernel.SiLU())
    }

    /// A contiguous f32 tensor through one of the C vector kernels, threaded; nil otherwise.
    func vectorised(_ op: @autoclosure () -> Op,
                    _ kernel: (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void) throws(TensorError) -> Tensor? {
        guard isContiguous, dtype == .f32 else { return nil }
        let output = try Tensor.empty(shape)
        let src = floats, dst = output.floats
        withoutActuallyEscaping(kernel) { kernel in
            Parallel.forEachChunk(count) { range in kernel(src + range.lowerBound, dst + range.lowerBound, range.count) }
        }
        return Tensor.record(output, op(), [self])
    }
    /// Exact GELU: x · Φ(x) = x/2 · (1 + erf(x/√2)), as torch's default.
    public func gelu() throws(TensorError) -> Tensor {
        if let fast = try vectorised(.gelu, lvdk_gelu) { return fast }
        return try mapUnary("gelu", .gelu, Kernel.GELU())
    }
    /// x^p for a constant exponent.
    public func pow(_ p: Float) throws(TensorError) -> Tensor {
        if p == 2 { return try mapUnary("pow", .pow(p), Kernel.Square()) }
        return try mapUnary("pow", .pow(p), Kernel.Pow(p: p))
    }

    // MARK: Composites (gradients come from the primitives)

    /// QuickGELU of CLIP: x · sigmoid(1.702 x).
    public func quickGELU() throws(TensorError) -> Tensor { try self * (self * 1.702).sigmoid() }

    /// GEGLU's gate: the last axis splits into (value, gate), result value · gelu(gate). One fused
    /// pass (the gate is a strided half of the input, which would miss the vector GELU kernel).
    public func geglu() throws(TensorError) -> Tensor {
        try requireF32("geglu")
        guard rank >= 1, shape[rank - 1] % 2 == 0 else {
            throw .invalidArgument(op: "geglu", "last extent \(shape.last ?? 0) must be even")
        }
        let source = try GradMode.withoutGrad { () throws(TensorError) in try self.detached().contiguous() }
        let d = shape[rank - 1] / 2, rows = d == 0 ? 0 : count / (2 * d)
        var outShape = shape
        outShape[rank - 1] = d
        let output = try Tensor.empty(outShape)
        let src = source.floats, dst = output.floats
        Parallel.forEachChunk(rows, grain: Swift.max(1, 16_384 / Swift.max(d, 1))) { range in
            lvdk_geglu_rows(src + range.lowerBound * 2 * d, dst + range.lowerBound * d, range.count, d)
        }
        return Tensor.record(output, .geglu, [self])
    }

    // MARK: Selection

    /// `a` where `mask` is non-zero, `b` elsewhere (broadcasting all three).
    public static func `where`(_ mask: Tensor, _ a: Tensor, _ b: Tensor) throws(TensorError) -> Tensor {
        try mask.requireF32("where")
        guard let ab = broadcastShape(a.shape, b.shape), let shape = broadcastShape(mask.shape, ab) else {
            throw .shapeMismatch(op: "where", "mask \(mask.shape), \(a.shape) and \(b.shape) do not broadcast")
        }
        try a.requireF32("where")
        try b.requireF32("where")
        func dense(_ t: Tensor) throws(TensorError) -> Tensor { try t.detached().expanded(shape).contiguous() }
        let m = try dense(mask), x = try dense(a), y = try dense(b)
        let output = try Tensor.empty(shape)
        let out = output.floats, pm = m.floats, px = x.floats, py = y.floats
        Parallel.forEachChunk(output.count) { range in
            for i in range { out[i] = pm[i] != 0 ? px[i] : py[i] }
        }
        return record(output, .whereMask(m), [a, b])
    }
}
