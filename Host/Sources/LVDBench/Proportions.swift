import Foundation
import LVDFormats

/// How far a success rate measured on a few hundred videos can be trusted, and whether one
/// method beats another on the same rows: the figures that go beside the benchmarks' counts.
public enum Proportions {
    /// The 95 % Wilson score interval of `successes` out of `total` (as fractions; (0, 1) when
    /// total is 0). Unlike the normal approximation it stays inside [0, 1] and is sound at 0 or
    /// all successes, which small benchmark tasks often give.
    public static func wilson95(_ successes: Int, of total: Int) -> (low: Double, high: Double) {
        guard total > 0 else { return (0, 1) }
        let z = 1.959963984540054, n = Double(total), p = Double(successes) / n
        let denominator = 1 + z * z / n
        let centre = (p + z * z / (2 * n)) / denominator
        let half = z * (p * (1 - p) / n + z * z / (4 * n * n)).squareRoot() / denominator
        // At 0 or all successes the bound is 0 or 1 exactly (not a rounding error away from it).
        return (successes == 0 ? 0 : Swift.max(0, centre - half), successes == total ? 1 : Swift.min(1, centre + half))
    }

    /// The exact two-sided sign test (McNemar's exact test) on paired outcomes: `wins` pairs
    /// where only the first method succeeds, `losses` where only the second does (pairs where
    /// both or neither succeed say nothing about which is better). The probability, were the two
    /// equally good, of a split at least this uneven; 1 when there are no such pairs.
    public static func signTestP(wins: Int, losses: Int) -> Double {
        let n = wins + losses, k = Swift.min(wins, losses)
        guard n > 0 else { return 1 }
        // Σ_{i ≤ k} C(n, i) / 2^n, term by term in logarithms (n runs to the thousands).
        let logHalfN = Double(n) * log(0.5)
        var tail = 0.0
        for i in 0...k {
            tail += exp(lgamma(Double(n + 1)) - lgamma(Double(i + 1)) - lgamma(Double(n - i + 1)) + logHalfN)
        }
        return Swift.min(1, 2 * tail)
    }

    /// successes / total as a fraction; 0 when there is nothing to count.
    public static func share(_ successes: Int, of total: Int) -> Double { total == 0 ? 0 : Double(successes) / Double(total) }

    /// successes / total in percent; 0 when there is nothing to count.
    public static func percent(_ successes: Int, of total: Int) -> Double { total == 0 ? 0 : 100 * Double(successes) / Double(total) }

    /// The 95 % Wilson interval as a JSON [low, high], in fractions times `scale` (100: percent).
    public static func wilson95JSON(_ successes: Int, of total: Int, scale: Double = 1) -> JSONValue {
        let (low, high) = wilson95(successes, of: total)
        return .array([.number(scale * low), .number(scale * high)])
    }

    /// "12.5 % (7.1–21.0)": a rate in percent with its 95 % interval.
    public static func percentWithInterval(_ successes: Int, of total: Int) -> String {
        let (low, high) = wilson95(successes, of: total)
        return String(format: "%.1f %% (%.1f–%.1f)", percent(successes, of: total), 100 * low, 100 * high)
    }
}
