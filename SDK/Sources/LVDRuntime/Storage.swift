import Foundation

/// Element types (`lvd_dtype`). Compute is fp32; f16/bf16 are storage types for weights and u8
/// holds images. Ops other than conversion require f32.
public enum DType: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1, bf16 = 2, u8 = 3

    public var byteSize: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .u8: return 1
        }
    }

    public var description: String {
        switch self {
        case .f32: return "f32"
        case .f16: return "f16"
        case .bf16: return "bf16"
        case .u8: return "u8"
        }
    }
}

/// A block of memory owned by one or more tensors (views share it). 64-byte aligned.
public final class Storage: @unchecked Sendable {
    public let bytes: UnsafeMutableRawPointer
    public let byteCount: Int
    /// Keeps a memory map or another owner alive (e.g. weights read from safetensors).
    private let owner: AnyObject?
    private let pooled: Bool

    /// Uninitialised memory of `byteCount` bytes (from the buffer pool).
    public init(byteCount: Int) throws(TensorError) {
        guard let pointer = BufferPool.shared.take(byteCount) else { throw .outOfMemory(bytes: byteCount) }
        self.byteCount = byteCount
        bytes = pointer
        owner = nil
        pooled = true
        Storage.live.add(1, ordering: .relaxed)
    }

    /// Memory owned elsewhere; `owner` is retained for as long as this storage lives.
    public init(borrowing bytes: UnsafeMutableRawPointer, byteCount: Int, owner: AnyObject) {
        self.bytes = bytes
        self.byteCount = byteCount
        self.owner = owner
        pooled = false
        Storage.live.add(1, ordering: .relaxed)
    }

    deinit {
        if pooled { BufferPool.shared.give(bytes, byteCount) }
        Storage.live.subtract(1, ordering: .relaxed)
    }

    public func floats(_ offset: Int = 0) -> UnsafeMutablePointer<Float> {
        bytes.assumingMemoryBound(to: Float.self) + offset
    }

    /// Storages alive in this process.
    public static var liveCount: Int { live.load(ordering: .relaxed) }
    private static let live = Atomic<Int>(0)
}

import Synchronization

/// Reuses freed buffers of the same size: a UNet step allocates the same activation sizes
/// over and over, and fresh large blocks cost page faults every time.
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()

    /// Bytes the pool may keep cached (LVD_BUFFER_POOL_MB, default 512: the full ModelScope forward
    /// took 59.2 s and peaked at 6.96 GiB with 512, 60.3 s / 8.36 GiB with 2048, 67.9 s / 6.51 GiB
    /// with none; docs/runtime-performance.md).
    public let capacity: Int
    private let state = Mutex(State())

    private struct State {
        var free: [Int: [UnsafeMutableRawPointer]] = [:]
        var cachedBytes = 0
        var order: [(Int, UnsafeMutableRawPointer)] = [] // oldest first, for eviction
    }

    init() {
        let megabytes = ProcessInfo.processInfo.environment["LVD_BUFFER_POOL_MB"].flatMap(Int.init) ?? 512
        capacity = max(0, megabytes) << 20
    }

    func take(_ byteCount: Int) -> UnsafeMutableRawPointer? {
        let size = max(byteCount, 1)
        if let reused = state.withLock({ state -> UnsafeMutableRawPointer? in
            guard var list = state.free[size], let pointer = list.popLast() else { return nil }
            state.free[size] = list.isEmpty ? nil : list
            state.cachedBytes -= size
            if let index = state.order.firstIndex(where: { $0.1 == pointer }) { state.order.remove(at: index) }
            return pointer
        }) {
            return reused
        }
        return BufferPool.allocate(size)
    }

    /// Buffers from this size up are mapped on their own, 2 MiB aligned, and asked to be backed by
    /// transparent huge pages: a fresh multi-megabyte activation then costs a few hundred page
    /// faults instead of one per 4 KiB, which made a large GEMM's output slower to fill than to
    /// compute (a 16384×2560 product: 0.37 s fresh against 0.26 s into touched memory; 0.28 s on
    /// huge pages). Where the kernel does not offer them the advice is ignored.
    static let hugeThreshold = 4 << 20
    private static let hugePage = 2 << 20

    private static func mappedSize(_ size: Int) -> Int { (size + hugePage - 1) / hugePage * hugePage }

    static func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        guard size >= hugeThreshold else {
            var pointer: UnsafeMutableRawPointer?
            guard posix_memalign(&pointer, 64, size) == 0 else { return nil }
            return pointer
        }
        // Map one huge page more than needed, then unmap the unaligned head and the tail.
        let length = mappedSize(size), span = length + hugePage
        guard let raw = mmap(nil, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else { return nil }
        let address = Int(bitPattern: raw)
        let aligned = (address + hugePage - 1) / hugePage * hugePage
        if aligned > address { munmap(raw, aligned - address) }
        let tail = address + span - (aligned + length)
        if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + length), tail) }
        let pointer = UnsafeMutableRawPointer(bitPattern: aligned)!
        _ = madvise(pointer, length, 14 /* MADV_HUGEPAGE */)
        return pointer
    }

    static func release(_ pointer: UnsafeMutableRawPointer, _ size: Int) {
        if size >= hugeThreshold { munmap(pointer, mappedSize(size)) } else { free(pointer) }
    }

    func give(_ pointer: UnsafeMutableRawPointer, _ byteCount: Int) {
        let size = max(byteCount, 1)
        // Small buffers are cheap to malloc; only large ones are worth keeping.
        guard size >= 1 << 16, size <= capacity else { BufferPool.release(pointer, size); return }
        var evicted: [(UnsafeMutableRawPointer, Int)] = []
        state.withLock { state in
            state.free[size, default: []].append(pointer)
            state.order.append((size, pointer))
            state.cachedBytes += size
            while state.cachedBytes > capacity, !state.order.isEmpty {
                let (oldSize, oldPointer) = state.order.removeFirst()
                if var list = state.free[oldSize], let index = list.firstIndex(of: oldPointer) {
                    list.remove(at: index)
                    state.free[oldSize] = list.isEmpty ? nil : list
                    state.cachedBytes -= oldSize
                    evicted.append((oldPointer, oldSize))
                }
            }
        }
        for (pointer, size) in evicted { BufferPool.release(pointer, size) }
    }

    /// Frees every cached buffer.
    public func drain() {
        let all = state.withLock { state -> [(UnsafeMutableRawPointer, Int)] in
            let pointers = state.free.flatMap { size, list in list.map { ($0, size) } }
            state = State()
            return pointers
        }
        for (pointer, size) in all { BufferPool.release(pointer, size) }
    }

    public var cachedBytes: Int { state.withLock { $0.cachedBytes } }
}
