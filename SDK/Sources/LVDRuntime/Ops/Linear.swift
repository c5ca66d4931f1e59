import Dispatch

// Matrix products on cblas_sgemm.

/// How BLAS can read the last two axes of a tensor without a copy, if it can.
private func blasView(_ t: Tensor) -> (trans: Bool, ld: Int)? {
    let r = t.rank, rows = t.shape[r - 2], cols = t.shape[r - 1]
    let s0 = t.strides[r - 2], s1 = t.strides[r - 1]
    if s1 == 1 || cols == 1, s0 >= Swift.max(cols, 1) || rows == 1 { return (false, Swift.max(s0, cols, 1)) }
    if s0 == 1 || rows == 1, s1 >= Swift.max(rows, 1) || cols == 1 { return (true, Swift.max(s1, rows, 1)) }
    return nil
}

extension Tensor {
    /// Batched matrix product: (…, M, K) × (…, K, N) → (…, M, N), batch axes broadcasting.
    /// Transposed views (e.g. `w.transposed(0, 1)`) are read in place by BLAS.
    public func matmul(_ other: Tensor) throws(TensorError) -> Tensor {
        try matmul(other, onto: nil, beta: 0)
    }

    /// `self · other` written into `initial` when given (a contiguous tensor of the product's
    /// shape; β = 1 adds onto what it holds), else into a new tensor.
    private func matmul(_ other: Tensor, onto initial: Tensor?, beta: Float) throws(TensorError) -> Tensor {
        try requireF32("matmul")
        try other.requireF32("matmul")
        guard rank >= 2, other.rank >= 2 else {
            throw .invalidArgument(op: "matmul", "needs rank ≥ 2, got \(shape) and \(other.shape)")
        }
        let m = shape[rank - 2], k = shape[rank - 1], n = other.shape[other.rank - 1]
        guard other.shape[other.rank - 2] == k else {
            throw .shapeMismatch(op: "matmul", "\(shape) × \(other.shape): inner extents \(k) and \(other.shape[other.rank - 2])")
        }
        guard let batch = broadcastShape(Array(shape.dropLast(2)), Array(other.shape.dropLast(2))) else {
            throw .shapeMismatch(op: "matmul", "batch axes of \(shape) and \(other.shape) do not broadcast")
        }
        let output: Tensor
        if let initial { output = initial } else { output = try Tensor.empty(batch + [m, n]) }
        var a = self, b = other
        if blasView(a) == nil { a = try GradMode.withoutGrad { () throws(TensorError) in try self.detached().contiguous() } }
        if blasView(b) == nil { b = try GradMode.withoutGrad { () throws(TensorError) in try other.detached().contiguous() } }
        let va = blasView(a)!, vb = blasView(b)!
        let batchCount = batch.reduce(1, *)
        let aStrides = broadcastStrides(Tensor(storage: a.storage, shape: Array(a.shape.dropLast(2)), strides: Array(a.strides.dropLast(2))), to: batch)
        let bStrides = broadcastStrides(Tensor(storage: b.storage, shape: Array(b.shape.dropLast(2)), strides: Array(b.strides.dropLast(2))), to: batch)
        let pa = a.storage.floats(a.offset), pb = b.storage.floats(b.offset), pc = output.floats
        // A linear layer over a contiguous batch is one GEMM with M = batch · m.
        if batchCount > 1, bStrides.allSatisfy({ $0 == 0 }), !va.trans, a.isContiguous {
            BLAS.gemm(transA: false, transB: vb.trans, m: batchCount * m, n: n, k: k, a: pa, lda: k, b: pb, ldb: vb.ld, beta: beta, c: pc, ldc: n)
        } else {
            func product(_ index: Int, split: Bool) {
                var rest = index, offA = 0, offB = 0
                for axis in stride(from: batch.count - 1, through: 0, by: -1) {
                    let coordinate = rest % batch[axis]
                    rest /= batch[axis]
                    offA += coordinate * aStrides[axis]
                    offB += coordinate * bStrides[axis]
                }
                if split {
                    BLAS.gemm(transA: va.trans, transB: vb.trans, m: m, n: n, k: k, a: pa + offA, lda: va.ld,
                              b: pb + offB, ldb: vb.ld, beta: beta, c: pc + index * m * n, ldc: n)
                } else {
                    BLAS.gemmOnOneThread(transA: va.trans, transB: vb.trans, m: m, n: n, k: k, a: pa + offA, lda: va.ld,
                                         b: pb + offB, ldb: vb.ld, beta: beta, c: pc + index * m * n, ldc: n)
                }
            }
            // Many small products (attention heads): whole products per thread. Few large ones:
            // each split into row blocks.
            if batchCount >= Parallel.threads && m * n * k < 1 << 24 {
                DispatchQueue.concurrentPerform(iterations: batchCount) { product($0, split: false) }
            } else {
                for index in 0..<batchCount { product(index, split: true) }
            }
        }
        return Tensor.record(output, .matmul, [self, other])
    }

    /// x · Wᵀ + b, with `weight` (out, in) as torch.nn.Linear stores it.
    public func linear(_ weight: Tensor, bias: Tensor? = nil) throws(TensorError) -> Tensor {
        let recording = GradMode.isEnabled && (requiresGrad || weight.requiresGrad || bias?.requiresGrad == true)
        guard let bias, !recording, rank >= 2, weight.rank == 2 else {
            let product = try matmul(weight.transposed(0, 1))
            return try bias.map { b throws(TensorError) in try product + b } ?? product
        }
        let output = try Tensor.empty(Array(shape.dropLast()) + [weight.shape[0]])
        try linear(weight, bias: bias, into: output)
        return output
    }

    /// Inference form of `linear` writing into `output` (contiguous, the product's shape; e.g. a
    /// block of rows of a larger result): the output starts as the bias in every row and the GEMM
    /// adds onto it — one pass over the output instead of a zeroing pass, the product and an add.
    /// Records nothing.
    public func linear(_ weight: Tensor, bias: Tensor?, into output: Tensor) throws(TensorError) {
        let n = weight.shape[0]
        guard rank >= 2, weight.rank == 2, output.shape == Array(shape.dropLast()) + [n], output.isContiguous, output.dtype == .f32 else {
            throw .shapeMismatch(op: "linear", "input \(shape), weight \(weight.shape), output \(output.shape) (contiguous f32 needed)")
        }
        guard let bias else {
            _ = try GradMode.withoutGrad { () throws(TensorError) in try detached().matmul(weight.detached().transposed(0, 1), onto: output, beta: 0) }
            return
        }
        guard bias.shape == [n] else { throw .shapeMismatch(op: "linear", "bias \(bias.shape) for \(n) outputs") }
        let b = try GradMode.withoutGrad { () throws(TensorError) in try bias.detached().contiguous() }
        let source = UnsafePointer(b.floats), out = output.floats, rows = output.count / Swift.max(n, 1)
        Parallel.forEachChunk(rows, grain: Swift.max(1, 65_536 / Swift.max(n, 1))) { range in
            for row in range { (out + row * n).update(from: source, count: n) }
        }
        _ = try GradMode.withoutGrad { () throws(TensorError) in try detached().matmul(weight.detached().transposed(0, 1), onto: output, beta: 1) }
    }
}
