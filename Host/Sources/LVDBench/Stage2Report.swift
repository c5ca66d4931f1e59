import Foundation
import LVDFormats
import LVDHost
import LVDStage1

/// The stage-2 table (methods × tasks, with counts) from stored results, as text, Markdown,
/// JSON or a grouped bar chart (SVG), and a contact sheet of videos with their detections.
public struct Stage2Report {
    /// The results of one method under one configuration.
    public struct Group {
        public var label: String
        public var method: String
        public var config: String
        public var results: [ResultStore.Result]
    }

    public let groups: [Group]

    /// Tasks with results, in the benchmark's order.
    public var tasks: [String] {
        Benchmark.Task.allCases.map(\.label).filter { task in groups.contains { $0.results.contains { $0.task == task } } }
    }

    /// Groups by (method, configuration): baseline first, then methods by name. A method run
    /// under several configurations is labelled with a short index ("lvd #2"); `legend` says which.
    public init(_ results: [ResultStore.Result]) {
        var order: [String: (String, String)] = [:]
        var byKey: [String: [ResultStore.Result]] = [:]
        for result in results {
            let key = result.method + "\u{1}" + result.config
            if byKey[key] == nil { order[key] = (result.method, result.config) }
            byKey[key, default: []].append(result)
        }
        let keys = byKey.keys.sorted { a, b in
            let (ma, ca) = order[a]!, (mb, cb) = order[b]!
            if ma != mb { return ma == "baseline" ? true : mb == "baseline" ? false : ma < mb }
            return ca < cb
        }
        var perMethod: [String: Int] = [:]
        for key in keys { perMethod[order[key]!.0, default: 0] += 1 }
        var seen: [String: Int] = [:]
        groups = keys.map { key in
            let (method, config) = order[key]!
            seen[method, default: 0] += 1
            let label = perMethod[method]! > 1 ? "\(method) #\(seen[method]!)" : method
            return Group(label: label, method: method, config: config, results: byKey[key]!)
        }
    }

    public func count(_ group: Group, _ task: String?) -> (successes: Int, total: Int) {
        let rows = group.results.filter { task == nil || $0.task == task }
        return (rows.filter(\.success).count, rows.count)
    }

    static func percent(_ s: Int, _ t: Int) -> Double { Proportions.percent(s, of: t) }
    static func format(_ value: Double) -> String { String(format: "%.1f", value) }

    /// Each group's label and configuration.
    public var legend: [String] { groups.map { "\($0.label): \($0.config)" } }

    /// One group against the first (the baseline when there is one) on the rows both ran with
    /// the same seed: how many succeed with only one of the two, and the exact sign test's p.
    public struct Pairing: Equatable {
        public var label: String, reference: String
        public var rows: Int, wins: Int, losses: Int, p: Double
    }

    public var pairings: [Pairing] {
        guard let reference = groups.first else { return [] }
        struct Pair: Hashable { var row: Int, repeatIndex: Int, seed: UInt64 }
        var referenceSuccess: [Pair: Bool] = [:]
        for r in reference.results { referenceSuccess[Pair(row: r.row, repeatIndex: r.repeatIndex, seed: r.seed)] = r.success }
        return groups.dropFirst().map { group in
            var rows = 0, wins = 0, losses = 0
            for r in group.results {
                guard let other = referenceSuccess[Pair(row: r.row, repeatIndex: r.repeatIndex, seed: r.seed)] else { continue }
                rows += 1
                if r.success && !other { wins += 1 }
                if other && !r.success { losses += 1 }
            }
            return Pairing(label: group.label, reference: reference.label, rows: rows, wins: wins, losses: losses,
                           p: Proportions.signTestP(wins: wins, losses: losses))
        }
    }

    /// Below the table: each group's overall rate with its 95 % interval, and each group against
    /// the first on the same rows — what a difference between two rates is worth.
    public var significance: [String] {
        var lines = ["overall with 95 % Wilson intervals: " + groups.map { group in
            let (s, t) = count(group, nil)
            return "\(group.label) " + Proportions.percentWithInterval(s, of: t)
        }.joined(separator: ", ")]
        for pairing in pairings where pairing.rows > 0 {
            lines.append("\(pairing.label) vs \(pairing.reference) on the same \(pairing.rows) rows: \(pairing.label) alone succeeds on \(pairing.wins), "
                         + "\(pairing.reference) alone on \(pairing.losses) (exact sign test p = \(String(format: "%.3g", pairing.p)))")
        }
        return lines
    }

    /// What the commands print: JSON, or the table (Markdown or text), the legend and the intervals.
    public func rendered(json: Bool, markdown: Bool) -> String {
        if json { return self.json.serialized(pretty: true) }
        return ([markdown ? self.markdown : text] + legend.map { "  " + $0 } + significance).joined(separator: "\n")
    }

    public var markdown: String {
        var lines = ["| Method | " + tasks.map(\.capitalizedFirst).joined(separator: " | ") + " | Overall |",
                     "|---|" + String(repeating: "---|", count: tasks.count + 1)]
        for group in groups {
            let cells = (tasks.map(Optional.some) + [nil]).map { task -> String in
                let (s, t) = count(group, task)
                return "\(s)/\(t) (\(Self.format(Self.percent(s, t)))%)"
            }
            lines.append("| \(group.label) | " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }

    public var text: String {
        let width = max(12, (groups.map(\.label.count).max() ?? 0) + 2)
        var lines = ["method".padding(width) + tasks.map { $0.padding(14) }.joined() + "overall"]
        for group in groups {
            let cells = tasks.map { task -> String in let (s, t) = count(group, task); return "\(s)/\(t)".padding(14) }
            let (s, t) = count(group, nil)
            lines.append(group.label.padding(width) + cells.joined() + "\(s)/\(t) = \(Self.format(Self.percent(s, t)))%")
        }
        return lines.joined(separator: "\n")
    }

    public var json: JSONValue {
        let pairings = self.pairings
        return .object(JSONObject(["methods": .array(groups.map { group in
            var tasksObject = JSONObject()
            for task in tasks {
                let (s, t) = count(group, task)
                tasksObject[task] = .object(JSONObject(["successes": .number(Double(s)), "rows": .number(Double(t)), "percent": .number(Self.percent(s, t)),
                                                        "ci95": Proportions.wilson95JSON(s, of: t, scale: 100)]))
            }
            let (s, t) = count(group, nil)
            let failures = group.results.filter { $0.failure != nil }.count
            let seconds = group.results.map(\.generateSeconds)
            var object = JSONObject([
                "label": .string(group.label), "method": .string(group.method), "config": .string(group.config),
                "tasks": .object(tasksObject), "successes": .number(Double(s)), "rows": .number(Double(t)),
                "overall": .number(Self.percent(s, t)), "overall_ci95": Proportions.wilson95JSON(s, of: t, scale: 100), "failures": .number(Double(failures)),
                "generate_seconds_mean": .number(seconds.isEmpty ? 0 : seconds.reduce(0, +) / Double(seconds.count)),
            ])
            if let pairing = pairings.first(where: { $0.label == group.label }) {
                object["versus"] = .object(JSONObject([
                    "label": .string(pairing.reference), "rows": .number(Double(pairing.rows)), "wins": .number(Double(pairing.wins)),
                    "losses": .number(Double(pairing.losses)), "p": .number(pairing.p)]))
            }
            return .object(object)
        })]))
    }

    // MARK: SVG

    static let colours = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]

    /// A grouped bar chart: one group per task and overall, one bar per method, success rate in %.
    public var svg: String {
        let categories = tasks + ["overall"]
        let barWidth = 14.0, gap = 24.0, left = 50.0, top = 40.0, plotHeight = 240.0
        let groupWidth = Double(max(groups.count, 1)) * barWidth + gap
        let legends = groups.map { group -> String in
            let (s, t) = count(group, nil)
            return "\(group.label) — \(s)/\(t) videos — \(group.config)"
        }
        // Wide enough for the longest legend line too (about 6.2 px a character at 11 px sans-serif).
        let legendWidth = left + 16 + 6.2 * Double(legends.map(\.count).max() ?? 0) + 10
        let plotWidth = left + Double(categories.count) * groupWidth + 20
        let width = max(plotWidth, legendWidth)
        let legendTop = top + plotHeight + 40
        let height = legendTop + Double(groups.count) * 16 + 10
        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
                .replacingOccurrences(of: "\"", with: "&quot;")
        }
        func n(_ v: Double) -> String { String(format: "%.1f", v) }
        var out = [
            #"<svg xmlns="http://www.w3.org/2000/svg" width="\#(n(width))" height="\#(n(height))" viewBox="0 0 \#(n(width)) \#(n(height))" font-family="sans-serif" font-size="11">"#,
            #"<rect width="100%" height="100%" fill="white"/>"#,
            #"<text x="\#(n(left))" y="20" font-size="14">LVD benchmark, stage 2: success rate per task (%)</text>"#,
        ]
        for tick in stride(from: 0, through: 100, by: 25) {
            let y = top + plotHeight * (1 - Double(tick) / 100)
            out.append(#"<line x1="\#(n(left))" y1="\#(n(y))" x2="\#(n(plotWidth - 20))" y2="\#(n(y))" stroke="lightgray"/>"#)
            out.append(#"<text x="\#(n(left - 6))" y="\#(n(y + 4))" text-anchor="end">\#(tick)</text>"#)
        }
        for (c, category) in categories.enumerated() {
            let x0 = left + Double(c) * groupWidth + gap / 2
            for (g, group) in groups.enumerated() {
                let (s, t) = count(group, category == "overall" ? nil : category)
                let value = Self.percent(s, t)
                let h = plotHeight * value / 100
                let x = x0 + Double(g) * barWidth
                out.append(#"<rect class="bar" x="\#(n(x))" y="\#(n(top + plotHeight - h))" width="\#(n(barWidth - 2))" height="\#(n(h))" fill="\#(Self.colours[g % Self.colours.count])"><title>\#(escape(group.label)), \#(category): \#(s)/\#(t)</title></rect>"#)
                out.append(#"<text x="\#(n(x + barWidth / 2 - 1))" y="\#(n(top + plotHeight - h - 3))" text-anchor="middle" font-size="8">\#(Int(value.rounded()))</text>"#)
            }
            out.append(#"<text x="\#(n(x0 + Double(groups.count) * barWidth / 2))" y="\#(n(top + plotHeight + 16))" text-anchor="middle">\#(escape(category))</text>"#)
        }
        out.append(#"<line x1="\#(n(left))" y1="\#(n(top + plotHeight))" x2="\#(n(plotWidth - 20))" y2="\#(n(top + plotHeight))" stroke="black"/>"#)
        for (g, legend) in legends.enumerated() {
            let y = legendTop + Double(g) * 16
            out.append(#"<rect x="\#(n(left))" y="\#(n(y - 9))" width="10" height="10" fill="\#(Self.colours[g % Self.colours.count])"/>"#)
            out.append(#"<text x="\#(n(left + 16))" y="\#(n(y))">\#(escape(legend))</text>"#)
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}
