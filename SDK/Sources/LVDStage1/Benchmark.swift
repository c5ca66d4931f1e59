import LVDFormats

/// The LVD benchmark: 500 captions in five tasks, each with the predicate its layout (stage 1)
/// or its video's detections (stage 2) must satisfy (STAGE1.md §7).
public enum Benchmark {
    public enum Task: String, CaseIterable, Sendable {
        case numeracy, attribution, visibility, dynamics = "dynamic_spatial", sequential

        /// The name in tables and JSON.
        public var label: String { self == .dynamics ? "dynamics" : rawValue }
    }

    public enum Quadrant: String, CaseIterable, Sendable {
        case lowerLeft = "lower left", lowerRight = "lower right", upperLeft = "upper left", upperRight = "upper right"

        /// Strict tests on the box centre (a centre exactly at 0.5 is on neither side).
        func contains(_ box: [Double]) -> Bool {
            let (x, y) = (Predicate.cx(box), Predicate.cy(box))
            switch self {
            case .lowerLeft: return y > 0.5 && x < 0.5
            case .lowerRight: return y > 0.5 && x > 0.5
            case .upperLeft: return y < 0.5 && x < 0.5
            case .upperRight: return y < 0.5 && x > 0.5
            }
        }
    }

    public enum Predicate: Equatable, Sendable {
        case numeracy(names: [String], count: Int)
        case attribution(names1: [String], names2: [String], modifier1: String, modifier2: String)
        case visibility(names: [String], appears: Bool)
        case dynamic1(names: [String], leftToRight: Bool)
        case dynamic2(names1: [String], names2: [String], leftToRight: Bool)
        case sequential(names: [String], first: Quadrant, middle: Quadrant, last: Quadrant)

        static func valid(_ box: [Double]) -> Bool { box[2] != 0 && box[3] != 0 }
        static func cx(_ box: [Double]) -> Double { (box[0] + box[2]) / 2 }
        static func cy(_ box: [Double]) -> Double { (box[1] + box[3]) / 2 }

        /// The boxes of the first object whose name contains `n + " "` or ends with `n`, for some
        /// `n` of `names` (so "scar" matches "car", an accepted quirk).
        static func boxes(_ condition: Condition, _ names: [String]) -> [[Double]]? {
            for (index, phrase) in condition.names.enumerated() {
                let p = Array(phrase.unicodeScalars)
                for name in names {
                    let n = Array(name.unicodeScalars)
                    if p.find(n + [" "]) != nil || (p.count >= n.count && p.suffix(n.count).elementsEqual(n)) {
                        return condition.boxes[index]
                    }
                }
            }
            return nil
        }

        /// Whether `condition` (digit-stripped names) satisfies the predicate (§7.6).
        public func evaluate(_ condition: Condition) -> Bool {
            let frames = condition.frameCount, half = frames / 2
            switch self {
            case .numeracy(_, let expected):
                guard !condition.boxes.isEmpty else { return expected == 0 }
                let counts = (0..<frames).map { f in condition.boxes.filter { Self.valid($0[f]) }.count }
                var tally: [Int: Int] = [:]
                for count in counts { tally[count, default: 0] += 1 }
                let mode = tally.max { a, b in a.value != b.value ? a.value < b.value : a.key > b.key }?.key ?? 0
                return mode == expected
            case .attribution(let names1, let names2, let modifier1, let modifier2):
                func present(_ names: [String], _ modifier: String) -> Bool {
                    guard let boxes = Self.boxes(condition, names.map { "\(modifier) \($0)" }) else { return false }
                    return Double(boxes.filter(Self.valid).count) / Double(boxes.count) >= 0.5
                }
                return present(names1, modifier1) && present(names2, modifier2)
            case .visibility(let names, let appears):
                guard let boxes = Self.boxes(condition, names) else { return false }
                let first = (0..<Swift.max(half - 1, 0)).contains { Self.valid(boxes[$0]) }
                let second = ((half + 1)..<frames).contains { Self.valid(boxes[$0]) }
                return appears ? !first && second : first && !second
            case .dynamic1(let names, let leftToRight):
                guard let boxes = Self.boxes(condition, names), Self.valid(boxes[0]), Self.valid(boxes[frames - 1]) else { return false }
                let (start, end) = (Self.cx(boxes[0]), Self.cx(boxes[frames - 1]))
                return leftToRight ? start < end : start > end
            case .dynamic2(let names1, let names2, let leftToRight):
                guard let a = Self.boxes(condition, names1), let b = Self.boxes(condition, names2),
                      [a[0], a[frames - 1], b[0], b[frames - 1]].allSatisfy(Self.valid) else { return false }
                func before(_ p: [Double], _ q: [Double]) -> Bool { leftToRight ? Self.cx(p) < Self.cx(q) : Self.cx(p) > Self.cx(q) }
                return before(a[0], b[0]) && before(b[frames - 1], a[frames - 1])
            case .sequential(let names, let first, let middle, let last):
                guard let boxes = Self.boxes(condition, names), [0, half, frames - 1].allSatisfy({ Self.valid(boxes[$0]) }) else { return false }
                return first.contains(boxes[0]) && middle.contains(boxes[half]) && last.contains(boxes[frames - 1])
            }
        }
    }

    public struct Row: Equatable, Sendable {
        public var index: Int
        public var task: Task
        public var predicate: Predicate
        /// The caption, already normalised by `Stage1.key` (the cache key).
        public var prompt: String
        /// Detector query texts for stage 2 ("a photo of a blue cat").
        public var detectorTexts: [String]
        public var oneBoxPerClass: Bool
    }

    // MARK: The prompt list

    static let prefix = "A realistic lively video of a scene"
    static let topDownPrefix = "A realistic lively video of a top-down viewed scene"
    static let classes = [("moving car", "car"), ("lively cat", "cat"), ("flying bird", "bird"), ("moving ball", "ball"), ("walking dog", "dog")]
    public static let colors = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray"]
    static let quadrantPaths: [(Quadrant, Quadrant, Quadrant)] = [
        (.lowerLeft, .lowerRight, .upperRight), (.lowerLeft, .upperLeft, .upperRight),
        (.lowerRight, .lowerLeft, .upperLeft), (.lowerRight, .upperRight, .upperLeft),
    ]

    /// "a car", "an orange cat".
    static func article(_ phrase: String) -> String {
        ("aeiou".contains(phrase.first ?? "x") ? "an " : "a ") + phrase
    }

    static func detectorText(_ phrase: String) -> String { "a photo of " + article(phrase) }

    /// The 500 rows, built as the reference builds them (§7.3), with NumPy's legacy generator
    /// for the random colour and class pairs.
    public static let rows: [Row] = {
        var rows: [Row] = []
        func add(_ task: Task, _ predicate: Predicate, _ caption: String, _ texts: [String], _ oneBox: Bool, times: Int = 1) {
            for _ in 0..<times {
                rows.append(Row(index: rows.count, task: task, predicate: predicate, prompt: Stage1.key(caption),
                                detectorTexts: texts, oneBoxPerClass: oneBox))
            }
        }
        let numbers = ["one", "two", "three", "four"]
        for n in 1...4 {
            for (attributed, name) in classes {
                let words = n == 1 ? attributed : attributed + "s"
                add(.numeracy, .numeracy(names: [name], count: n), "\(prefix) with \(numbers[n - 1]) \(words)",
                    [detectorText(name)], false, times: 5)
            }
        }
        let names = classes.map(\.1)
        for seed in 0..<100 {
            var generator = LegacyNumPyRandom(seed: UInt32(seed))
            let colourOrder = generator.permutation(colors.count), classOrder = generator.permutation(names.count)
            let (m1, m2) = (colors[colourOrder[0]], colors[colourOrder[1]])
            let (o1, o2) = (names[classOrder[0]], names[classOrder[1]])
            add(.attribution, .attribution(names1: [o1], names2: [o2], modifier1: m1, modifier2: m2),
                "\(prefix) with \(article(m1)) \(o1) and \(article(m2)) \(o2)", [detectorText("\(m1) \(o1)"), detectorText("\(m2) \(o2)")], true)
        }
        for (attributed, name) in classes {
            for (appears, half) in [(true, "second"), (false, "first")] {
                add(.visibility, .visibility(names: [name], appears: appears),
                    "\(prefix) in which \(article(attributed)) appears only in the \(half) half of the video", [detectorText(name)], true, times: 10)
            }
        }
        for name in names {
            for (from, to) in [("left", "right"), ("right", "left")] {
                add(.dynamics, .dynamic1(names: [name], leftToRight: from == "left"),
                    "\(prefix) with \(article(name)) moving from the \(from) to the \(to)", [detectorText(name)], true, times: 5)
            }
        }
        for seed in 0..<25 {
            var generator = LegacyNumPyRandom(seed: UInt32(seed))
            for (from, to) in [("left", "right"), ("right", "left")] {
                let order = generator.permutation(names.count)
                let (o1, o2) = (names[order[0]], names[order[1]])
                add(.dynamics, .dynamic2(names1: [o1], names2: [o2], leftToRight: from == "left"),
                    "\(prefix) with \(article(o1)) moving from the \(from) of \(article(o2)) to its \(to)", [detectorText(o1), detectorText(o2)], true)
            }
        }
        for name in names {
            for (q1, q2, q3) in quadrantPaths {
                add(.sequential, .sequential(names: [name], first: q1, middle: q2, last: q3),
                    "\(topDownPrefix) in which \(article(name)) initially on the \(q1.rawValue) of the scene. It first moves to the \(q2.rawValue) of the scene and then moves to the \(q3.rawValue) of the scene.",
                    [detectorText(name)], true, times: 5)
            }
        }
        return rows
    }()

    /// For each row, how many earlier rows have the same caption: the index of its answer in a
    /// cache (§6.1), the same whatever subset of rows a run processes.
    public static func occurrences(_ rows: [Row]) -> [Int] {
        var seen: [String: Int] = [:]
        return rows.map { row in
            defer { seen[row.prompt, default: 0] += 1 }
            return seen[row.prompt] ?? 0
        }
    }
}

/// NumPy's legacy global generator (`numpy.random.seed` + `choice(…, replace=False)`): MT19937
/// seeded by init_genrand, bounded integers by masked rejection, Fisher–Yates from the end.
struct LegacyNumPyRandom {
    private var generator: MT19937

    init(seed: UInt32) { generator = MT19937(seed: seed) }

    /// Uniform in 0…max.
    mutating func interval(_ max: UInt32) -> UInt32 {
        guard max > 0 else { return 0 }
        var mask = max
        for shift in [1, 2, 4, 8, 16] { mask |= mask >> UInt32(shift) }
        while true {
            let value = generator.next() & mask
            if value <= max { return value }
        }
    }

    mutating func permutation(_ n: Int) -> [Int] {
        var items = Array(0..<n)
        for k in stride(from: n - 1, through: 1, by: -1) { items.swapAt(k, Int(interval(UInt32(k)))) }
        return items
    }
}

extension Benchmark {
    /// Reads the reference prompt list (lvd_prompts.tsv: index, type, predicate, prompt, params,
    /// owl_texts, one_box_per_class), so the built list can be checked against it row for row.
    public static func readTSV(_ text: String, source: String) throws(BenchmarkError) -> [Row] {
        var rows: [Row] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        for (number, line) in lines.enumerated().dropFirst() {
            func fail(_ reason: String) -> BenchmarkError { BenchmarkError("\(source): line \(number + 1): \(reason)") }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 7, let index = Int(fields[0]) else { throw fail("expected 7 tab-separated fields starting with the row index") }
            guard let task = Task(rawValue: fields[1]) else { throw fail("unknown type '\(fields[1])'") }
            var params: [String: String] = [:]
            for pair in fields[4].split(separator: ";") {
                guard let equals = pair.firstIndex(of: "=") else { throw fail("param '\(pair)' has no '='") }
                params[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
            func names(_ key: String) throws(BenchmarkError) -> [String] {
                guard let text = params[key], let list = try? PythonLiteral.evaluate(text).sequence else { throw fail("param \(key) must be a list of names") }
                return list.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
            }
            func value(_ key: String) throws(BenchmarkError) -> String {
                guard let text = params[key] else { throw fail("param \(key) is missing") }
                return text
            }
            func quadrant(_ key: String) throws(BenchmarkError) -> Quadrant {
                guard let q = Quadrant(rawValue: try value(key)) else { throw fail("param \(key): unknown quadrant") }
                return q
            }
            let predicate: Predicate
            switch fields[2] {
            case "predicate_numeracy":
                guard let count = Int(try value("count")) else { throw fail("count must be an integer") }
                predicate = .numeracy(names: try names("names"), count: count)
            case "predicate_attribution":
                predicate = .attribution(names1: try names("names1"), names2: try names("names2"), modifier1: try value("mod1"), modifier2: try value("mod2"))
            case "predicate_visibility":
                predicate = .visibility(names: try names("names"), appears: try value("test_appearance") == "True")
            case "predicate_1obj_dynamic_spatial":
                predicate = .dynamic1(names: try names("names"), leftToRight: try value("verify(first,last)").contains("<"))
            case "predicate_2obj_dynamic_spatial":
                predicate = .dynamic2(names1: try names("names1"), names2: try names("names2"), leftToRight: try value("verify").contains("<"))
            case "predicate_sequentialv2":
                predicate = .sequential(names: try names("names"), first: try quadrant("first"), middle: try quadrant("middle"), last: try quadrant("last"))
            default:
                throw fail("unknown predicate '\(fields[2])'")
            }
            let texts = fields[5].split(separator: " || ", omittingEmptySubsequences: false).map(String.init)
            rows.append(Row(index: index, task: task, predicate: predicate, prompt: fields[3], detectorTexts: texts,
                            oneBoxPerClass: fields[6] == "True"))
        }
        return rows
    }

    /// Whether `layout` satisfies `row`'s predicate, evaluated as stage 1 does: 6 → 6 frames
    /// with the 1e-5 shift, names digit-stripped (§7.7).
    public static func success(_ row: Row, layout: Layout) -> Bool {
        row.predicate.evaluate(Condition(layout, frames: 6, width: Double(layout.canvasWidth), height: Double(layout.canvasHeight), stripDigits: true))
    }
}

public struct BenchmarkError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Successes per task and overall, with the per-row outcomes, printable as a table, Markdown or JSON.
public struct Scoreboard: Sendable {
    public struct Outcome: Sendable {
        public var row: Benchmark.Row
        public var success: Bool
        /// Why the row failed before its predicate could run (no layout, a parse error).
        public var failure: String?

        public init(row: Benchmark.Row, success: Bool, failure: String? = nil) {
            self.row = row
            self.success = success
            self.failure = failure
        }
    }

    public var outcomes: [Outcome] = []

    public init(outcomes: [Outcome] = []) { self.outcomes = outcomes }

    public func count(_ task: Benchmark.Task?) -> (successes: Int, total: Int) {
        let rows = outcomes.filter { task == nil || $0.row.task == task }
        return (rows.filter(\.success).count, rows.count)
    }

    public static func percent(_ part: Int, _ whole: Int) -> Double { whole == 0 ? 0 : 100 * Double(part) / Double(whole) }

    /// Tasks with rows, in the benchmark's order.
    var tasks: [Benchmark.Task] { Benchmark.Task.allCases.filter { count($0).total > 0 } }

    public var failures: Int { outcomes.filter { $0.failure != nil }.count }

    public var text: String {
        var lines = [tasks.map { $0.label.padding(12) }.joined() + "overall"]
        lines.append(tasks.map { task in let (s, t) = count(task); return "\(s)/\(t)".padding(12) }.joined()
                     + { let (s, t) = count(nil); return "\(s)/\(t) = \(format(Self.percent(s, t)))%" }())
        return lines.joined(separator: "\n")
    }

    public var markdown: String {
        let header = "| " + tasks.map { $0.label.capitalizedFirst }.joined(separator: " | ") + " | Overall |"
        let rule = "|" + String(repeating: "---|", count: tasks.count + 1)
        let cells = tasks.map { task in let (s, t) = count(task); return "\(s)/\(t) (\(format(Self.percent(s, t)))%)" }
        let (s, t) = count(nil)
        return [header, rule, "| " + (cells + ["\(s)/\(t) (\(format(Self.percent(s, t)))%)"]).joined(separator: " | ") + " |"].joined(separator: "\n")
    }

    public var json: JSONValue {
        var taskObject = JSONObject()
        for task in tasks { let (s, t) = count(task); taskObject[task.label] = .number(Self.percent(s, t)) }
        let (s, t) = count(nil)
        let rows: [JSONValue] = outcomes.map { outcome in
            var row = JSONObject(["index": .number(Double(outcome.row.index)), "task": .string(outcome.row.task.label),
                                  "prompt": .string(outcome.row.prompt), "success": .bool(outcome.success)])
            if let failure = outcome.failure { row["failure"] = .string(failure) }
            return .object(row)
        }
        return .object(JSONObject(["tasks": .object(taskObject), "overall": .number(Self.percent(s, t)),
                                   "successes": .number(Double(s)), "rows_total": .number(Double(t)),
                                   "failures": .number(Double(failures)), "rows": .array(rows)]))
    }

    private func format(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

extension String {
    /// The string and spaces up to `width` characters (one space when it is as long or longer): table cells.
    public func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
    /// "numeracy" → "Numeracy": table headers.
    public var capitalizedFirst: String { prefix(1).uppercased() + dropFirst() }
}
