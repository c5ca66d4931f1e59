import Foundation
import LVDFormats
import LVDHost
import LVDStage1

/// Where the benchmarks take each row's layout from: `cache:FILE` (a reference JSON cache; the
/// n-th answer of a caption for its n-th row, later passes after the earlier passes' answers) or
/// `planner:ID` (a planner plugin, a fresh instance per pass, so a cache-backed planner's
/// counters start afresh, STAGE1.md §6.1).
final class LayoutSource {
    let spec: String
    private let next: (_ pass: Int, _ row: Benchmark.Row, _ occurrence: Int) throws -> Layout

    static func validate(_ spec: String) -> String? {
        if spec.hasPrefix("cache:"), spec.count > 6 { return nil }
        if spec.hasPrefix("planner:"), spec.count > 8 { return nil }
        return "--layouts must be planner:ID or cache:FILE, got '\(spec)'"
    }

    init(_ spec: String, plannerParams: [String], host: HostOptions, loader: PluginLoader) throws {
        self.spec = spec
        if spec.hasPrefix("cache:") {
            let cache = try ReferenceCache(path: String(spec.dropFirst("cache:".count)))
            var perPass: [String: Int] = [:]
            for row in Benchmark.rows { perPass[row.prompt, default: 0] += 1 }
            next = { pass, row, occurrence in try cache.layout(for: row.prompt, answer: pass * perPass[row.prompt]! + occurrence) }
        } else {
            let plugin = try loader.load(host.catalog().require(id: String(spec.dropFirst("planner:".count)), kind: .planner))
            let resolved = try plugin.resolveParams(plannerParams)
            var instance: PlannerInstance?
            var currentPass = -1
            next = { pass, row, _ in
                if pass != currentPass { instance = try PlannerInstance(plugin: plugin, params: resolved); currentPass = pass }
                return try instance!.planLayout(prompt: row.prompt)
            }
        }
    }

    /// The layout of `row` in pass `pass`; `occurrence`: how many earlier benchmark rows have its caption.
    func layout(pass: Int, row: Benchmark.Row, occurrence: Int) throws -> Layout { try next(pass, row, occurrence) }
}
