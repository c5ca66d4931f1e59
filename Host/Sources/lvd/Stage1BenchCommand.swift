import ArgumentParser
import Foundation
import LVDFormats
import LVDHost
import LVDStage1

extension Bench {
    /// The stage-1 benchmark (STAGE1.md §7.7): every row's layout — from a planner plugin or
    /// from a reference JSON cache — against its predicate, per task and overall.
    struct Stage1: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stage1",
            abstract: "Stage-1 benchmark: the 500 LVD captions, a layout each, scored by the reference predicates.")

        @OptionGroup var host: HostOptions
        @Option(help: "Planner plugin that plans each caption.") var planner: String?
        @Option(name: .customLong("param"), help: ArgumentHelp("A planner parameter (repeatable).", valueName: "key=value"))
        var params: [String] = []
        @Option(help: ArgumentHelp("cache:FILE — answers from a reference JSON cache (n-th answer for the n-th occurrence of a caption); planner:ID — the same as --planner ID.", valueName: "cache:FILE"))
        var layouts: String?
        @Option(help: "Passes over the benchmark (a planner starts each pass afresh; a cache must hold an answer per pass).") var repeats = 1
        @Flag(help: "Print JSON: {tasks, overall, rows}.") var json = false
        @Flag(help: "Print the table as Markdown.") var markdown = false

        func validate() throws {
            guard (planner == nil) != (layouts == nil) else { throw ValidationError("give exactly one of --planner ID or --layouts cache:FILE") }
            if let layouts, let problem = LayoutSource.validate(layouts) { throw ValidationError(problem) }
            guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        }

        func run() throws {
            InterruptHandler.install()
            let rows = Benchmark.rows
            let occurrences = Benchmark.occurrences(rows)
            var board = Scoreboard()
            let total = rows.count * repeats
            let loader = PluginLoader()
            defer { loader.shutdown() }
            let source = try LayoutSource(layouts ?? "planner:" + planner!, plannerParams: params, host: host, loader: loader)
            var done = 0
            passes: for pass in 0..<repeats {
                for (row, occurrence) in zip(rows, occurrences) {
                    if HostServices.shared.isCancelled { break passes }
                    do {
                        let layout = try source.layout(pass: pass, row: row, occurrence: occurrence)
                        board.outcomes.append(.init(row: row, success: Benchmark.success(row, layout: layout)))
                    } catch {
                        board.outcomes.append(.init(row: row, success: false, failure: "\(error)"))
                    }
                    done += 1
                    progress(done, total)
                }
            }
            if isatty(2) != 0 { FileHandle.standardError.write(Data("\n".utf8)) }
            if json {
                print(board.json.serialized(pretty: true))
            } else {
                if done < total { print("interrupted: \(done) of \(total) rows scored") }
                print(markdown ? board.markdown : board.text)
                if board.failures > 0 {
                    print("\(board.failures) rows without a layout (counted as failures):")
                    let failed = board.outcomes.filter { $0.failure != nil }
                    for outcome in failed.prefix(20) { print("  row \(outcome.row.index): \(outcome.failure!)") }
                    if failed.count > 20 { print("  … and \(failed.count - 20) more (--json lists every row)") }
                }
            }
            if done < total { throw ExitCode(130) }
        }
    }
}

/// Progress on standard error: a line rewritten in place on a terminal, a line per 50 otherwise.
func progress(_ done: Int, _ total: Int, _ what: String = "rows") {
    if isatty(2) != 0 {
        FileHandle.standardError.write(Data("\rstage 1: \(done)/\(total) \(what)".utf8))
    } else if done % 50 == 0 || done == total {
        FileHandle.standardError.write(Data("stage 1: \(done)/\(total) \(what)\n".utf8))
    }
}

/// A reference JSON cache (STAGE1.md §6.2) read directly: caption → ordered answers.
struct ReferenceCache {
    let path: String
    let answers: [String: [String]]

    init(path: String) throws {
        self.path = path
        answers = Dictionary(uniqueKeysWithValues: try readReferenceCache(path).map { ($0.prompt, $0.answers) })
    }

    func layout(for prompt: String, answer index: Int) throws -> Layout {
        guard let list = answers[prompt] else { throw CLIError("\(path) has no answer for \"\(prompt)\"") }
        guard index < list.count else { throw CLIError("\(path) has \(list.count) answer(s) for \"\(prompt)\", answer #\(index + 1) needed") }
        return try ResponseParser.parse(list[index], caption: prompt)
    }
}
