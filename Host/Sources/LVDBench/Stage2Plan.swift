import Foundation
import LVDStage1

/// Which benchmark rows a stage-2 run takes, and their seeds.
public enum Stage2Plan {
    /// The rows of `tasks` (all when nil), in benchmark order. With `perTask` K, each task's rows
    /// r₀ … rₙ₋₁ give K of them, rᵢ with i = ⌊j·n/K⌋ for j = 0 … K−1: every n/K-th row, so the
    /// subset is fixed and spreads over the task's variants (K = 20 of 100 numeracy rows takes one
    /// of each count × class; of the dynamics rows, 10 one-object and 10 two-object ones).
    public static func rows(tasks: [Benchmark.Task]? = nil, perTask: Int? = nil) -> [Benchmark.Row] {
        var chosen: [Benchmark.Row] = []
        for task in Benchmark.Task.allCases where tasks?.contains(task) ?? true {
            let taskRows = Benchmark.rows.filter { $0.task == task }
            guard let k = perTask, k < taskRows.count else { chosen += taskRows; continue }
            chosen += (0..<k).map { taskRows[$0 * taskRows.count / k] }
        }
        return chosen
    }

    /// Shard `k` of `n` (0-based, as Slurm's array task ids): every n-th of `rows` from the k-th.
    public static func shard<T>(_ rows: [T], _ k: Int, of n: Int) -> [T] {
        rows.enumerated().filter { $0.offset % n == k }.map(\.element)
    }

    /// "k/n" → (k, n) with 0 ≤ k < n.
    public static func parseShard(_ text: String) -> (k: Int, n: Int)? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 2, let k = parts[0], let n = parts[1], n >= 1, k >= 0, k < n else { return nil }
        return (k, n)
    }

    /// The reference's seed: row index + repeat · 6789 + seed offset.
    public static func seed(row: Int, repeatIndex: Int, offset: Int) -> Int { row + repeatIndex * 6789 + offset }

    /// A comma-separated task list ("numeracy,dynamics"), or the message naming the unknown one.
    public static func tasks(_ list: String) -> Result<[Benchmark.Task], PlanError> {
        var chosen: [Benchmark.Task] = []
        for name in list.split(separator: ",") {
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            guard let task = task(named: trimmed) else {
                return .failure(PlanError("--tasks: unknown task '\(trimmed)' (numeracy, attribution, visibility, dynamics, sequential)"))
            }
            chosen.append(task)
        }
        return .success(chosen)
    }

    public struct PlanError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// A task by its table name ("dynamics") or its reference type ("dynamic_spatial").
    public static func task(named name: String) -> Benchmark.Task? {
        Benchmark.Task.allCases.first { $0.label == name || $0.rawValue == name }
    }
}
