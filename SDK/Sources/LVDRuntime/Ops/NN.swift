#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import LVDKernels

// Neural-network ops: softmax, normalisation, resampling, attention, smoothing.

/// Per-row statistics kept by the normalisation ops for their backward rules.
final class NormStats: @unchecked Sendable {
    let mean: [Float]
    let rstd: [Float]
    init(mean: [Float], rstd: [Float]) {
        self.mean = mean
        self.rstd = rstd
    }
}

extension Tensor {
    /// Softmax along `axis`.
    public func softmax(axis: Int = -1) throws(TensorError) -> Tensor {
        try softmaxFamily(axis: axis, log: false)
    }

    /// log(softmax) along `axis`, computed stably.
    public func logSoftmax(axis: Int = -1) throws(TensorError) -> Tensor {
        try softmaxFamily(axis: axis, log: true)
    }

    private func softmaxFamily(axis: Int, log: Bool) throws(TensorError) -> Tensor {
        try requireF32(log ? "log_softmax" : "softmax")
        let a = try normalizedAxis(axis, op: log ? "log_softmax" : "softmax")
        if a != rank - 1 {
            // Move the axis last, compute, move it back.
            var order = Array(0..<rank)
            order.remove(at: a)
            order.append(a)
            var inverse = [Int](repeating: 0, count: rank)
            for (i, axis) in order.enumerated() { inverse[axis] = i }
            return try permuted(order).softmaxFamily(axis: -1, log: log).permuted(inverse)
        }
        let source = try GradMode.withoutGrad { () throws(TensorError) in try self.detached().contiguous() }
        let n = shape[rank - 1], rows = n == 0 ? 0 : count / n
        let output = try Tensor.empty(shape)
        let src = source.floats, dst = output.floats
        Parallel.forEachChunk(rows, grain: Swift.max(1, 16_384 / Swift.max(n, 1))) { range in
            lvdk_softmax_rows(src + range.lowerBound * n, dst + range.lowerBound * n, range.count, n, n, log ? 1 : 0)
        }
        return Tensor.record(output, log ? .logSoftmax : .softmax, [self])
    }

    /// Layer norm over the last axis, with optional affine weight and bias of that extent.
    public func layerNorm(weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) throws(TensorError) -> Tensor {
        try requireF32("layer_norm")
        guard rank >= 1 else { throw .invalidArgument(op: "layer_norm", "needs rank ≥ 1") }
        let n = shape[rank - 1]
        for p in [weight, bias].compactMap({ $0 }) where p.shape != [n] {
            throw .shapeMismatch(op: "layer_norm", "parameter \(p.shape) for last extent \(n)")
        }
        let (normalized, stats) = try normalizeRows(rows: n == 0 ? 0 : count / n, length: n, eps: eps)
        let y = Tensor.record(normalized, .normalize(stats, groupSize: n), [self])
        return try affine(y, weight: weight, bias: bias, channelAxis: rank - 1)
    }

    /// Group norm of (N, C, …) with `groups` groups over channels and all further axes; optional
    /// per-channel weight and bias; `thenSiLU` applies SiLU to the result (UNet resnets and
    /// temporal convolutions), in the same pass when nothing is recorded.
    public func groupNorm(groups: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5, thenSiLU: Bool = false) throws(TensorError) -> Tensor {
        try requireF32("group_norm")
        guard rank >= 2, groups > 0, shape[1] % groups == 0 else {
            throw .invalidArgument(op: "group_norm", "shape \(shape) with \(groups) groups (channels must divide)")
        }
        let channels = shape[1]
        for p in [weight, bias].compactMap({ $0 }) where p.shape != [channels] {
            throw .shapeMismatch(op: "group_norm", "parameter \(p.shape) for \(channels) channels")
        }
        let length = count / Swift.max(shape[0] * groups, 1)
        let recording = GradMode.isEnabled && (requiresGrad || weight?.requiresGrad == true || bias?.requiresGrad == true)
        if !recording && [weight, bias].allSatisfy({ $0 == nil || $0!.dtype == .f32 }) {
            return try groupNormInference(groups: groups, weight: weight, bias: bias, eps: eps, thenSiLU: thenSiLU)
        }
        let (normalized, stats) = try normalizeRows(rows: shape[0] * groups, length: length, eps: eps)
        let y = Tensor.record(normalized, .normalize(stats, groupSize: length), [self])
        let result = try affine(y, weight: weight, bias: bias, channelAxis: 1)
        return thenSiLU ? try result.silu() : result
    }

    /// Statistics, affine and SiLU in one kernel (lvdk_group_norm_rows), threaded over
    /// (sample, group) rows; records nothing.
    private func groupNormInference(groups: Int, weight: Tensor?, bias: Tensor?, eps: Float, thenSiLU: Bool) throws(TensorError) -> Tensor {
        let source = try self.contiguous()
        let params = try [weight, bias].map { p throws(TensorError) in try p?.contiguous() }
        let output = try Tensor.empty(shape)
        let rows = shape[0] * groups, channels = shape[1] / groups
        let plane = count / Swift.max(shape[0] * shape[1], 1)
        let src = source.floats, dst = output.floats
        let pw: UnsafePointer<Float>? = params[0].map { UnsafePointer($0.floats) }
        let pb: UnsafePointer<Float>? = params[1].map { UnsafePointer($0.floats) }
        Parallel.forEachChunk(rows, grain: Swift.max(1, 16_384 / Swift.max(channels * plane, 1))) { range in
            lvdk_group_norm_rows(src, dst, range.lowerBound, range.count, groups, channels, plane, eps, pw, pb, thenSiLU ? 1 : 0)
        }
        if OpProfile.enabled { OpProfile.charge("group_norm", shape) }
        return output
    }

    /// Normalises `rows` contiguous rows of `length` to zero mean and unit variance (biased).
    private func normalizeRows(rows: Int, length: Int, eps: Float) throws(TensorError) -> (Tensor, NormStats) {
        let source = try GradMode.withoutGrad { () throws(TensorError) in try self.detached().contiguous() }
        let output = try Tensor.empty(shape)
        var means = [Float](repeating: 0, count: rows), rstds = [Float](repeating: 0, count: rows)
        let src = source.floats, dst = output.floats
        means.withUnsafeMutableBufferPointer { meanBuffer in
            rstds.withUnsafeMutableBufferPointer { rstdBuffer in
                let meanOut = meanBuffer, rstdOut = rstdBuffer
                Parallel.forEachChunk(rows, grain: Swift.max(1, 16_384 / Swift.max(length, 1))) { range in
                    lvdk_normalize_rows(src + range.lowerBound * length, dst + range.lowerBound * length, range.count, length,
                                        eps, meanOut.baseAddress! + range.lowerBound, rstdOut.baseAddress! + range.lowerBound)
                }
            }
        }
        return (output, NormStats(mean: means, rstd: rstds))
    }

    /// y · weight + bias with the parameters along `channelAxis`.
    private func affine(_ y: Tensor, weight: Tensor?, bias: Tensor?, channelAxis: Int) throws(TensorError) -> Tensor {
        var shape = [Int](repeating: 1, count: y.rank)
        shape[channelAxis] = y.shape[channelAxis]
        var result = y
        if let weight { result = try result * weight.reshaped(shape) }
        if let bias { result = try result + bias.reshaped(shape) }
        return result
    }

    /// Nearest-neighbour ×2 upsampling of the last two axes.
    public func upsampleNearest2x() throws(TensorError) -> Tensor {
        try requireF32("upsample")
        guard rank >= 2 else { throw .invalidArgument(op: "upsample", "needs rank ≥ 2") }
        let h = shape[rank - 2], w = shape[rank - 1], planes = count / Swift.max(h * w, 1)
        let source = try GradMode.withoutGrad { () throws(TensorError) in try self.detached().contiguous() }
        var outShape = shape
        outShape[rank - 2] = 2 * h
        outShape[rank - 1] = 2 * w
        let output = try Tensor.empty(outShape)
        let src = source.floats, dst = output.floats
        Parallel.forEachChunk(planes * h, grain: Swift.max(1, 8192 / Swift.max(w, 1))) { range in
            for index in range {
                let plane = index / h, y = index % h
                let row = src + plane * h * w + y * w
                let out = dst + plane * 4 * h * w + 2 * y * 2 * w
                for x in 0..<w { out[2 * x] = row[x]; out[2 * x + 1] = row[x] }
                (out + 2 * w).update(from: out, count: 2 * w)
            }
        }
        return Tensor.record(output, .upsampleNearest2x, [self])
    }

    /// Max pooling of the last two axes with a square `kernel` and `stride` (no padding).
    public func maxPool2d(kernel: Int, stride step: Int? = nil) throws(TensorError) -> Tensor {
        try requireF32("max_pool")
        let s = step ?? kernel
        guard rank >= 2, kernel >= 1, s >= 1, shape[rank - 2] >= kernel, shape[rank - 1] >= kernel else {
            throw .invalidArgument(op: "max_pool", "kernel \(kernel), stride \(s) on shape \(shape)")
        }
        let h = shape[rank - 2], w = shape[rank - 1], planes = count / (h * w)
        let oh = (h - kernel) / s + 1, ow = (w - kernel) / s + 1
        let source = try GradMode.withoutGrad { () throws(TensorError) in try self.detached().contiguous() }
        var outShape = shape
        outShape[rank - 2] = oh
        outShape[rank - 1] = ow
        let output = try Tensor.empty(outShape)
        var positions = [Int](repeating: 0, count: planes * oh * ow)
        let src = source.floats, dst = output.floats
        positions.withUnsafeMutableBufferPointer { chosen in
            let chosen = chosen
            Parallel.forEachChunk(planes * oh * ow, grain: 4096) { range in
                for index in range {
                    let plane = index / (oh * ow), oy = (index / ow) % oh, ox = index % ow
                    var best = -Float.infinity, at = plane * h * w + oy * s * w + ox * s
                    for ky in 0..<kernel {
                        for kx in 0..<kernel {
                            let p = plane * h * w + (oy * s + ky) * w + ox * s + kx
                            if src[p] > best { best = src[p]; at = p }
                        }
                    }
                    dst[index] = best
                    chosen[index] = at
                }
            }
        }
        return Tensor.record(output, .gather(inputShape: shape, indices: IndexBox(positions)), [self])
    }

    /// Score elements per block of the blocked inference path of `attention` (16 MB of f32).
    static let attentionBlockElements = 4 << 20

    /// Scaled dot-product attention of (…, Lq, d) queries with (…, Lk, d) keys and values:
    /// softmax(q·kᵀ·scale + mask)·v, scale 1/√d unless given. Also returns the probabilities
    /// (…, Lq, Lk) when `returnProbabilities` (cross-attention capture), which stay differentiable.
    public static func attention(query: Tensor, key: Tensor, value: Tensor, scale: Float? = nil, mask: Tensor? = nil,
                                 returnProbabilities: Bool = false) throws(TensorError) -> (output: Tensor, probabilities: Tensor?) {
        guard query.rank >= 2, key.rank == query.rank, value.rank == query.rank,
              key.shape[key.rank - 1] == query.shape[query.rank - 1], key.shape[key.rank - 2] == value.shape[value.rank - 2] else {
            throw .shapeMismatch(op: "attention", "query \(query.shape), key \(key.shape), value \(value.shape)")
        }
        let d = query.shape[query.rank - 1]
        let rank = query.rank, lq = query.shape[rank - 2], lk = key.shape[rank - 2]
        let batch = query.shape.dropLast(2).reduce(1, *)
        let recording = GradMode.isEnabled && (query.requiresGrad || key.requiresGrad || value.requiresGrad || mask?.requiresGrad == true)
        if !recording && !returnProbabilities && mask == nil,
           let fused = try fusedAttention(query: query, key: key, value: value, scale: scale ?? 1 / Float(d).squareRoot()) {
            return (fused, nil)
        }
        // Inference without capture: queries in blocks of rows, so the scores and probabilities
        // of one block (≤ 16 MB) exist at a time instead of the whole (…, Lq, Lk) pair.
        if !recording && !returnProbabilities && batch * lq * lk > Self.attentionBlockElements && lq > 1 {
            let rows = Swift.max(8, Self.attentionBlockElements / Swift.max(batch * lk, 1))
            let keyT = try key.transposed(-2, -1)
            let scaled = try query * (scale ?? 1 / Float(d).squareRoot())
            var blocks: [Tensor] = []
            for start in stride(from: 0, to: lq, by: rows) {
                let end = Swift.min(start + rows, lq)
                var scores = try scaled.sliced(axis: rank - 2, start: start, end: end).matmul(keyT)
                if let mask { scores = try scores + (mask.shape[mask.rank - 2] == lq ? mask.sliced(axis: mask.rank - 2, start: start, end: end) : mask) }
                blocks.append(try scores.softmax(axis: -1).matmul(value))
            }
            return (try Tensor.concat(blocks, axis: rank - 2), nil)
        }
        if recording && !returnProbabilities && mask == nil,
           let recorded = try recordedAttention(query: query, key: key, value: value, scale: scale ?? 1 / Float(d).squareRoot()) {
            return (recorded, nil)
        }
        // (q·s)·kᵀ = s·(q·kᵀ): scaling q touches Lq·d elements instead of Lq·Lk.
        var scores = try (query * (scale ?? 1 / Float(d).squareRoot())).matmul(key.transposed(-2, -1))
        // An additive mask (0 where attending, a large negative number where not), broadcast.
        if let mask { scores = try scores + mask }
        let probabilities = try scores.softmax(axis: -1)
        return (try probabilities.matmul(value), returnProbabilities ? probabilities : nil)
    }

    /// Inference attention as one kernel: per (batch, row block of queries) the scores of that
    /// block (≤ 64 KB per thread, in cache) are computed, softmaxed in place and multiplied by
    /// the values straight into the output — no score tensor, no scaled copy of the queries, no
    /// concatenation. Queries, keys and values are read where they lie (the heads of a
    /// (n, L, heads, d) projection seen as (n, heads, L, d) need no copy), and the output takes
    /// the query's layout, so merging the heads back is free. Nil when the layout does not fit
    /// (the general path runs). With `probabilities` (contiguous, (…, Lq, Lk)) the softmaxed scores
    /// are kept there instead of in a per-thread block: the recorded path's forward.
    private static func fusedAttention(query: Tensor, key: Tensor, value: Tensor, scale: Float,
                                       keeping probabilities: Tensor? = nil) throws(TensorError) -> Tensor? {
        let rank = query.rank, lq = query.shape[rank - 2], d = query.shape[rank - 1]
        let lk = key.shape[rank - 2], dv = value.shape[rank - 1]
        let batchShape = Array(query.shape.dropLast(2))
        guard rank >= 3, Array(key.shape.dropLast(2)) == batchShape, Array(value.shape.dropLast(2)) == batchShape,
              [query, key, value].allSatisfy({ $0.dtype == .f32 && $0.strides[rank - 1] == 1 }), lk >= 1 else { return nil }
        let (q, k, v) = (query, key, value)
        let (ldq, ldk, ldv) = (q.strides[rank - 2], k.strides[rank - 2], v.strides[rank - 2])
        guard ldq >= d, ldk >= d, ldv >= dv else { return nil }
        // The output: the query's axis order when the query is a (0, 2, 1, 3) view of a contiguous
        // (n, L, heads, d) tensor (then ldo = heads · dv), else contiguous.
        let batch = batchShape.reduce(1, *)
        let output: Tensor, ldo: Int
        if rank == 4, q.strides == [lq * q.shape[1] * d, d, q.shape[1] * d, 1] {
            let heads = q.shape[1]
            let storage = try Tensor.empty([q.shape[0], lq, heads, dv])
            output = try storage.permuted([0, 2, 1, 3])
            ldo = heads * dv
        } else {
            output = try Tensor.empty(batchShape + [lq, dv])
            ldo = dv
        }
        let (oq, ok, ov, oo) = (q.matrixOffsets(), k.matrixOffsets(), v.matrixOffsets(), output.matrixOffsets())
        // Query rows per task: scores of ≤ 128 Ki floats (512 KB, in L2), the rows split evenly
        // (self-attention 32×32: 128-row blocks 6–10 % faster than 64).
        let most = Swift.max(1, (128 << 10) / lk), blocks = (lq + most - 1) / most
        let rows = (lq + blocks - 1) / blocks, tasks = batch * blocks
        let workers = Swift.min(Parallel.threads, tasks)
        let (pq, pk, pv, po) = (q.storage.floats(), k.storage.floats(), v.storage.floats(), output.storage.floats())
        let kept = probabilities?.floats
        // Without kept probabilities, key counts off a multiple of 16 (77 text tokens) are padded
        // with zero keys for the scores' product — OpenBLAS runs a 77-wide product in 16-wide
        // blocks plus slow edge kernels — and the padding is left out of the softmax and of P·V.
        let width = kept == nil && lk % 16 != 0 && lk > 16 ? (lk + 15) / 16 * 16 : lk
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            // Scores, and their softmax apart from them (the kept probabilities, or a block beside):
            // out of place, the softmax takes its one-pass path (its fallback rereads the scores).
            let block = UnsafeMutablePointer<Float>.allocate(capacity: rows * width)
            let probs = kept == nil ? UnsafeMutablePointer<Float>.allocate(capacity: rows * width) : nil
            let keys = width != lk ? UnsafeMutablePointer<Float>.allocate(capacity: width * d) : nil
            keys.map { ($0 + lk * d).initialize(repeating: 0, count: (width - lk) * d) }
            defer { block.deallocate(); probs?.deallocate(); keys?.deallocate() }
            var keysOf = -1
            for task in stride(from: worker * tasks / workers, to: (worker + 1) * tasks / workers, by: 1) {
                let b = task / blocks, start = (task % blocks) * rows, count = Swift.min(rows, lq - start)
                let p = kept.map { $0 + (b * lq + start) * lk } ?? probs!
                var (keyRows, ldKeys) = (UnsafePointer(pk + ok[b]), ldk)
                if let keys {
                    if keysOf != b {
                        for row in 0..<lk { (keys + row * d).update(from: pk + ok[b] + row * ldk, count: d) }
                        keysOf = b
                    }
                    (keyRows, ldKeys) = (UnsafePointer(keys), d)
                }
                BLAS.gemmOnOneThread(transA: false, transB: true, m: count, n: width, k: d, alpha: scale,
                                     a: pq + oq[b] + start * ldq, lda: ldq, b: keyRows, ldb: ldKeys, c: block, ldc: width)
                lvdk_softmax_rows(block, p, count, lk, width, 0)
                BLAS.gemmOnOneThread(transA: false, transB: false, m: count, n: dv, k: lk,
                                     a: p, lda: width, b: pv + ov[b], ldb: ldv, c: po + oo[b] + start * ldo, ldc: ldo)
            }
        }
        // A recorded call is charged by Tensor.record.
        if OpProfile.enabled && probabilities == nil { OpProfile.charge("attention", output.shape) }
        return output
    }

    /// Where each matrix of a (…, rows, columns) tensor starts in its storage, batch index
    /// order (the leading axes flattened row-major), whatever their strides.
    func matrixOffsets() -> [Int] {
        let batch = shape.dropLast(2).reduce(1, *)
        return (0..<batch).map { index in
            var rest = index, offset = self.offset
            for axis in stride(from: rank - 3, through: 0, by: -1) {
                offset += (rest % shape[axis]) * strides[axis]
                rest /= shape[axis]
            }
            return offset
        }
    }

    /// The operand as attention's kernels read it: unit-stride f32 rows (a copy otherwise).
    fileprivate func attentionOperand() throws(TensorError) -> Tensor {
        dtype == .f32 && strides[rank - 1] == 1 && strides[rank - 2] >= shape[rank - 1] ? self : try contiguous()
    }

    /// Runs `body(b, worker)` for every batch index: spread over the threads when the batches
    /// share them out evenly, each product then on its worker's thread; else one batch at a time
    /// (worker nil), the products split over the threads.
    fileprivate static func forEachAttentionBatch(_ batch: Int, _ body: (Int, Int?) -> Void) {
        let threads = Parallel.threads
        guard threads > 1, batch >= 2 * threads || batch == threads else {
            for b in 0..<batch { body(b, threads > 1 ? nil : 0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: threads) { worker in
                for b in (worker * batch / threads)..<((worker + 1) * batch / threads) { body(b, worker) }
            }
        }
    }

    /// C = alpha · op(A) · op(B) on this thread or split over the runtime's threads.
    @inline(__always)
    fileprivate static func attentionGemm(_ oneThread: Bool, transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                                          alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                          c: UnsafeMutablePointer<Float>, ldc: Int) {
        if oneThread {
            BLAS.gemmOnOneThread(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
        } else {
            BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
        }
    }

    /// Recorded attention (no mask, no capture) as one tape node instead of a scale, two
    /// matmuls and a softmax: the fused kernel, its softmaxed scores kept as the probabilities
    /// (the backward needs them, and nothing else of the forward). `attentionBackward` walks
    /// each batch once.
    private static func recordedAttention(query: Tensor, key: Tensor, value: Tensor, scale: Float) throws(TensorError) -> Tensor? {
        let rank = query.rank
        guard rank >= 3, [query, key, value].allSatisfy({ $0.dtype == .f32 && $0.count > 0 }) else { return nil }
        let q = try query.attentionOperand(), k = try key.attentionOperand(), v = try value.attentionOperand()
        let probabilities = try Tensor.empty(Array(q.shape.dropLast(2)) + [q.shape[rank - 2], k.shape[rank - 2]])
        guard let output = try fusedAttention(query: q, key: k, value: v, scale: scale, keeping: probabilities) else { return nil }
        return Tensor.record(output, .attention(scale: scale, probabilities: probabilities), [query, key, value])
    }

    /// The gradients of recorded attention, per batch: dV = Pᵀ·dO, dP = dO·Vᵀ,
    /// dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = s·dS·K, dK = s·dSᵀ·Q — nil for an input that
    /// needs none.
    static func attentionBackward(query: Tensor, key: Tensor, value: Tensor, probabilities: Tensor, scale: Float,
                                  gradient: Tensor) throws(TensorError) -> [Tensor?] {
        let rank = query.rank
        let q = try query.attentionOperand(), k = try key.attentionOperand(), v = try value.attentionOperand()
        let g = try gradient.attentionOperand()
        let lq = q.shape[rank - 2], d = q.shape[rank - 1], lk = k.shape[rank - 2], dv = v.shape[rank - 1]
        let batch = q.shape.dropLast(2).reduce(1, *)
        let needQ = query.requiresGrad, needK = key.requiresGrad, needV = value.requiresGrad
        let dq = needQ ? try Tensor.empty(q.shape) : nil, dk = needK ? try Tensor.empty(k.shape) : nil
        let dvT = needV ? try Tensor.empty(v.shape) : nil
        let (oq, ok, ov, og) = (q.matrixOffsets(), k.matrixOffsets(), v.matrixOffsets(), g.matrixOffsets())
        let (ldq, ldk, ldv, ldg) = (q.strides[rank - 2], k.strides[rank - 2], v.strides[rank - 2], g.strides[rank - 2])
        let (pq, pk, pv, pg, pp) = (q.storage.floats(), k.storage.floats(), v.storage.floats(), g.storage.floats(), probabilities.floats)
        let (pdq, pdk, pdv) = (dq?.floats, dk?.floats, dvT?.floats)
        // dP and dS of one batch per worker (one pair when the batches go one at a time).
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Parallel.threads * 2 * lq * lk)
        defer { scratch.deallocate() }
        forEachAttentionBatch(batch) { b, worker in
            let p = pp + b * lq * lk, dO = pg + og[b], oneThread = worker != nil
            if let pdv {
                attentionGemm(oneThread, transA: true, m: lk, n: dv, k: lq, a: p, lda: lk, b: dO, ldb: ldg, c: pdv + b * lk * dv, ldc: dv)
            }
            guard pdq != nil || pdk != nil else { return }
            let dP = scratch + (worker ?? 0) * 2 * lq * lk, dS = dP + lq * lk
            attentionGemm(oneThread, transB: true, m: lq, n: lk, k: dv, a: dO, lda: ldg, b: pv + ov[b], ldb: ldv, c: dP, ldc: lk)
            if oneThread {
                lvdk_softmax_grad_rows(dP, p, dS, lq, lk)
            } else {
                Parallel.forEachChunk(lq, grain: Swift.max(1, 16_384 / Swift.max(lk, 1))) { rows in
                    let at = rows.lowerBound * lk
                    lvdk_softmax_grad_rows(dP + at, p + at, dS + at, rows.count, lk)
                }
            }
            if let pdq {
                attentionGemm(oneThread, m: lq, n: d, k: lk, alpha: scale, a: dS, lda: lk, b: pk + ok[b], ldb: ldk, c: pdq + b * lq * d, ldc: d)
            }
            if let pdk {
                attentionGemm(oneThread, transA: true, m: lk, n: d, k: lq, alpha: scale, a: dS, lda: lk, b: pq + oq[b], ldb: ldq,
                              c: pdk + b * lk * d, ldc: d)
            }
        }
        return [dq, dk, dvT]
    }

    /// Reflection padding of the last two axes by one (torch's 'reflect'); from slices and concat.
    public func reflectPadded2d() throws(TensorError) -> Tensor {
        guard rank >= 2, shape[rank - 1] >= 2, shape[rank - 2] >= 2 else {
            throw .invalidArgument(op: "reflect_pad", "needs the last two extents ≥ 2, got \(shape)")
        }
        let wide = try Tensor.concat([sliced(axis: -1, start: 1, end: 2), self, sliced(axis: -1, start: -2, end: -1)], axis: rank - 1)
        return try Tensor.concat([wide.sliced(axis: -2, start: 1, end: 2), wide, wide.sliced(axis: -2, start: -2, end: -1)], axis: rank - 2)
    }

    /// BoxDiff's Gaussian smoothing of the last two axes (METHODS.md §8.1): reflect-pad by one,
    /// then a `size`×`size` kernel built from `exp(−((d − μ)/(2σ))²)` — note 2σ, the reference's
    /// quirk — normalised to sum 1, applied to every plane.
    public func gaussianSmoothed(size: Int = 3, sigma: Float = 0.5) throws(TensorError) -> Tensor {
        guard size == 3 else { throw .invalidArgument(op: "gaussian_smooth", "only size 3 (reflect padding by 1) is supported") }
        let kernel = try Tensor(Tensor.boxDiffGaussianKernel(size: size, sigma: sigma), shape: [1, 1, size, size])
        let h = shape[rank - 2], w = shape[rank - 1]
        let planes = try reshaped([-1, 1, h, w])
        let smoothed = try planes.reflectPadded2d().conv2d(weight: kernel)
        return try smoothed.reshaped(shape)
    }

    /// The normalised 2-D kernel of `gaussianSmoothed`, row-major.
    public static func boxDiffGaussianKernel(size: Int, sigma: Float) -> [Float] {
        let mu = Float(size - 1) / 2
        let line = (0..<size).map { expf(-powf((Float($0) - mu) / (2 * sigma), 2)) }
        let grid = line.flatMap { a in line.map { a * $0 } }
        let total = grid.reduce(0, +)
        return grid.map { $0 / total }
    }
}
