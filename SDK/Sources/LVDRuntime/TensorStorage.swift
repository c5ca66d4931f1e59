import Synchronization

/// Element types of the C ABI (`lvd_dtype`).
public enum DType: Int32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, bf16 = 2, u8 = 3

    public var byteSize: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .u8: return 1
        }
    }

    public var name: String {
        switch self {
        case .f32: return "f32"
        case .f16: return "f16"
        case .bf16: return "bf16"
        case .u8: return "u8"
        }
    }
}

public enum TensorError: Error, CustomStringConvertible, Equatable {
    case invalidRank(Int)
    case invalidExtent(axis: Int, extent: Int)
    case byteCountMismatch(expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .invalidRank(let rank): return "rank \(rank) is outside 0...\(Tensor.maxRank)"
        case .invalidExtent(let axis, let extent): return "extent \(extent) of axis \(axis) is negative"
        case .byteCountMismatch(let expected, let actual):
            return "buffer holds \(actual) bytes, the tensor needs \(expected)"
        }
    }
}

/// A contiguous, row-major tensor as the runtime stores it.
public final class Tensor: @unchecked Sendable {
    public static let maxRank = 8

    public let dtype: DType
    public let shape: [Int]
    /// Row-major elements; `shape.product * dtype.byteSize` bytes.
    public private(set) var bytes: [UInt8]

    public var elementCount: Int { shape.reduce(1, *) }

    public init(dtype: DType, shape: [Int], bytes: [UInt8]? = nil) throws(TensorError) {
        guard (0...Tensor.maxRank).contains(shape.count) else { throw .invalidRank(shape.count) }
        for (axis, extent) in shape.enumerated() where extent < 0 {
            throw .invalidExtent(axis: axis, extent: extent)
        }
        let byteCount = shape.reduce(1, *) * dtype.byteSize
        if let bytes, bytes.count != byteCount {
            throw .byteCountMismatch(expected: byteCount, actual: bytes.count)
        }
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes ?? [UInt8](repeating: 0, count: byteCount)
        Tensor.liveObjects.add(1, ordering: .relaxed)
    }

    /// Replaces every element with the `bytes.count` bytes at `source`.
    public func overwrite(from source: UnsafeRawPointer) {
        bytes.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: source, count: $0.count)) }
    }

    deinit { Tensor.liveObjects.subtract(1, ordering: .relaxed) }

    /// Tensor objects alive in this process, whether or not a C handle refers to them.
    public static var liveCount: Int { liveObjects.load(ordering: .relaxed) }
    private static let liveObjects = Atomic<Int>(0)
}

