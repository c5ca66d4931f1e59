/// Errors of the tensor runtime. Every one names the op and the offending value; across the
/// C ABI they become a status and this description.
public enum TensorError: Error, CustomStringConvertible, Equatable, Sendable {
    case shapeMismatch(op: String, String)
    case invalidAxis(op: String, axis: Int, rank: Int)
    case invalidArgument(op: String, String)
    case dtype(op: String, expected: DType, actual: DType)
    case outOfMemory(bytes: Int)
    case nonFinite(op: String)
    case gradient(String)

    public var description: String {
        switch self {
        case .shapeMismatch(let op, let detail): return "\(op): shape mismatch: \(detail)"
        case .invalidAxis(let op, let axis, let rank): return "\(op): axis \(axis) is out of range for rank \(rank)"
        case .invalidArgument(let op, let detail): return "\(op): \(detail)"
        case .dtype(let op, let expected, let actual): return "\(op): needs \(expected), got \(actual)"
        case .outOfMemory(let bytes): return "out of memory allocating \(bytes) bytes"
        case .nonFinite(let op): return "\(op): non-finite value"
        case .gradient(let detail): return "backward: \(detail)"
        }
    }
}

/// An n-dimensional array: a view (shape, strides, offset in elements) onto shared storage,
/// plus what reverse-mode autodiff needs. Views (reshape of contiguous data, permute, slice,
/// expand) share storage; ops write new contiguous tensors. Immutable once built, except for
/// `grad` and `requiresGrad`.
public final class Tensor: @unchecked Sendable {
    public static let maxRank = 8
    /// Largest element count a tensor may have (2^40): past that, a shape is an error, not an allocation.
    public static let maxElements = 1 << 40

    public let dtype: DType
    public let shape: [Int]
    public let strides: [Int]
    public let offset: Int
    public let storage: Storage

    /// Gradients flow to this tensor when set (a leaf) or when it was computed from one.
    public var requiresGrad: Bool
    /// The op that produced this tensor, when recorded for backward.
    var node: Node?
    /// Accumulated ∂(root)/∂(self) after `backward()` for leaves that require grad.
    public var grad: Tensor?

    init(storage: Storage, shape: [Int], strides: [Int], offset: Int = 0, dtype: DType = .f32) {
        self.storage = storage
        self.shape = shape
        self.strides = strides
        self.offset = offset
        self.dtype = dtype
        requiresGrad = false
        Tensor.liveObjects.add(1, ordering: .relaxed)
    }

    deinit { Tensor.liveObjects.subtract(1, ordering: .relaxed) }

    // MARK: Creating

    /// An uninitialised contiguous tensor.
    public static func empty(_ shape: [Int], dtype: DType = .f32) throws(TensorError) -> Tensor {
        let count = try checkedCount(shape)
        let storage = try Storage(byteCount: count * dtype.byteSize)
        return Tensor(storage: storage, shape: shape, strides: contiguousStrides(shape), dtype: dtype)
    }

    public static func zeros(_ shape: [Int], dtype: DType = .f32) throws(TensorError) -> Tensor {
        let tensor = try empty(shape, dtype: dtype)
        tensor.storage.bytes.initializeMemory(as: UInt8.self, repeating: 0, count: tensor.storage.byteCount)
        return tensor
    }

    public static func full(_ shape: [Int], _ value: Float) throws(TensorError) -> Tensor {
        let tensor = try empty(shape)
        tensor.storage.floats().initialize(repeating: value, count: tensor.count)
        return tensor
    }

    public static func scalar(_ value: Float) -> Tensor { try! full([], value) }

    /// A contiguous f32 tensor holding `values` (row-major).
    public convenience init(_ values: [Float], shape: [Int]) throws(TensorError) {
        let count = try Tensor.checkedCount(shape)
        guard count == values.count else {
            throw .shapeMismatch(op: "tensor", "\(values.count) values for shape \(shape)")
        }
        let storage = try Storage(byteCount: count * 4)
        values.withUnsafeBufferPointer { storage.floats().update(from: $0.baseAddress!, count: count) }
        self.init(storage: storage, shape: shape, strides: Tensor.contiguousStrides(shape))
    }

    /// A contiguous f32 tensor over existing storage (e.g. a memory-mapped weight file), no copy.
    public static func view(storage: Storage, shape: [Int]) -> Tensor {
        precondition(shape.reduce(1, *) * 4 <= storage.byteCount, "storage too small for \(shape)")
        return Tensor(storage: storage, shape: shape, strides: contiguousStrides(shape))
    }

    /// A contiguous tensor of `dtype` from raw row-major bytes.
    public static func fromBytes(_ bytes: UnsafeRawBufferPointer, shape: [Int], dtype: DType) throws(TensorError) -> Tensor {
        let tensor = try empty(shape, dtype: dtype)
        guard bytes.count == tensor.storage.byteCount else {
            throw .shapeMismatch(op: "tensor", "\(bytes.count) bytes for \(dtype) shape \(shape)")
        }
        if bytes.count > 0 { tensor.storage.bytes.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        return tensor
    }

    static func checkedCount(_ shape: [Int]) throws(TensorError) -> Int {
        guard shape.count <= maxRank else { throw .invalidArgument(op: "tensor", "rank \(shape.count) exceeds \(maxRank)") }
        var count = 1
        for (axis, extent) in shape.enumerated() {
            guard extent >= 0 else { throw .invalidArgument(op: "tensor", "extent \(extent) of axis \(axis) is negative") }
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow, product <= maxElements else {
                throw .invalidArgument(op: "tensor", "shape \(shape) has more than 2^40 elements")
            }
            count = product
        }
        return count
    }

    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = step
            step *= Swift.max(shape[axis], 1)
        }
        return strides
    }

    // MARK: Describing

    public var rank: Int { shape.count }
    public var count: Int { shape.reduce(1, *) }

    public var isContiguous: Bool {
        var expected = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] != 1 {
            if strides[axis] != expected { return false }
            expected *= shape[axis]
        }
        return true
    }

    /// Pointer to element 0 of a contiguous f32 tensor.
    public var floats: UnsafeMutablePointer<Float> { storage.floats(offset) }

    /// The elements in row-major order (converted to Float).
    public func toArray() -> [Float] {
        let dense = dtype == .f32 ? (try! contiguous()) : (try! to(.f32))
        return Array(UnsafeBufferPointer(start: dense.floats, count: dense.count))
    }

    /// The single element of a one-element tensor.
    public func item() throws(TensorError) -> Float {
        guard count == 1 else { throw .invalidArgument(op: "item", "tensor of shape \(shape) is not a single value") }
        return toArray()[0]
    }

    func normalizedAxis(_ axis: Int, op: String, rank: Int? = nil) throws(TensorError) -> Int {
        let rank = rank ?? self.rank
        let value = axis < 0 ? axis + rank : axis
        guard value >= 0, value < rank else { throw .invalidAxis(op: op, axis: axis, rank: rank) }
        return value
    }

    func requireF32(_ op: String) throws(TensorError) {
        if dtype != .f32 { throw .dtype(op: op, expected: .f32, actual: dtype) }
    }

    /// Tensor objects alive in this process.
    public static var liveCount: Int { liveObjects.load(ordering: .relaxed) }
    private static let liveObjects = Atomic<Int>(0)
}

import Synchronization

extension Tensor: CustomStringConvertible {
    public var description: String {
        let values = count <= 16 ? toArray().map { "\($0)" }.joined(separator: ", ") : "…"
        return "Tensor(\(dtype) \(shape): [\(values)])"
    }
}
