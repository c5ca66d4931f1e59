import CSQLite
import Foundation

/// One SQLite file in WAL mode, shared by the LLM answer cache and the benchmark results: a
/// busy timeout so several processes can write at once, text-bound statements, immediate
/// transactions. Errors name the file.
public final class SQLiteDatabase: @unchecked Sendable {
    public let path: String
    /// What the file holds, for messages ("cache", "results").
    public let role: String
    private let db: OpaquePointer
    private let lock = NSLock()

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Opens (creating when `create`) the file and switches it to WAL.
    public init(path: String, role: String, create: Bool = true) throws {
        self.path = path
        self.role = role
        if create {
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty { try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        } else if !FileManager.default.fileExists(atPath: path) {
            throw Failure(description: "\(role) \(path): no such file")
        }
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0)
        let status = sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(handle)
            throw Failure(description: "\(role) \(path): \(message)")
        }
        db = handle
        sqlite3_busy_timeout(db, 30_000)
        do {
            // Two processes creating one file at once: switching to WAL can report "locked"
            // without waiting on the busy timeout, so the setup retries for as long.
            var attempt = 0
            while true {
                do {
                    try execute("PRAGMA journal_mode=WAL")
                    break
                } catch let failure as Failure where failure.description.contains("locked") && attempt < 600 {
                    attempt += 1
                    usleep(50_000)
                }
            }
        } catch let failure as Failure {
            sqlite3_close(db)
            if failure.description.contains("file is not a database") { throw Failure(description: "\(role) \(path): not an SQLite database") }
            throw failure
        }
    }

    deinit { sqlite3_close(db) }

    /// `body` in one immediate transaction (rolled back when it throws).
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Runs `sql` (several statements when there are no arguments).
    public func execute(_ sql: String, _ arguments: [String?] = []) throws {
        if arguments.isEmpty {
            var message: UnsafeMutablePointer<CChar>?
            guard sqlite3_exec(db, sql, nil, nil, &message) == SQLITE_OK else {
                let text = message.map { String(cString: $0) } ?? "error"
                sqlite3_free(message)
                throw Failure(description: "\(role) \(path): \(text)")
            }
            return
        }
        _ = try query(sql, arguments)
    }

    /// Runs one statement with text arguments (nil binds NULL); its rows as text ("" for NULL).
    public func query(_ sql: String, _ arguments: [String?] = []) throws -> [[String]] {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else {
            throw Failure(description: "\(role) \(path): \(String(cString: sqlite3_errmsg(db)))")
        }
        defer { sqlite3_finalize(statement) }
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        for (index, argument) in arguments.enumerated() {
            if let argument {
                sqlite3_bind_text(statement, Int32(index + 1), argument, -1, transient)
            } else {
                sqlite3_bind_null(statement, Int32(index + 1))
            }
        }
        var rows: [[String]] = []
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { return rows }
            guard status == SQLITE_ROW else { throw Failure(description: "\(role) \(path): \(String(cString: sqlite3_errmsg(db)))") }
            rows.append((0..<sqlite3_column_count(statement)).map { column in
                sqlite3_column_text(statement, column).map { String(cString: $0) } ?? ""
            })
        }
    }

    /// Rows changed by the last INSERT/UPDATE/DELETE on this connection.
    public var changes: Int { Int(sqlite3_changes(db)) }
}
