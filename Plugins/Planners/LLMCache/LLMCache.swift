import LVDSQLite
import Foundation

/// The LLM answer cache in SQLite (WAL): (model, template version, normalised prompt) →
/// ordered answers (STAGE1.md §6). A `Session` hands out the n-th stored answer on the n-th
/// request for a key, so repeated benchmark prompts get distinct layouts; a miss is filled by the
/// caller and appended. Appends run in immediate transactions with a busy timeout, so two
/// processes writing at once both keep their answers.
public final class LLMCache: @unchecked Sendable {
    public let path: String
    private let database: SQLiteDatabase
    static let schemaVersion = "1"

    public typealias Failure = SQLiteDatabase.Failure

    /// The default file: $XDG_CACHE_HOME/lvd/llm-cache.sqlite (~/.cache when unset).
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let base = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.cache")
        return base + "/lvd/llm-cache.sqlite"
    }

    public init(path: String) throws {
        self.path = path
        database = try SQLiteDatabase(path: path, role: "cache")
        try database.execute("""
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS answers (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                model TEXT NOT NULL, template TEXT NOT NULL, prompt TEXT NOT NULL,
                position INTEGER NOT NULL, answer TEXT NOT NULL, created REAL NOT NULL,
                UNIQUE (model, template, prompt, position));
            INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', '\(Self.schemaVersion)');
            """)
        let schema = try query("SELECT value FROM meta WHERE key = 'schema'", []).first?.first ?? ""
        guard schema == Self.schemaVersion else {
            throw Failure(description: "cache \(path): schema version \(schema), this lvd reads \(Self.schemaVersion)")
        }
    }

    /// The answer at `position` (0-based) for a key, if stored.
    public func answer(model: String, template: String, prompt: String, position: Int) throws -> String? {
        try query("SELECT answer FROM answers WHERE model = ? AND template = ? AND prompt = ? AND position = ?",
                  [model, template, prompt, String(position)]).first?.first
    }

    /// Appends an answer after the stored ones for its key; returns its position.
    @discardableResult
    public func append(model: String, template: String, prompt: String, answer: String) throws -> Int {
        try transaction {
            let next = Int(try query("SELECT COALESCE(MAX(position) + 1, 0) FROM answers WHERE model = ? AND template = ? AND prompt = ?",
                                     [model, template, prompt]).first?.first ?? "0") ?? 0
            try execute("INSERT INTO answers (model, template, prompt, position, answer, created) VALUES (?, ?, ?, ?, ?, ?)",
                        [model, template, prompt, String(next), answer, String(Date().timeIntervalSince1970)])
            return next
        }
    }

    /// Every answer of (model, template), keys in the order they were first stored.
    public func entries(model: String, template: String) throws -> [(prompt: String, answers: [String])] {
        let rows = try query("SELECT prompt, answer FROM answers WHERE model = ? AND template = ? ORDER BY seq", [model, template])
        var order: [String] = []
        var answers: [String: [String]] = [:]
        for row in rows {
            if answers[row[0]] == nil { order.append(row[0]) }
            answers[row[0], default: []].append(row[1])
        }
        return order.map { ($0, answers[$0]!) }
    }

    /// (model, template, keys, answers) for each pair stored.
    public func stats() throws -> [(model: String, template: String, keys: Int, answers: Int)] {
        try query("SELECT model, template, COUNT(DISTINCT prompt), COUNT(*) FROM answers GROUP BY model, template ORDER BY model, template", [])
            .map { ($0[0], $0[1], Int($0[2]) ?? 0, Int($0[3]) ?? 0) }
    }

    /// Imports a reference JSON cache (caption → [answers]) for (model, template), all or nothing.
    /// Keys already stored get the file's answers appended after theirs.
    public func importReference(_ object: [(prompt: String, answers: [String])], model: String, template: String) throws -> Int {
        try transaction {
            var count = 0
            for (prompt, answers) in object {
                var next = Int(try query("SELECT COALESCE(MAX(position) + 1, 0) FROM answers WHERE model = ? AND template = ? AND prompt = ?",
                                         [model, template, prompt]).first?.first ?? "0") ?? 0
                for answer in answers {
                    try execute("INSERT INTO answers (model, template, prompt, position, answer, created) VALUES (?, ?, ?, ?, ?, ?)",
                                [model, template, prompt, String(next), answer, String(Date().timeIntervalSince1970)])
                    next += 1
                    count += 1
                }
            }
            return count
        }
    }

    /// Lookups in one pass over a prompt list: the n-th request for a key gets the n-th answer;
    /// a miss is answered by `fetch` and appended (and counts as consumed).
    public final class Session {
        public let cache: LLMCache
        public let model: String
        public let template: String
        private var counters: [String: Int] = [:]

        public init(cache: LLMCache, model: String, template: String) {
            self.cache = cache
            self.model = model
            self.template = template
        }

        /// The next answer for `prompt`, and whether it came from the cache.
        public func next(_ prompt: String, fetch: () throws -> String) throws -> (answer: String, cached: Bool) {
            let position = counters[prompt, default: 0]
            counters[prompt] = position + 1
            if let stored = try cache.answer(model: model, template: template, prompt: prompt, position: position) {
                return (stored, true)
            }
            let fresh = try fetch()
            try cache.append(model: model, template: template, prompt: prompt, answer: fresh)
            return (fresh, false)
        }
    }

    // MARK: SQLite

    private func transaction<T>(_ body: () throws -> T) throws -> T { try database.transaction(body) }
    private func execute(_ sql: String, _ arguments: [String]) throws { try database.execute(sql, arguments) }
    private func query(_ sql: String, _ arguments: [String]) throws -> [[String]] { try database.query(sql, arguments) }
}

/// The reference cache file format (STAGE1.md §6.2): a JSON object of caption → [answers],
/// written exactly as Python's json.dumps(indent=4) with ensure_ascii.
public enum ReferenceCacheFormat {
    public static func serialize(_ entries: [(prompt: String, answers: [String])]) -> String {
        if entries.isEmpty { return "{}" }
        var out = "{\n"
        for (index, entry) in entries.enumerated() {
            out += "    " + quote(entry.prompt) + ": "
            if entry.answers.isEmpty {
                out += "[]"
            } else {
                out += "[\n" + entry.answers.map { "        " + quote($0) }.joined(separator: ",\n") + "\n    ]"
            }
            out += index == entries.count - 1 ? "\n" : ",\n"
        }
        return out + "}"
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for unit in text.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(unit)!)
            default: out += String(format: "\\u%04x", unit)
            }
        }
        return out + "\""
    }
}
