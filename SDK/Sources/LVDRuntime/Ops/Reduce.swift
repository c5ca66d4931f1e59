import LVDKernels

// Reductions: sum, mean, max over any axes; top-k values along the last axis.

/// Indices kept for the backward rule of max and top-k (flat positions in the input).
final class IndexBox: @unchecked Sendable {
    let values: [Int]
    init(_ values: [Int]) { self.values = values }
}

extension Tensor {
    /// The reduction as (outer, reduced, inner) blocks of a contiguous tensor: reduced axes are
    /// moved together (one copy when they are not adjacent already).
    private func reductionLayout(_ axes: [Int], op: String) throws(TensorError) -> (source: Tensor, outer: Int, reduced: Int, inner: Int, axes: [Int]) {
        var normalized: [Int] = []
        for axis in axes { normalized.append(try normalizedAxis(axis, op: op)) }
        let reduce = Array(Set(normalized)).sorted()
        if reduce.isEmpty { return (try contiguous(), count, 1, 1, []) }
        if reduce.last! - reduce.first! + 1 == reduce.count {
            let source = try contiguous()
            let outer = shape[..<reduce.first!].reduce(1, *)
            let reduced = reduce.map { shape[$0] }.reduce(1, *)
            return (source, outer, reduced, count / Swift.max(outer * reduced, 1), reduce)
        }
        let kept = (0..<rank).filter { !reduce.contains($0) }
        let moved = try GradMode.withoutGrad { () throws(TensorError) in try detached().permuted(kept + reduce).contiguous() }
        let reduced = reduce.map { shape[$0] }.reduce(1, *)
        return (moved, count / Swift.max(reduced, 1), reduced, 1, reduce)
    }

    private func reducedShape(_ axes: [Int], keepDims: Bool) -> [Int] {
        keepDims ? shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
                 : shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
    }

    /// Sum over `axes` (all axes when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) throws(TensorError) -> Tensor {
        try requireF32("sum")
        let (source, outer, reduced, inner, reduce) = try reductionLayout(axes ?? Array(0..<rank), op: "sum")
        let output = try Tensor.zeros(reducedShape(reduce, keepDims: keepDims))
        let src = source.floats, dst = output.floats
        if inner == 1 {
            Parallel.forEachChunk(outer, grain: Swift.max(1, 32_768 / Swift.max(reduced, 1))) { range in
                for o in range { dst[o] = sumContiguous(src + o * reduced, reduced) }
            }
        } else {
            Parallel.forEachChunk(outer * inner, grain: 4096) { range in
                // Each chunk owns a disjoint range of outputs: rows of `inner` accumulate.
                var index = range.lowerBound
                while index < range.upperBound {
                    let o = index / inner, i = index % inner
                    let length = Swift.min(inner - i, range.upperBound - index)
                    let out = dst + index
                    for r in 0..<reduced {
                        let row = src + (o * reduced + r) * inner + i
                        for j in 0..<length { out[j] += row[j] }
                    }
                    index += length
                }
            }
        }
        return Tensor.record(output, .sum(inputShape: shape, axes: reduce, keepDims: keepDims), [self])
    }

    public func mean(axes: [Int]? = nil, keepDims: Bool = false) throws(TensorError) -> Tensor {
        let reduce = axes ?? Array(0..<rank)
        var n = 1
        for axis in Set(try reduce.map { (a: Int) throws(TensorError) in try normalizedAxis(a, op: "mean") }) { n *= shape[axis] }
        return try sum(axes: reduce, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }

    /// Maximum over `axes` (all when nil); the gradient goes to the first maximal element.
    public func max(axes: [Int]? = nil, keepDims: Bool = false) throws(TensorError) -> Tensor {
        try requireF32("max")
        guard count > 0 else { throw .invalidArgument(op: "max", "empty tensor") }
        let (source, outer, reduced, inner, reduce) = try reductionLayout(axes ?? Array(0..<rank), op: "max")
        guard reduced > 0 else { throw .invalidArgument(op: "max", "reducing an empty axis") }
        let output = try Tensor.empty(reducedShape(reduce, keepDims: keepDims))
        let src = source.floats, dst = output.floats
        var positions = [Int](repeating: 0, count: outer * inner)
        positions.withUnsafeMutableBufferPointer { where_ in
            let best = where_
            Parallel.forEachChunk(outer * inner, grain: 4096) { range in
                for index in range {
                    let o = index / inner, i = index % inner
                    var value = -Float.infinity, at = 0
                    for r in 0..<reduced {
                        let v = src[(o * reduced + r) * inner + i]
                        if v > value || (r == 0) || v.isNaN { value = v; at = r; if v.isNaN { break } }
                    }
                    dst[index] = value
                    best[index] = (o * reduced + at) * inner + i
                }
            }
        }
        // Positions are in `source` order; map them back to flat positions of self.
        let flat = reduce.isEmpty || source.shape == shape ? positions : remapPermuted(positions, reduce: reduce)
        return Tensor.record(output, .gather(inputShape: shape, indices: IndexBox(flat)), [self])
    }

    /// Maps flat positions in the permuted (kept axes, then reduced axes) layout back to self's layout.
    private func remapPermuted(_ positions: [Int], reduce: [Int]) -> [Int] {
        let order = (0..<rank).filter { !reduce.contains($0) } + reduce
        let permutedShape = order.map { shape[$0] }
        let selfStrides = Tensor.contiguousStrides(shape)
        return positions.map { position in
            var rest = position, flat = 0
            for k in stride(from: rank - 1, through: 0, by: -1) {
                let coordinate = rest % permutedShape[k]
                rest /= permutedShape[k]
                flat += coordinate * selfStrides[order[k]]
            }
            return flat
        }
    }

    /// The `k` largest values along the last axis, in descending order (torch.topk values).
    public func topK(_ k: Int) throws(TensorError) -> Tensor {
        try requireF32("topk")
        guard rank >= 1, k >= 1, k <= shape[rank - 1] else {
            throw .invalidArgument(op: "topk", "k = \(k) must be in 1...\(rank >= 1 ? shape[rank - 1] : 0) (the last axis)")
        }
        let source = try contiguous()
        let n = shape[rank - 1], rows = count / n
        var outShape = shape
        outShape[rank - 1] = k
        let output = try Tensor.empty(outShape)
        var positions = [Int](repeating: 0, count: rows * k)
        let src = source.floats, dst = output.floats
        positions.withUnsafeMutableBufferPointer { chosen in
            let chosen = chosen
            Parallel.forEachChunk(rows, grain: Swift.max(1, 8192 / n)) { range in
                var order = [Int](repeating: 0, count: n)
                for row in range {
                    let base = src + row * n
                    for j in 0..<n { order[j] = j }
                    // Stable: equal values keep their order, as a partial sort by (value desc, index asc).
                    order.sort { base[$0] > base[$1] || (base[$0] == base[$1] && $0 < $1) }
                    for j in 0..<k {
                        dst[row * k + j] = base[order[j]]
                        chosen[row * k + j] = row * n + order[j]
                    }
                }
            }
        }
        return Tensor.record(output, .gather(inputShape: shape, indices: IndexBox(positions)), [self])
    }
}

extension Tensor {
    /// Rows of a 2-D table (an embedding lookup): result (indices.count, columns). Differentiable
    /// with respect to the table (gradients add up over repeated indices).
    public func rows(_ indices: [Int]) throws(TensorError) -> Tensor {
        try requireF32("rows")
        guard rank == 2 else { throw .invalidArgument(op: "rows", "needs a 2-D table, got \(shape)") }
        let (count, columns) = (shape[0], shape[1])
        if let bad = indices.first(where: { $0 < 0 || $0 >= count }) {
            throw .invalidArgument(op: "rows", "index \(bad) is outside 0..<\(count)")
        }
        let table = try GradMode.withoutGrad { () throws(TensorError) in try self.detached().contiguous() }
        let output = try Tensor.empty([indices.count, columns])
        var flat: [Int] = []
        flat.reserveCapacity(indices.count * columns)
        for (row, index) in indices.enumerated() {
            (output.floats + row * columns).update(from: table.floats + index * columns, count: columns)
            for column in 0..<columns { flat.append(index * columns + column) }
        }
        return Tensor.record(output, .gather(inputShape: shape, indices: IndexBox(flat)), [self])
    }
}

/// Sum of `n` contiguous floats (vectorised in C).
@inline(__always)
func sumContiguous(_ p: UnsafePointer<Float>, _ n: Int) -> Float { lvdk_sum(p, n) }
