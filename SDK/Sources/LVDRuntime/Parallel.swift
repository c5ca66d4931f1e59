import Dispatch
import Foundation

/// Threaded loops for the elementwise and normalisation kernels. Work below `grain` units is
/// done on the calling thread: dispatching costs more than it saves.
public enum Parallel {
    /// Threads used by the runtime's own loops (LVD_THREADS, default: all cores).
    public static let threads: Int = {
        if let value = ProcessInfo.processInfo.environment["LVD_THREADS"].flatMap(Int.init), value > 0 { return value }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Calls `body(range)` over disjoint chunks covering 0..<count, in parallel when worth it.
    @inline(__always)
    public static func forEachChunk(_ count: Int, grain: Int = 32_768, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, count / max(grain, 1))
        if chunks <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        let size = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = chunk * size
                let end = min(count, start + size)
                if start < end { body(start..<end) }
            }
        }
    }
}
