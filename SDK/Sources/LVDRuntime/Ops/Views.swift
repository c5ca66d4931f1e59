// Shape ops. reshape (of contiguous data), permute, slice and expand are views sharing
// storage; contiguous, concat and pad copy.

extension Tensor {
    /// A contiguous copy (or self when already contiguous).
    public func contiguous() throws(TensorError) -> Tensor {
        if isContiguous { return self }
        try requireF32("contiguous")
        let output = try Tensor.empty(shape)
        let runs = StridedRuns(shape: shape, strides: [Tensor.contiguousStrides(shape), strides])
        let src = storage.floats(offset), dst = output.floats
        let inner = runs.inner, sOut = runs.innerStrides[0], sIn = runs.innerStrides[1]
        runs.forEach { offsets, _ in
            let o = dst + offsets[0], i = src + offsets[1]
            if sIn == 1 && sOut == 1 {
                o.update(from: i, count: inner)
            } else {
                for j in 0..<inner { o[j * sOut] = i[j * sIn] }
            }
        }
        return Tensor.record(output, .copy, [self])
    }

    /// The same elements in `newShape` (one extent may be -1). A view when contiguous.
    public func reshaped(_ newShape: [Int]) throws(TensorError) -> Tensor {
        var target = newShape
        let known = newShape.filter { $0 != -1 }.reduce(1, *)
        if let hole = newShape.firstIndex(of: -1) {
            guard newShape.filter({ $0 == -1 }).count == 1, known > 0, count % known == 0 else {
                throw .shapeMismatch(op: "reshape", "cannot infer -1 in \(newShape) for \(count) elements")
            }
            target[hole] = count / known
        }
        guard try Tensor.checkedCount(target) == count else {
            throw .shapeMismatch(op: "reshape", "\(shape) (\(count) elements) to \(newShape)")
        }
        let source = try contiguous()
        let view = Tensor(storage: source.storage, shape: target, strides: Tensor.contiguousStrides(target),
                          offset: source.offset, dtype: dtype)
        return Tensor.record(view, .reshape(from: shape), [source])
    }

    /// Axes reordered: result axis i is input axis `axes[i]`. A view.
    public func permuted(_ axes: [Int]) throws(TensorError) -> Tensor {
        guard axes.count == rank, Set(axes) == Set(0..<rank) else {
            throw .invalidArgument(op: "permute", "\(axes) is not a permutation of 0..<\(rank)")
        }
        let view = Tensor(storage: storage, shape: axes.map { shape[$0] }, strides: axes.map { strides[$0] },
                          offset: offset, dtype: dtype)
        return Tensor.record(view, .permute(axes), [self])
    }

    public func transposed(_ a: Int, _ b: Int) throws(TensorError) -> Tensor {
        let x = try normalizedAxis(a, op: "transpose"), y = try normalizedAxis(b, op: "transpose")
        var axes = Array(0..<rank)
        axes.swapAt(x, y)
        return try permuted(axes)
    }

    /// Elements `start..<end` (by `step`) along `axis`; negative bounds count from the end. A view.
    public func sliced(axis: Int, start: Int, end: Int? = nil, step: Int = 1) throws(TensorError) -> Tensor {
        let axis = try normalizedAxis(axis, op: "slice")
        guard step > 0 else { throw .invalidArgument(op: "slice", "step \(step) must be positive") }
        let extent = shape[axis]
        func clamp(_ value: Int) -> Int { Swift.min(Swift.max(value < 0 ? value + extent : value, 0), extent) }
        let from = clamp(start), to = Swift.max(clamp(end ?? extent), from)
        var newShape = shape, newStrides = strides
        newShape[axis] = (to - from + step - 1) / step
        newStrides[axis] = strides[axis] * step
        let view = Tensor(storage: storage, shape: newShape, strides: newStrides,
                          offset: offset + from * strides[axis], dtype: dtype)
        return Tensor.record(view, .slice(axis: axis, start: from, step: step, inputShape: shape), [self])
    }

    /// `parts` equal pieces along `axis` (GEGLU's chunk).
    public func chunked(_ parts: Int, axis: Int) throws(TensorError) -> [Tensor] {
        let a = try normalizedAxis(axis, op: "chunk")
        guard parts > 0, shape[a] % parts == 0 else {
            throw .invalidArgument(op: "chunk", "extent \(shape[a]) of axis \(a) does not split into \(parts)")
        }
        let size = shape[a] / parts
        var result: [Tensor] = []
        for part in 0..<parts { result.append(try sliced(axis: a, start: part * size, end: (part + 1) * size)) }
        return result
    }

    /// Broadcast to `newShape` (numpy rules) without copying: stride 0 along repeated axes.
    public func expanded(_ newShape: [Int]) throws(TensorError) -> Tensor {
        guard newShape.count >= rank, broadcastShape(shape, newShape) == newShape else {
            throw .shapeMismatch(op: "expand", "\(shape) cannot broadcast to \(newShape)")
        }
        if newShape == shape { return self }
        let lead = newShape.count - rank
        var newStrides = [Int](repeating: 0, count: newShape.count)
        for axis in 0..<rank where shape[axis] != 1 || newShape[lead + axis] == 1 {
            newStrides[lead + axis] = strides[axis]
        }
        let view = Tensor(storage: storage, shape: newShape, strides: newStrides, offset: offset, dtype: dtype)
        return Tensor.record(view, .expand(from: shape), [self])
    }

    public func unsqueezed(_ axis: Int) throws(TensorError) -> Tensor {
        let a = try normalizedAxis(axis, op: "unsqueeze", rank: rank + 1)
        var newShape = shape
        newShape.insert(1, at: a)
        return try reshaped(newShape)
    }

    public func squeezed(_ axis: Int) throws(TensorError) -> Tensor {
        let a = try normalizedAxis(axis, op: "squeeze")
        guard shape[a] == 1 else { throw .invalidArgument(op: "squeeze", "axis \(a) has extent \(shape[a]), not 1") }
        var newShape = shape
        newShape.remove(at: a)
        return try reshaped(newShape)
    }

    /// Tensors joined along `axis`; all other extents must agree.
    public static func concat(_ tensors: [Tensor], axis: Int) throws(TensorError) -> Tensor {
        guard let first = tensors.first else { throw .invalidArgument(op: "concat", "no tensors") }
        let a = try first.normalizedAxis(axis, op: "concat")
        for tensor in tensors {
            try tensor.requireF32("concat")
            guard tensor.rank == first.rank,
                  tensor.shape.enumerated().allSatisfy({ $0.offset == a || $0.element == first.shape[$0.offset] }) else {
                throw .shapeMismatch(op: "concat", "\(tensors.map(\.shape)) along axis \(a)")
            }
        }
        var shape = first.shape
        shape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
        let output = try Tensor.empty(shape)
        var start = 0
        for tensor in tensors {
            let region = Tensor(storage: output.storage, shape: tensor.shape, strides: output.strides,
                                offset: start * output.strides[a])
            copyElements(from: tensor, into: region)
            start += tensor.shape[a]
        }
        return record(output, .concat(axis: a, sizes: tensors.map { $0.shape[a] }), tensors)
    }

    /// Constant padding: `pads[i] = (before, after)` for axis i (fewer entries pad the last axes).
    public func padded(_ pads: [(Int, Int)], value: Float = 0) throws(TensorError) -> Tensor {
        try requireF32("pad")
        guard pads.count <= rank, pads.allSatisfy({ $0.0 >= 0 && $0.1 >= 0 }) else {
            throw .invalidArgument(op: "pad", "needs at most \(rank) non-negative (before, after) pairs")
        }
        let full = [(Int, Int)](repeating: (0, 0), count: rank - pads.count) + pads
        let newShape = zip(shape, full).map { $0 + $1.0 + $1.1 }
        let output = try Tensor.full(newShape, value)
        let offset = zip(full, output.strides).reduce(0) { $0 + $1.0.0 * $1.1 }
        let region = Tensor(storage: output.storage, shape: shape, strides: output.strides, offset: offset)
        copyElements(from: self, into: region)
        return Tensor.record(output, .pad(full), [self])
    }
}

/// Copies `source`'s elements into the (strided) view `target` of the same shape.
func copyElements(from source: Tensor, into target: Tensor) {
    let runs = StridedRuns(shape: source.shape, strides: [target.strides, source.strides])
    let dst = target.storage.floats(target.offset), src = source.storage.floats(source.offset)
    let inner = runs.inner, sOut = runs.innerStrides[0], sIn = runs.innerStrides[1]
    runs.forEach { offsets, _ in
        let o = dst + offsets[0], i = src + offsets[1]
        if sOut == 1 && sIn == 1 {
            o.update(from: i, count: inner)
        } else {
            for j in 0..<inner { o[j * sOut] = i[j * sIn] }
        }
    }
}

extension Tensor {
    /// Converts the element type (f16/bf16/u8 storage to f32 compute, and back).
    public func to(_ target: DType) throws(TensorError) -> Tensor {
        if target == dtype { return self }
        let output = try Tensor.empty(shape, dtype: target)
        let runs = StridedRuns(shape: shape, strides: [output.strides, strides])
        let src = storage.bytes, dst = output.storage.bytes
        let inner = runs.inner, sIn = runs.innerStrides[1]
        let base = offset
        let from = dtype
        runs.forEach { offsets, _ in
            for j in 0..<inner {
                let i = base + offsets[1] + j * sIn, o = offsets[0] + j
                let value: Float
                switch from {
                case .f32: value = src.load(fromByteOffset: i * 4, as: Float.self)
                case .f16: value = Float(src.load(fromByteOffset: i * 2, as: Float16.self))
                case .bf16: value = Float(bitPattern: UInt32(src.load(fromByteOffset: i * 2, as: UInt16.self)) << 16)
                case .u8: value = Float(src.load(fromByteOffset: i, as: UInt8.self))
                }
                switch target {
                case .f32: dst.storeBytes(of: value, toByteOffset: o * 4, as: Float.self)
                case .f16: dst.storeBytes(of: Float16(value), toByteOffset: o * 2, as: Float16.self)
                case .bf16: dst.storeBytes(of: bfloat16Bits(value), toByteOffset: o * 2, as: UInt16.self)
                // u8 truncates toward zero after clamping, as image conversion does.
                case .u8: dst.storeBytes(of: UInt8(Swift.min(Swift.max(value.isNaN ? 0 : value, 0), 255)), toByteOffset: o, as: UInt8.self)
                }
            }
        }
        return output
    }
}

/// Round-to-nearest-even conversion of a Float to bfloat16 bits (NaN kept quiet).
func bfloat16Bits(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN { return UInt16(bits >> 16) | 0x40 }
    let rounding = 0x7FFF + ((bits >> 16) & 1)
    return UInt16((bits &+ rounding) >> 16)
}

extension Tensor {
    /// Self when contiguous, else a contiguous copy of any dtype (not recorded).
    func denseCopyIfNeeded() throws(TensorError) -> Tensor {
        if isContiguous { return self }
        if dtype == .f32 { return try GradMode.withoutGrad { () throws(TensorError) in try detached().contiguous() } }
        return try to(.f32).to(dtype)
    }
}
