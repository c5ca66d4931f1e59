/// Strided iteration shared by the elementwise kernels: the operands' shapes are merged where
/// their strides allow (so runs are as long as possible, TensorIterator-style), then the
/// outer index space is split over threads and each run along the last axis is handed to the
/// kernel with one start offset per operand.
struct StridedRuns {
    let outerShape: [Int]
    /// Per operand, strides of the outer axes.
    let outerStrides: [[Int]]
    let inner: Int
    /// Per operand, the stride along a run.
    let innerStrides: [Int]

    var outerCount: Int { outerShape.reduce(1, *) }

    init(shape: [Int], strides operands: [[Int]]) {
        // Drop extent-1 axes, then merge axis pairs that are contiguous for every operand.
        var dims: [(extent: Int, strides: [Int])] = []
        for axis in shape.indices where shape[axis] != 1 {
            dims.append((shape[axis], operands.map { $0[axis] }))
        }
        var merged: [(extent: Int, strides: [Int])] = []
        for dim in dims {
            if let last = merged.last, zip(last.strides, dim.strides).allSatisfy({ $0 == $1 * dim.extent }) {
                merged[merged.count - 1] = (last.extent * dim.extent, dim.strides)
            } else {
                merged.append(dim)
            }
        }
        if let last = merged.popLast() {
            inner = last.extent
            innerStrides = last.strides
        } else {
            inner = 1
            innerStrides = operands.map { _ in 0 }
        }
        outerShape = merged.map(\.extent)
        outerStrides = operands.indices.map { operand in merged.map { $0.strides[operand] } }
    }

    /// Calls `body(offsets, outerIndex)` for every run; `offsets[k]` is operand k's element
    /// offset (relative to its base) of the run's first element. Within a thread's chunk the
    /// offsets advance like an odometer (an add per run, a carry now and then) instead of being
    /// recomputed from the index: runs of a few elements (a head's 8 channels in a permuted
    /// gradient) made the divisions and the nested strides' lookups most of a copy's time.
    func forEach(grain: Int = 32_768, _ body: (UnsafeMutableBufferPointer<Int>, Int) -> Void) {
        let operands = innerStrides.count
        let outer = outerCount
        let rank = outerShape.count
        let extents = outerShape
        let strides = (0..<rank).flatMap { axis in (0..<operands).map { outerStrides[$0][axis] } }  // [axis · operands + k]
        Parallel.forEachChunk(outer, grain: max(1, grain / max(inner, 1))) { range in
            guard !range.isEmpty else { return }
            extents.withUnsafeBufferPointer { extents in
                strides.withUnsafeBufferPointer { strides in
                    withUnsafeTemporaryAllocation(of: Int.self, capacity: max(operands, 1) * 2 + max(rank, 1)) { scratch in
                        let base = scratch.baseAddress!
                        let offsets = UnsafeMutableBufferPointer(start: base, count: operands)
                        let current = base + operands, coordinates = base + 2 * operands
                        for k in 0..<operands { current[k] = 0 }
                        var rest = range.lowerBound
                        for axis in stride(from: rank - 1, through: 0, by: -1) {
                            coordinates[axis] = rest % extents[axis]
                            rest /= extents[axis]
                            for k in 0..<operands { current[k] += coordinates[axis] * strides[axis * operands + k] }
                        }
                        for index in range {
                            for k in 0..<operands { offsets[k] = current[k] }
                            body(offsets, index)
                            // The next run: the last outer axis steps; a full axis carries into the one before.
                            var axis = rank - 1
                            while axis >= 0 {
                                coordinates[axis] += 1
                                for k in 0..<operands { current[k] += strides[axis * operands + k] }
                                if coordinates[axis] < extents[axis] { break }
                                for k in 0..<operands { current[k] -= extents[axis] * strides[axis * operands + k] }
                                coordinates[axis] = 0
                                axis -= 1
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The shape two operands broadcast to (numpy rules), or nil.
func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    var result = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let x = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let y = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        guard x == y || x == 1 || y == 1 else { return nil }
        result[i] = x == 1 ? y : x
    }
    return result
}
