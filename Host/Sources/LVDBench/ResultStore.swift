import Foundation
import LVDFormats
import LVDSQLite

/// Stage-2 benchmark results in SQLite (WAL): one row per (method, configuration, benchmark
/// row, repeat, seed), written in its own transaction the moment its video is scored, so a run
/// killed at any point keeps every finished result and the same command resumes after them.
public final class ResultStore: @unchecked Sendable {
    /// What the file holds; a file of another benchmark version is refused, never mixed in. The
    /// version changes with whatever changes a verdict: the protocol, the predicates, the detector
    /// (2: the detector lets two colours claim a blurred pixel between their shades).
    public static let benchmarkID = "lvd-stage2/2"

    public let path: String
    let database: SQLiteDatabase

    public struct Result: Equatable, Sendable {
        public var method: String
        /// The run's settings apart from the seed: layouts, model, steps, frames, params.
        public var config: String
        public var row: Int
        public var repeatIndex: Int
        public var seed: UInt64
        public var task: String
        public var prompt: String
        public var success: Bool
        /// Why there is no verdict of the detector (no layout, generation failed); the row counts
        /// as failed.
        public var failure: String?
        public var video: String?
        /// The sampled frame indices and, per sampled frame, the surviving detections as JSON
        /// ([[{"label", "box", "score"}]]).
        public var frames: [Int]
        public var detections: String
        /// The layout the method was given (lvd layout JSON), if any.
        public var layout: String?
        public var generateSeconds: Double
        public var evaluateSeconds: Double

        public init(method: String, config: String, row: Int, repeatIndex: Int, seed: UInt64, task: String, prompt: String,
                    success: Bool, failure: String? = nil, video: String? = nil, frames: [Int] = [], detections: String = "[]",
                    layout: String? = nil, generateSeconds: Double = 0, evaluateSeconds: Double = 0) {
            self.method = method
            self.config = config
            self.row = row
            self.repeatIndex = repeatIndex
            self.seed = seed
            self.task = task
            self.prompt = prompt
            self.success = success
            self.failure = failure
            self.video = video
            self.frames = frames
            self.detections = detections
            self.layout = layout
            self.generateSeconds = generateSeconds
            self.evaluateSeconds = evaluateSeconds
        }

        public struct Key: Hashable, Sendable {
            public var method: String, config: String, row: Int, repeatIndex: Int, seed: UInt64

            public init(method: String, config: String, row: Int, repeatIndex: Int, seed: UInt64) {
                self.method = method
                self.config = config
                self.row = row
                self.repeatIndex = repeatIndex
                self.seed = seed
            }
        }

        public var key: Key { Key(method: method, config: config, row: row, repeatIndex: repeatIndex, seed: seed) }
    }

    /// The benchmark version the file holds (`benchmarkID` unless opened with `anyVersion`).
    public private(set) var version = ResultStore.benchmarkID

    /// Opens `path`; `create` makes a new file (a results run), otherwise it must exist (report,
    /// merge). A file of another benchmark version is refused unless `anyVersion` (to rescore it).
    public init(path: String, create: Bool, anyVersion: Bool = false) throws {
        self.path = path
        database = try SQLiteDatabase(path: path, role: "results", create: create)
        let tables = Set(try database.query("SELECT name FROM sqlite_master WHERE type = 'table'").map { $0[0] })
        if !tables.isEmpty && !tables.contains("results") || (tables.contains("results") && !tables.contains("meta")) {
            throw SQLiteDatabase.Failure(description: "\(path) is not an lvd stage-2 results database (tables: \(tables.sorted().joined(separator: ", ")))")
        }
        if tables.isEmpty {
            guard create else { throw SQLiteDatabase.Failure(description: "\(path) is not an lvd stage-2 results database (it is empty)") }
            try database.transaction {
                try database.execute("""
                    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE IF NOT EXISTS results (
                        method TEXT NOT NULL, config TEXT NOT NULL, row INTEGER NOT NULL, repeat INTEGER NOT NULL,
                        seed INTEGER NOT NULL, task TEXT NOT NULL, prompt TEXT NOT NULL, success INTEGER NOT NULL,
                        failure TEXT, video TEXT, frames TEXT NOT NULL, detections TEXT NOT NULL, layout TEXT,
                        generate_seconds REAL NOT NULL, evaluate_seconds REAL NOT NULL, created REAL NOT NULL,
                        PRIMARY KEY (method, config, row, repeat, seed));
                    INSERT OR IGNORE INTO meta (key, value) VALUES ('benchmark', '\(Self.benchmarkID)');
                    """)
            }
        }
        let id = try database.query("SELECT value FROM meta WHERE key = 'benchmark'").first?.first ?? "none"
        version = id
        guard id == Self.benchmarkID || anyVersion && id.hasPrefix("lvd-stage2/") else {
            throw SQLiteDatabase.Failure(description: "\(path) holds results of benchmark version '\(id)'; this lvd reads '\(Self.benchmarkID)' (use a new --db file, or `lvd bench rescore` to score its videos again)")
        }
    }

    /// Stores a result; false when one with its key is already there (it is kept, not counted twice).
    @discardableResult
    public func insert(_ result: Result) throws -> Bool {
        try database.transaction { try write(result) }
    }

    /// The INSERT of `insert` and `merge` (inside their transactions).
    private func write(_ result: Result) throws -> Bool {
        try database.execute("""
            INSERT OR IGNORE INTO results (method, config, row, repeat, seed, task, prompt, success, failure, video, frames,
                detections, layout, generate_seconds, evaluate_seconds, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [result.method, result.config, String(result.row), String(result.repeatIndex), String(result.seed), result.task,
                  result.prompt, result.success ? "1" : "0", result.failure, result.video,
                  JSONValue.array(result.frames.map { .number(Double($0)) }).serialized(), result.detections, result.layout,
                  String(result.generateSeconds), String(result.evaluateSeconds), String(Date().timeIntervalSince1970)])
        return database.changes == 1
    }

    /// Keys already stored for (method, config).
    public func keys(method: String, config: String) throws -> Set<Result.Key> {
        Set(try database.query("SELECT row, repeat, seed FROM results WHERE method = ? AND config = ?", [method, config]).map {
            Result.Key(method: method, config: config, row: Int($0[0]) ?? -1, repeatIndex: Int($0[1]) ?? -1, seed: UInt64($0[2]) ?? 0)
        })
    }

    /// Every result, by method, configuration, row, repeat and seed.
    public func results() throws -> [Result] {
        try database.query("""
            SELECT method, config, row, repeat, seed, task, prompt, success, failure, video, frames, detections, layout,
                   generate_seconds, evaluate_seconds, failure IS NULL, video IS NULL, layout IS NULL
            FROM results ORDER BY method, config, row, repeat, seed
            """).map { c in
            let frames = (try? JSONValue.parse(c[10]))?.arrayValue?.compactMap { $0.numberValue.map(Int.init) } ?? []
            return Result(method: c[0], config: c[1], row: Int(c[2]) ?? -1, repeatIndex: Int(c[3]) ?? -1, seed: UInt64(c[4]) ?? 0,
                          task: c[5], prompt: c[6], success: c[7] == "1", failure: c[15] == "1" ? nil : c[8],
                          video: c[16] == "1" ? nil : c[9], frames: frames, detections: c[11], layout: c[17] == "1" ? nil : c[12],
                          generateSeconds: Double(c[13]) ?? 0, evaluateSeconds: Double(c[14]) ?? 0)
        }
    }

    /// What a merge did: results copied, results found in more than one input (overlapping
    /// shards; kept once), and of those the ones whose verdicts disagree.
    public struct MergeSummary: Equatable, Sendable {
        public var added = 0
        public var duplicates = 0
        public var conflicts: [Result.Key] = []
    }

    /// Copies every result of `inputs` into `output` (created, or added to), each key once.
    public static func merge(_ inputs: [String], into output: String) throws -> MergeSummary {
        let target = try ResultStore(path: output, create: true)
        var summary = MergeSummary()
        var verdicts: [Result.Key: Bool] = [:]
        for result in try target.results() { verdicts[result.key] = result.success }
        for input in inputs {
            guard (input as NSString).standardizingPath != (output as NSString).standardizingPath else {
                throw SQLiteDatabase.Failure(description: "\(input) is also the output: merge into a new file")
            }
            let source = try ResultStore(path: input, create: false)
            let results = try source.results()
            try target.database.transaction {
                for result in results {
                    if let earlier = verdicts[result.key] {
                        summary.duplicates += 1
                        if earlier != result.success { summary.conflicts.append(result.key) }
                        continue
                    }
                    _ = try target.write(result)
                    verdicts[result.key] = result.success
                    summary.added += 1
                }
            }
        }
        return summary
    }
}
