#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// Where the time of a forward or backward pass goes, by op and output shape. With
/// `LVD_PROFILE=1` every op charges the wall time since the previous op finished on the same
/// thread (so model code between ops is charged to the next op, which is negligible next to a
/// kernel); in a backward pass each op's rule is charged as a whole, under the forward op's name
/// and output shape. Off by default: one branch per op.
public enum OpProfile {
    /// Set before the work to profile (by `lvd bench unet --profile`, or LVD_PROFILE=1 at start).
    nonisolated(unsafe) public static var enabled = ProcessInfo.processInfo.environment["LVD_PROFILE"].map { !$0.isEmpty && $0 != "0" } ?? false

    public struct Entry: Sendable {
        public var op: String
        public var shape: [Int]
        public var seconds: Double
        public var calls: Int
    }

    private struct Key: Hashable { var op: String; var shape: [Int] }
    private static let table = Mutex([Key: Entry]())

    /// When the last op on this thread finished.
    private static let last = ThreadLocal<Double>()

    private static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// Starts the clock on this thread (the next op is charged from here).
    public static func mark() {
        guard enabled else { return }
        last.value = now()
    }

    /// Inside a backward rule (`rule`): the ops the rule runs are not charged one by one.
    private static let inRule = ThreadLocal<Bool>()

    /// A backward rule, with the gradient accumulation after it, charged as a whole to its
    /// forward op and output shape. Charging the ops it runs instead would put the time of its
    /// own kernels (attention's or a convolution's backward, which record nothing) on whatever op
    /// it records next — a permute or a reshape of the result. A rule inside a rule (a
    /// checkpoint's rule runs a backward pass of its own) is part of the outer one.
    static func rule<T>(_ op: @autoclosure () -> String, _ shape: [Int], _ body: () throws(TensorError) -> T) throws(TensorError) -> T {
        guard enabled, inRule.value != true else { return try body() }
        inRule.value = true
        defer {
            inRule.value = false
            charge(op(), shape)
        }
        return try body()
    }

    static func charge(_ op: String, _ shape: [Int]) {
        if inRule.value == true { return }
        let t = now()
        guard let previous = last.value else { last.value = t; return }
        let elapsed = t - previous
        last.value = t
        table.withLock { table in
            table[Key(op: op, shape: shape), default: Entry(op: op, shape: shape, seconds: 0, calls: 0)].seconds += elapsed
            table[Key(op: op, shape: shape)]!.calls += 1
        }
    }

    /// Everything charged so far, most expensive first; `reset` clears it.
    public static func entries() -> [Entry] {
        table.withLock { Array($0.values) }.sorted { $0.seconds > $1.seconds }
    }

    public static func reset() {
        table.withLock { $0.removeAll() }
        mark()
    }

    /// A text table: the top `limit` (op, shape) rows, then totals per op.
    public static func report(limit: Int = 30) -> String {
        let all = entries()
        let total = all.reduce(0) { $0 + $1.seconds }
        guard total > 0 else { return "profile: nothing recorded\n" }
        var lines = ["profile: \(String(format: "%.2f", total)) s in \(all.reduce(0) { $0 + $1.calls }) ops",
                     "  seconds      %   calls  op, output shape"]
        for entry in all.prefix(limit) {
            lines.append(String(format: "  %7.2f  %5.1f  %6d  ", entry.seconds, 100 * entry.seconds / total, entry.calls) + "\(entry.op) \(entry.shape)")
        }
        var byOp: [String: (Double, Int)] = [:]
        for entry in all { byOp[entry.op, default: (0, 0)].0 += entry.seconds; byOp[entry.op, default: (0, 0)].1 += entry.calls }
        lines.append("  by op:")
        for (op, (seconds, calls)) in byOp.sorted(by: { $0.value.0 > $1.value.0 }) {
            lines.append(String(format: "  %7.2f  %5.1f  %6d  ", seconds, 100 * seconds / total, calls) + op)
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
