import ArgumentParser
import Foundation
import LVDBench
import LVDFormats
import LVDHost
import LVDStage1
import LVDWorld

extension Bench {
    /// The stage-2 benchmark (STAGE1.md §8): for each benchmark row and repeat, its layout, a
    /// video from each method (a child `lvd generate`), six sampled frames through the tiny
    /// world's detector, the detections as a layout, the row's predicate. Every result is a row
    /// in an SQLite file the moment it is scored; the same command resumes after the stored ones.
    struct Stage2Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stage2",
            abstract: "Stage-2 benchmark: generate each benchmark row with a method, detect, score by the stage-1 predicates.",
            discussion: """
                Seeds are the reference's: row index + repeat·6789 + --seed-offset. --per-task K takes every \
                (n/K)-th row of each task (a fixed, stratified subset). --shard k/n runs every n-th selected row \
                from the k-th (k = 0 … n−1), so n processes or Slurm array tasks \
                (--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT) each write their own --db; \
                `lvd bench merge` joins them and `lvd bench report` prints the table.
                """)

        @OptionGroup var host: HostOptions
        @Option(name: .customLong("method"), help: "Method plugin (repeatable: each is run on every row).") var methods: [String] = []
        @Option(help: ArgumentHelp("planner:ID (a planner plugin) or cache:FILE (a reference JSON cache; the n-th answer for the n-th repeat).", valueName: "source"))
        var layouts: String
        @Option(name: .customLong("planner-param"), help: ArgumentHelp("A planner parameter (repeatable).", valueName: "key=value"))
        var plannerParams: [String] = []
        @Option(help: ArgumentHelp("A diffusers folder (default: $LVD_MODEL, else the bundled model; a method's variant named in its lvd.json, such as tiny-gligen for lvd-gligen).", valueName: "dir"))
        var model: String?
        @Option(help: "Passes over the rows (the cache's n-th answer and seed + n·6789 for pass n).") var repeats = 1
        @Option(help: "Added to every seed (the published runs used 0 and 500).") var seedOffset = 0
        @Option(help: ArgumentHelp("Only these tasks, comma-separated: numeracy, attribution, visibility, dynamics, sequential.", valueName: "list"))
        var tasks: String?
        @Option(help: "K rows per task, every (n/K)-th (a fixed, stratified subset).") var perTask: Int?
        @Option(help: "Denoising steps (default: the model folder's lvd.json).") var steps: Int?
        @Option(help: "Frames (default: the model folder's lvd.json; at least 6).") var frames: Int?
        @Option(name: .customLong("param"), help: ArgumentHelp("A method parameter for every --method (repeatable).", valueName: "key=value"))
        var params: [String] = []
        @Option(help: ArgumentHelp("Run shard k of n (k = 0 … n−1) of the selected rows.", valueName: "k/n")) var shard: String?
        @Option(help: "The results database (SQLite; created, or resumed).") var db = "lvd-bench-stage2.db"
        @Option(name: [.short, .customLong("output")], help: "Folder for the videos (one subfolder per method and configuration).")
        var output = "lvd-bench-stage2"
        @Flag(help: "Print the table as JSON.") var json = false
        @Flag(help: "Print the table as Markdown.") var markdown = false

        func validate() throws {
            guard !methods.isEmpty else { throw ValidationError("give at least one --method ID") }
            if let problem = LayoutSource.validate(layouts) { throw ValidationError(problem) }
            guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
            guard seedOffset >= 0 else { throw ValidationError("--seed-offset must be ≥ 0") }
            if let perTask, perTask < 1 { throw ValidationError("--per-task must be at least 1") }
            if let frames, frames < 6 { throw ValidationError("--frames must be at least 6: the protocol samples 6 distinct frames") }
            if let shard, Stage2Plan.parseShard(shard) == nil { throw ValidationError("--shard must be k/n with 0 ≤ k < n, got '\(shard)'") }
            _ = try selectedTasks()
        }

        func selectedTasks() throws -> [Benchmark.Task]? {
            guard let tasks else { return nil }
            do { return try Stage2Plan.tasks(tasks).get() } catch { throw ValidationError("\(error)") }
        }

        /// A method's settings apart from seeds: what makes its results comparable.
        struct Setup {
            var method: String
            var model: String
            var frames: Int
            var steps: Int
            var config: String
            var folder: String
        }

        func setup(_ method: String) throws -> Setup {
            let modelPath = try Generate.modelFolder(model, method: method)
            let settings = try FolderSettings.read(modelPath)
            let frames = self.frames ?? settings.frames ?? 16, steps = self.steps ?? settings.steps ?? 40
            let source = layouts.hasPrefix("cache:") ? "cache:" + (layouts.dropFirst(6) as NSString).lastPathComponent : layouts
            // The model by its folder's name and a fingerprint of its contents: a retrained model
            // in a folder of the same name is another configuration.
            let modelName = (URL(fileURLWithPath: modelPath).standardized.path as NSString).lastPathComponent
            var config = "layouts=\(source) model=\(modelName)@\(Generate.modelFingerprint(modelPath)) frames=\(frames) steps=\(steps)"
            if !params.isEmpty { config += " params=" + params.sorted().joined(separator: ",") }
            if !plannerParams.isEmpty { config += " planner-params=" + plannerParams.sorted().joined(separator: ",") }
            return Setup(method: method, model: modelPath, frames: frames, steps: steps, config: config,
                         folder: output + "/" + method + "-" + fnv1a(config))
        }

        func run() throws {
            InterruptHandler.install()
            let store = try ResultStore(path: db, create: true)
            var rows = Stage2Plan.rows(tasks: try selectedTasks(), perTask: perTask)
            if let shard, let (k, n) = Stage2Plan.parseShard(shard) { rows = Stage2Plan.shard(rows, k, of: n) }
            let occurrence = Dictionary(uniqueKeysWithValues: zip(Benchmark.rows.map(\.index), Benchmark.occurrences(Benchmark.rows)))
            let setups = try methods.map(setup)
            let loader = PluginLoader()
            defer { loader.shutdown() }
            let source = try LayoutSource(layouts, plannerParams: plannerParams, host: host, loader: loader)
            var stored: [String: Set<ResultStore.Result.Key>] = [:]
            for s in setups { stored[s.method] = try store.keys(method: s.method, config: s.config) }

            let total = rows.count * repeats * setups.count
            var done = 0, resumed = 0, generated = 0, noLayout = 0, emptyLayouts = 0, nothingDetected = 0
            var spent = 0.0
            let started = Date()
            say("stage 2: \(rows.count) rows × \(repeats) repeat(s) × \(setups.count) method(s) = \(total) videos; results in \(db)")
            run: for pass in 0..<repeats {
                for row in rows {
                    if HostServices.shared.isCancelled { break run }
                    let seed = UInt64(Stage2Plan.seed(row: row.index, repeatIndex: pass, offset: seedOffset))
                    let pending = setups.filter { !stored[$0.method]!.contains(.init(method: $0.method, config: $0.config, row: row.index, repeatIndex: pass, seed: seed)) }
                    resumed += setups.count - pending.count
                    done += setups.count - pending.count
                    guard !pending.isEmpty else { continue }
                    // Stage 1: the row's layout (from the cache or the planner), shared by every method.
                    let layout: Layout
                    do {
                        layout = try source.layout(pass: pass, row: row, occurrence: occurrence[row.index]!)
                    } catch {
                        for s in pending {
                            try store.insert(.init(method: s.method, config: s.config, row: row.index, repeatIndex: pass, seed: seed,
                                                   task: row.task.label, prompt: row.prompt, success: false, failure: "no layout: \(error)"))
                            done += 1
                        }
                        noLayout += 1
                        say("stage 2: row \(row.index) has no layout (\(error)): counted as failed for \(pending.count) method(s)")
                        continue
                    }
                    if layout.keyframes.allSatisfy(\.isEmpty) {
                        emptyLayouts += 1
                        say("stage 2: row \(row.index)'s layout has no boxes: the methods generate without grounding")
                    }
                    for s in pending {
                        if HostServices.shared.isCancelled { break run }
                        let folder = s.folder + String(format: "/row%03d-rep%d-seed%llu", row.index, pass, seed)
                        let t0 = Date()
                        try generate(s, prompt: row.prompt, layout: layout, seed: seed, folder: folder)
                        if HostServices.shared.isCancelled { break run }
                        let seconds = Date().timeIntervalSince(t0)
                        let t1 = Date()
                        let video: VideoFrames
                        do { video = try VideoFrames.readNPY(folder + "/video.npy") } catch { throw CLIError("\(error)") }
                        let evaluation: Stage2.Evaluation
                        do {
                            evaluation = try Stage2.evaluate(row: row, rgb: video.rgb, frames: video.frames, width: video.width, height: video.height)
                        } catch { throw CLIError("\(folder)/video.npy: \(error)") }
                        if evaluation.detectionCount == 0 { nothingDetected += 1 }
                        let videoPath = URL(fileURLWithPath: folder + "/video.npy").standardized.path
                        try store.insert(.init(method: s.method, config: s.config, row: row.index, repeatIndex: pass, seed: seed,
                                               task: row.task.label, prompt: row.prompt, success: evaluation.success, video: videoPath,
                                               frames: evaluation.frames, detections: evaluation.detectionsJSON.serialized(),
                                               layout: layout.json.serialized(), generateSeconds: seconds,
                                               evaluateSeconds: Date().timeIntervalSince(t1)))
                        done += 1
                        generated += 1
                        spent += seconds
                        let eta = Double(total - done) * spent / Double(generated)
                        say(String(format: "stage 2: %d/%d %@ row %d (%@) %@ %d detection(s), %.1f s; about %.0f min left", done, total, s.method,
                                   row.index, row.task.label, evaluation.success ? "✓" : "✗", evaluation.detectionCount, seconds, eta / 60))
                    }
                }
            }
            let wanted = Set(rows.map(\.index))
            let mine = try store.results().filter { r in setups.contains { $0.method == r.method && $0.config == r.config } && wanted.contains(r.row) }
            print(Stage2Report(mine).rendered(json: json, markdown: markdown))
            if !json {
                print(String(format: "%d videos generated in this run (%.1f min), %d results resumed from %@", generated,
                             Date().timeIntervalSince(started) / 60, resumed, db))
                if noLayout > 0 { print("\(noLayout) row(s) without a layout: counted as failures (the table's counts include them)") }
                if emptyLayouts > 0 { print("\(emptyLayouts) layout(s) without boxes: generated without grounding") }
                if nothingDetected > 0 { print("\(nothingDetected) video(s) in which the detector found none of the queried objects") }
            }
            if done < total {
                print("interrupted: \(done) of \(total) results stored; run the same command again to go on")
                throw ExitCode(130)
            }
        }

        /// One video as a child `lvd generate` (its own process: a crash or an out-of-memory kill
        /// loses that video only; Ctrl-C reaches it too).
        func generate(_ s: Setup, prompt: String, layout: Layout, seed: UInt64, folder: String) throws {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try writeAtomically(layout.json.serialized(pretty: true) + "\n", to: folder + "/layout-in.json")
            var arguments = ["generate", prompt, "--method", s.method, "--layout", folder + "/layout-in.json", "--seed", String(seed),
                             "--model", s.model, "--frames", String(s.frames), "--steps", String(s.steps), "-o", folder, "--json"]
            arguments += params.flatMap { ["--param", $0] }
            arguments += host.pluginPaths.flatMap { ["--plugin-path", $0] }
            let child = try ChildRun.generate(arguments, label: "\(s.method) \(folder.split(separator: "/").last ?? "")", onTerminalOnly: true, warnings: false)
            if let failure = child.failure, !HostServices.shared.isCancelled {
                throw CLIError("\(s.method) on \"\(prompt)\" (seed \(seed)): \(failure)")
            }
        }

        func say(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    /// `lvd bench rescore`: the videos of results databases (of this or an earlier benchmark
    /// version) through this version's detector and predicates, into a new database — a better
    /// detector does not cost the generation again.
    struct Rescore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Score the videos of stage-2 results databases again with this lvd's detector and predicates, into a new database.")

        @Argument(help: "Results databases (any stage-2 benchmark version).") var inputs: [String]
        @Option(name: [.short, .customLong("output")], help: "The new database (must not exist).") var output: String

        func validate() throws {
            guard !inputs.isEmpty else { throw ValidationError("give the databases to rescore") }
            if FileManager.default.fileExists(atPath: output) { throw ValidationError("\(output) exists: rescore writes a new database") }
        }

        func run() throws {
            InterruptHandler.install()
            let rows = Dictionary(uniqueKeysWithValues: Benchmark.rows.map { ($0.index, $0) })
            var sources: [(path: String, results: [ResultStore.Result])] = []
            do {
                for input in inputs { sources.append((input, try ResultStore(path: input, create: false, anyVersion: true).results())) }
            } catch { throw CLIError("\(error)") }
            let total = sources.map(\.results.count).reduce(0, +)
            // Written under a temporary name and renamed when every result is in: an interrupted
            // rescore leaves no database that looks complete.
            let partial = output + ".partial"
            func discard() { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: partial + suffix) } }
            discard()
            var done = 0, changed = 0, copied = 0, duplicates = 0
            var missing: [String] = []
            // The store lives in this function only: closed (its write-ahead log folded in) before the rename.
            func write() throws -> Bool {
                let store: ResultStore
                do { store = try ResultStore(path: partial, create: true) } catch { throw CLIError("\(error)") }
                for (path, results) in sources {
                    for var result in results {
                        if HostServices.shared.isCancelled { return false }
                        done += 1
                        if result.failure == nil {
                            guard let row = rows[result.row] else { throw CLIError("\(path): row \(result.row) is not a benchmark row") }
                            guard let videoPath = result.video, let video = try? VideoFrames.readNPY(videoPath) else {
                                missing.append("\(result.method) row \(result.row) seed \(result.seed): \(result.video ?? "no video")")
                                continue
                            }
                            let evaluation: Stage2.Evaluation
                            do {
                                evaluation = try Stage2.evaluate(row: row, rgb: video.rgb, frames: video.frames, width: video.width, height: video.height)
                            } catch { throw CLIError("\(videoPath): \(error)") }
                            if evaluation.success != result.success { changed += 1 }
                            result.success = evaluation.success
                            result.frames = evaluation.frames
                            result.detections = evaluation.detectionsJSON.serialized()
                        } else {
                            copied += 1
                        }
                        do {
                            if !(try store.insert(result)) { duplicates += 1 }
                        } catch { throw CLIError("\(error)") }
                        if done % 50 == 0 { FileHandle.standardError.write(Data("rescore: \(done)/\(total)\n".utf8)) }
                    }
                }
                return true
            }
            do {
                guard try write() else {
                    discard()
                    FileHandle.standardError.write(Data("interrupted: nothing was written\n".utf8))
                    throw ExitCode(130)
                }
            } catch let error as ExitCode { throw error } catch {
                discard()
                throw error
            }
            do { try FileManager.default.moveItem(atPath: partial, toPath: output) } catch { throw CLIError("\(output): \(error)") }
            print("rescored \(total - copied - missing.count) video(s) into \(output) (\(ResultStore.benchmarkID)): \(changed) verdict(s) changed")
            if copied > 0 { print("\(copied) result(s) without a video (no layout, generation failed) copied as they were") }
            if duplicates > 0 { print("\(duplicates) result(s) were in more than one input: each is counted once") }
            if !missing.isEmpty {
                print("\(missing.count) result(s) left out, their video is gone (the same `lvd bench stage2` command generates them again):")
                for line in missing.prefix(10) { print("  " + line) }
            }
        }
    }

    /// `lvd bench merge`: results databases (shards, machines) into one, each result once.
    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Merge stage-2 results databases (shards) into one; each result is kept once.")

        @Argument(help: "Results databases.") var inputs: [String]
        @Option(name: [.short, .customLong("output")], help: "The merged database (created, or added to).") var output: String

        func validate() throws {
            guard !inputs.isEmpty else { throw ValidationError("give the databases to merge") }
        }

        func run() throws {
            let summary: ResultStore.MergeSummary
            do { summary = try ResultStore.merge(inputs, into: output) } catch { throw CLIError("\(error)") }
            print("merged \(inputs.count) database(s) into \(output): \(summary.added) result(s) added")
            if summary.duplicates > 0 {
                print("\(summary.duplicates) result(s) were already present (overlapping shards or a repeated merge): each is counted once")
            }
            for key in summary.conflicts.prefix(10) {
                print("warning: \(key.method) row \(key.row) repeat \(key.repeatIndex) seed \(key.seed) has different verdicts in two inputs; the first is kept")
            }
        }
    }

    /// `lvd bench report`: the stage-2 table, its bar chart and a contact sheet.
    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The stage-2 table (methods × tasks) from results databases, as text, Markdown, JSON or an SVG bar chart; a contact sheet GIF.")

        @Argument(help: "Results databases (read together; a result in several is counted once).") var databases: [String]
        @Flag(help: "Print the table as Markdown.") var markdown = false
        @Flag(help: "Print the table as JSON.") var json = false
        @Option(help: ArgumentHelp("Write a grouped bar chart (SVG).", valueName: "file")) var svg: String?
        @Option(help: ArgumentHelp("Write a contact sheet: videos per task (rows) and method (columns) with the detected boxes (GIF).", valueName: "file"))
        var sheet: String?
        @Option(help: "Benchmark rows per task on the contact sheet.") var sheetRows = 2
        @Option(name: .customLong("method"), help: "Only this method (repeatable).") var methods: [String] = []
        @Option(help: ArgumentHelp("Only these tasks, comma-separated: numeracy, attribution, visibility, dynamics, sequential.", valueName: "list"))
        var tasks: String?
        @Option(help: "Only the rows `lvd bench stage2 --per-task K` takes (a database that several runs filled holds more).")
        var perTask: Int?

        func validate() throws {
            guard !databases.isEmpty else { throw ValidationError("give at least one results database") }
            guard sheetRows >= 1 else { throw ValidationError("--sheet-rows must be at least 1") }
            if let perTask, perTask < 1 { throw ValidationError("--per-task must be at least 1") }
            if let tasks, case .failure(let error) = Stage2Plan.tasks(tasks) { throw ValidationError("\(error)") }
        }

        /// The benchmark rows the filters keep, or nil for all.
        func keptRows() -> Set<Int>? {
            guard tasks != nil || perTask != nil else { return nil }
            let chosen = tasks.flatMap { try? Stage2Plan.tasks($0).get() }
            return Set(Stage2Plan.rows(tasks: chosen, perTask: perTask).map(\.index))
        }

        func run() throws {
            var seen = Set<ResultStore.Result.Key>()
            var results: [ResultStore.Result] = []
            let rows = keptRows()
            do {
                for path in databases {
                    for result in try ResultStore(path: path, create: false).results()
                    where (methods.isEmpty || methods.contains(result.method)) && (rows?.contains(result.row) ?? true)
                        && seen.insert(result.key).inserted {
                        results.append(result)
                    }
                }
            } catch { throw CLIError("\(error)") }
            guard !results.isEmpty else {
                let filtered = rows != nil || !methods.isEmpty
                throw CLIError("\(databases.joined(separator: ", ")): no results" + (filtered ? " for the --method/--tasks/--per-task chosen" : " yet"))
            }
            let report = Stage2Report(results)
            print(report.rendered(json: json, markdown: markdown))
            if let svg {
                try writeAtomically(report.svg, to: svg)
                if !json { print("wrote \(svg)") }
            }
            if let sheet {
                let lines: [String]
                do { lines = try ContactSheet.write(report, perTask: sheetRows, to: sheet) } catch { throw CLIError("\(error)") }
                if !json {
                    print("wrote \(sheet): columns " + report.groups.map(\.label).joined(separator: ", "))
                    lines.forEach { print("  " + $0) }
                }
            }
        }
    }
}

/// FNV-1a (64-bit) of `text` as 8 hex digits: short, stable folder names for configurations.
func fnv1a(_ text: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return String(format: "%08llx", hash & 0xffff_ffff)
}
