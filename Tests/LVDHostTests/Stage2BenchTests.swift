import CGIF
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import LVDBench
import LVDFormats
import LVDHost
import LVDSQLite
import LVDStage1
import LVDWorld
import XCTest

/// The stage-2 benchmark: the evaluation protocol on hand-made detections and on rendered
/// videos, the row subset and shards, the results database, the report, and the `lvd bench`
/// commands as users run them (resume after kill -9, shards merged, table, chart, sheet).
final class Stage2BenchTests: XCTestCase {
    // MARK: Protocol

    func testSampledFramesAsTheReference() throws {
        XCTAssertEqual(try Stage2.evalFrames(16), [0, 3, 6, 9, 12, 15])
        XCTAssertEqual(try Stage2.evalFrames(24), [0, 5, 9, 14, 18, 23])
        XCTAssertEqual(try Stage2.evalFrames(8), [0, 1, 3, 4, 6, 7], "round half to even: 1.4, 2.8, 4.2, 5.6")
        XCTAssertEqual(try Stage2.evalFrames(6), [0, 1, 2, 3, 4, 5])
        XCTAssertThrowsError(try Stage2.evalFrames(5)) { XCTAssertTrue("\($0)".contains("5-frame video"), "\($0)") }
    }

    func testQueriesNameClassAndColour() throws {
        let queries = try Stage2.queries(["a photo of a blue cat", "a photo of an orange ball", "a photo of a car"])
        XCTAssertEqual(queries.map(\.kind), [.cat, .ball, .car])
        XCTAssertEqual(queries.map(\.colour), ["blue", "orange", nil])
        XCTAssertThrowsError(try Stage2.queries(["a photo of a tree"])) { XCTAssertTrue("\($0)".contains("'a photo of a tree'"), "\($0)") }
        let detections = [WorldDetector.Detection(kind: .cat, colour: "red", box: [0, 0, 0.2, 0.2], score: 0.9),
                          WorldDetector.Detection(kind: .cat, colour: "blue", box: [0.5, 0.5, 0.7, 0.7], score: 0.8),
                          WorldDetector.Detection(kind: .car, colour: "green", box: [0.1, 0.5, 0.3, 0.6], score: 0.7)]
        let candidates = Stage2.candidates(detections, queries: queries)
        XCTAssertEqual(candidates.map { $0.label }, [0, 2], "the red cat answers no query; a car of any colour answers 'a car'")
    }

    func testScoreFilterClassAwareNMSAndOneBoxPerClass() {
        let c = { (box: [Double], score: Double, label: Int) in Stage2.Candidate(box: box, score: score, label: label) }
        let candidates = [
            c([0, 0, 0.4, 0.4], 0.5, 0), c([0.05, 0.05, 0.45, 0.45], 0.9, 0), // overlap: the 0.9 one survives
            c([0.6, 0.6, 0.9, 0.9], 0.3, 0),                                   // apart: survives NMS
            c([0, 0, 0.4, 0.4], 0.6, 1),                                       // other label, same place: class-aware keeps it
            c([0.5, 0, 0.9, 0.3], 0.05, 1),                                    // below the 0.1 score threshold
        ]
        let kept = Stage2.filter(candidates, labels: 2, oneBoxPerClass: false)
        XCTAssertEqual(kept.map(\.score), [0.9, 0.3, 0.6], "labels ascending, scores descending within a label")
        XCTAssertEqual(Stage2.filter(candidates, labels: 2, oneBoxPerClass: true).map(\.score), [0.9, 0.6])
        // IoU below 0.1 is kept: two boxes overlapping by a sliver both stay.
        let sliver = [c([0, 0, 0.5, 0.5], 0.9, 0), c([0.45, 0, 0.95, 0.5], 0.8, 0)]
        XCTAssertEqual(Stage2.filter(sliver, labels: 1, oneBoxPerClass: false).count, 2)
    }

    func testDetectionsBecomeALayoutScoredByThePredicates() throws {
        let row = try XCTUnwrap(Benchmark.rows.first { $0.predicate == .dynamic1(names: ["car"], leftToRight: true) })
        func frames(_ xs: [Double]) -> [[Stage2.Candidate]] {
            xs.map { [Stage2.Candidate(box: [$0, 0.4, $0 + 0.25, 0.6], score: 0.8, label: 0)] }
        }
        let rightward = Stage2.fakeLayout(prompt: row.prompt, texts: row.detectorTexts, frames: frames([0, 0.1, 0.2, 0.3, 0.5, 0.7]), width: 64, height: 64)
        XCTAssertEqual(rightward.keyframes[1], [Layout.Object(id: 0, name: "a photo of a car", box: [6, 26, 16, 13])],
                       "pixels of the video, rounded half to even (6.4, 25.6, 16, 12.8)")
        XCTAssertTrue(Benchmark.success(row, layout: rightward))
        let leftward = Stage2.fakeLayout(prompt: row.prompt, texts: row.detectorTexts, frames: frames([0.7, 0.5, 0.3, 0.2, 0.1, 0]), width: 64, height: 64)
        XCTAssertFalse(Benchmark.success(row, layout: leftward))
        // Numeracy counts the detections per frame (ids by detection order: 0, 1); the mode wins.
        let three = try XCTUnwrap(Benchmark.rows.first { $0.predicate == .numeracy(names: ["dog"], count: 2) })
        let counts = [2, 2, 1, 2, 3, 2]
        let detections = counts.map { n in (0..<n).map { i in Stage2.Candidate(box: [Double(i) * 0.3, 0, Double(i) * 0.3 + 0.2, 0.2], score: 0.5, label: 0) } }
        let layout = Stage2.fakeLayout(prompt: three.prompt, texts: three.detectorTexts, frames: detections, width: 64, height: 64)
        XCTAssertEqual(layout.keyframes[4].map(\.id), [0, 1, 2])
        XCTAssertTrue(Benchmark.success(three, layout: layout))
    }

    /// A rendered car crossing from left to right passes its dynamics row and fails the opposite
    /// one; a frame with nothing in it gives no detections and fails.
    func testRenderedVideosThroughTheDetector() throws {
        let s = 64.0
        let car = World.Object(kind: .car, colour: 4, width: 24, height: 14,
                               path: (0..<8).map { (x: 2 + Double($0) * 5, y: 30) }, facingLeft: false)
        let clip = WorldRenderer.render(World.Scene(size: Int(s), frames: 8, background: .sky, objects: [car]))
        let rightward = try XCTUnwrap(Benchmark.rows.first { $0.predicate == .dynamic1(names: ["car"], leftToRight: true) })
        let leftward = try XCTUnwrap(Benchmark.rows.first { $0.predicate == .dynamic1(names: ["car"], leftToRight: false) })
        let evaluation = try Stage2.evaluate(row: rightward, rgb: clip.pixels, frames: 8, width: 64, height: 64)
        XCTAssertEqual(evaluation.frames, [0, 1, 3, 4, 6, 7])
        XCTAssertEqual(evaluation.detections.map { $0.count }, [1, 1, 1, 1, 1, 1], "one car per sampled frame")
        for (k, f) in evaluation.frames.enumerated() {
            XCTAssertGreaterThan(WorldDetector.iou(evaluation.detections[k][0].box, try XCTUnwrap(clip.boxes[0][f])), 0.5)
        }
        XCTAssertTrue(evaluation.success)
        XCTAssertFalse(try Stage2.evaluate(row: leftward, rgb: clip.pixels, frames: 8, width: 64, height: 64).success)
        let empty = WorldRenderer.render(World.Scene(size: 64, frames: 8, background: .sky, objects: []))
        let nothing = try Stage2.evaluate(row: rightward, rgb: empty.pixels, frames: 8, width: 64, height: 64)
        XCTAssertEqual(nothing.detectionCount, 0)
        XCTAssertFalse(nothing.success)
    }

    // MARK: Plan

    func testStratifiedSubsetShardsAndSeeds() throws {
        let subset = Stage2Plan.rows(perTask: 20)
        XCTAssertEqual(subset.count, 100)
        for task in Benchmark.Task.allCases { XCTAssertEqual(subset.filter { $0.task == task }.count, 20) }
        let numeracy = subset.filter { $0.task == .numeracy }
        XCTAssertEqual(Set(numeracy.map(\.prompt)).count, 20, "one row of each count × class")
        let dynamics = subset.filter { $0.task == .dynamics }
        XCTAssertEqual(dynamics.filter { if case .dynamic1 = $0.predicate { return true } else { return false } }.count, 10)
        XCTAssertEqual(Stage2Plan.rows(perTask: 20).map(\.index), subset.map(\.index), "fixed")
        XCTAssertEqual(Stage2Plan.rows(tasks: [.sequential]).count, 100)
        XCTAssertEqual(Stage2Plan.rows(tasks: [.visibility], perTask: 500).count, 100, "K above the task's rows takes them all")
        let shards = (0..<3).map { Stage2Plan.shard(subset.map(\.index), $0, of: 3) }
        XCTAssertEqual(shards.flatMap { $0 }.sorted(), subset.map(\.index).sorted(), "the shards cover every row")
        XCTAssertEqual(Set(shards.flatMap { $0 }).count, subset.count, "no row in two shards")
        XCTAssertEqual(Stage2Plan.parseShard("2/3")?.k, 2)
        for bad in ["3/3", "-1/2", "a/b", "1", "1/0"] { XCTAssertNil(Stage2Plan.parseShard(bad), bad) }
        XCTAssertEqual(Stage2Plan.seed(row: 5, repeatIndex: 1, offset: 500), 5 + 6789 + 500)
        XCTAssertEqual(Stage2Plan.task(named: "dynamic_spatial"), .dynamics)
    }

    // MARK: Results database

    func result(_ method: String, row: Int, success: Bool, task: String = "numeracy", seed: UInt64? = nil) -> ResultStore.Result {
        ResultStore.Result(method: method, config: "layouts=cache:x model=tiny frames=8 steps=20", row: row, repeatIndex: 0,
                           seed: seed ?? UInt64(row), task: task, prompt: "p\(row)", success: success, frames: [0, 1, 3, 4, 6, 7])
    }

    func testStoreKeepsEachResultOnceAndRefusesOtherFiles() throws {
        let temp = try TempDir()
        let store = try ResultStore(path: temp.file("a.db"), create: true)
        XCTAssertTrue(try store.insert(result("lvd", row: 1, success: true)))
        XCTAssertFalse(try store.insert(result("lvd", row: 1, success: false)), "a key already stored is kept")
        XCTAssertTrue(try store.insert(result("lvd", row: 2, success: false)))
        let reopened = try ResultStore(path: temp.file("a.db"), create: false)
        XCTAssertEqual(try reopened.results().map(\.success), [true, false])
        XCTAssertEqual(try reopened.results().first?.frames, [0, 1, 3, 4, 6, 7])
        XCTAssertEqual(try reopened.keys(method: "lvd", config: result("lvd", row: 1, success: true).config).count, 2)

        // Another benchmark version, an LLM cache, a text file, a missing file.
        let other = try SQLiteDatabase(path: temp.file("old.db"), role: "results")
        try other.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); CREATE TABLE results (x); INSERT INTO meta VALUES ('benchmark', 'lvd-stage2/0');")
        XCTAssertThrowsError(try ResultStore(path: temp.file("old.db"), create: true)) {
            XCTAssertTrue("\($0)".contains("benchmark version 'lvd-stage2/0'"), "\($0)")
        }
        let cache = try SQLiteDatabase(path: temp.file("cache.sqlite"), role: "cache")
        try cache.execute("CREATE TABLE answers (x)")
        XCTAssertThrowsError(try ResultStore(path: temp.file("cache.sqlite"), create: true)) {
            XCTAssertTrue("\($0)".contains("is not an lvd stage-2 results database"), "\($0)")
        }
        try "hello".write(toFile: temp.file("text.db"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ResultStore(path: temp.file("text.db"), create: true)) {
            XCTAssertTrue("\($0)".contains("not an SQLite database"), "\($0)")
        }
        XCTAssertThrowsError(try ResultStore(path: temp.file("none.db"), create: false)) { XCTAssertTrue("\($0)".contains("no such file"), "\($0)") }
    }

    func testMergeCountsOverlapsOnce() throws {
        let temp = try TempDir()
        let a = try ResultStore(path: temp.file("a.db"), create: true), b = try ResultStore(path: temp.file("b.db"), create: true)
        try a.insert(result("lvd", row: 1, success: true))
        try a.insert(result("lvd", row: 2, success: false))
        try b.insert(result("lvd", row: 2, success: true)) // overlaps a, with another verdict
        try b.insert(result("lvd", row: 3, success: true))
        let summary = try ResultStore.merge([temp.file("a.db"), temp.file("b.db")], into: temp.file("all.db"))
        XCTAssertEqual(summary.added, 3)
        XCTAssertEqual(summary.duplicates, 1)
        XCTAssertEqual(summary.conflicts.map(\.row), [2])
        let merged = try ResultStore(path: temp.file("all.db"), create: false).results()
        XCTAssertEqual(merged.map(\.row), [1, 2, 3])
        XCTAssertEqual(merged.map(\.success), [true, false, true], "the first input's verdict is kept")
        let again = try ResultStore.merge([temp.file("a.db")], into: temp.file("all.db"))
        XCTAssertEqual(again.added, 0)
        XCTAssertEqual(again.duplicates, 2)
        XCTAssertThrowsError(try ResultStore.merge([temp.file("all.db")], into: temp.file("all.db")))
    }

    /// `lvd bench rescore`: the videos of a database of an earlier benchmark version through this
    /// detector into a new database; results without a video are copied, gone videos listed.
    func testRescoreScoresStoredVideosAgainIntoANewDatabase() throws {
        let temp = try TempDir()
        let rightward = try XCTUnwrap(Benchmark.rows.first { $0.predicate == .dynamic1(names: ["car"], leftToRight: true) })
        let car = World.Object(kind: .car, colour: 4, width: 24, height: 14,
                               path: (0..<8).map { (x: 2 + Double($0) * 5, y: 30) }, facingLeft: false)
        let clip = WorldRenderer.render(World.Scene(size: 64, frames: 8, background: .sky, objects: [car]))
        try VideoFrames(frames: 8, height: 64, width: 64, rgb: clip.pixels).writeNPY(to: temp.file("car.npy"))
        do {
            let old = try ResultStore(path: temp.file("old.db"), create: true)
            var scored = result("lvd", row: rightward.index, success: false, task: "dynamics")
            scored.video = temp.file("car.npy")
            try old.insert(scored)                                                            // the old verdict was wrong
            var failed = result("lvd", row: 0, success: false)
            failed.failure = "no layout: the cache has no answer"
            try old.insert(failed)                                                            // no video: copied
            var gone = result("baseline", row: rightward.index, success: true, task: "dynamics")
            gone.video = temp.file("deleted.npy")
            try old.insert(gone)                                                              // video gone: left out
        }
        let database = try SQLiteDatabase(path: temp.file("old.db"), role: "results")
        try database.execute("UPDATE meta SET value = 'lvd-stage2/1' WHERE key = 'benchmark'")
        let refused = try lvd(["bench", "report", temp.file("old.db")])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("'lvd-stage2/1'") && refused.stderr.contains("lvd bench rescore"), refused.stderr)

        let run = try lvd(["bench", "rescore", temp.file("old.db"), "-o", temp.file("new.db")])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.stdout.contains("rescored 1 video(s)") && run.stdout.contains("1 verdict(s) changed"), run.stdout)
        XCTAssertTrue(run.stdout.contains("1 result(s) left out") && run.stdout.contains("deleted.npy"), run.stdout)
        let results = try ResultStore(path: temp.file("new.db"), create: false).results()
        XCTAssertEqual(results.map(\.method), ["lvd", "lvd"])
        let rescored = try XCTUnwrap(results.first { $0.row == rightward.index })
        XCTAssertTrue(rescored.success, "the car moving right, found by this detector")
        XCTAssertEqual(try JSONValue.parse(rescored.detections).arrayValue?.map { $0.arrayValue?.count ?? 0 }, [1, 1, 1, 1, 1, 1])
        XCTAssertEqual(results.first { $0.row == 0 }?.failure, "no layout: the cache has no answer")
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("new.db.partial")))

        // The output must be new; a database of another kind is refused with its name.
        let again = try lvd(["bench", "rescore", temp.file("old.db"), "-o", temp.file("new.db")])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("new.db exists"), again.stderr)
        try "hello".write(toFile: temp.file("text.db"), atomically: true, encoding: .utf8)
        let text = try lvd(["bench", "rescore", temp.file("text.db"), "-o", temp.file("other.db")])
        XCTAssertNotEqual(text.status, 0)
        XCTAssertTrue(text.stderr.contains("text.db"), text.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("other.db")))
    }

    func testReportTableAndChart() throws {
        let results = [result("lvd", row: 0, success: true), result("lvd", row: 1, success: false),
                       result("lvd", row: 100, success: true, task: "attribution"),
                       result("baseline", row: 0, success: false), result("baseline", row: 100, success: false, task: "attribution")]
        let report = Stage2Report(results)
        XCTAssertEqual(report.groups.map(\.label), ["baseline", "lvd"], "baseline first")
        XCTAssertEqual(report.tasks, ["numeracy", "attribution"])
        XCTAssertTrue(report.markdown.contains("| lvd | 1/2 (50.0%) | 1/1 (100.0%) | 2/3 (66.7%) |"), report.markdown)
        XCTAssertTrue(report.markdown.contains("| baseline | 0/1 (0.0%) | 0/1 (0.0%) | 0/2 (0.0%) |"), report.markdown)
        let methods = try XCTUnwrap(report.json.objectValue?["methods"]?.arrayValue)
        XCTAssertEqual(methods[1].objectValue?["overall"]?.numberValue ?? 0, 200.0 / 3, accuracy: 1e-9)
        let svg = report.svg
        XCTAssertEqual(svg.components(separatedBy: "<rect class=\"bar\"").count - 1, 2 * 3, "a bar per method per task and overall")
        XCTAssertTrue(svg.contains("<title>lvd, overall: 2/3</title>"), svg)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        let parser = XMLParser(data: Data(svg.utf8))
        XCTAssertTrue(parser.parse(), "well-formed XML: \(String(describing: parser.parserError))")
        // The same method under two configurations: two groups, told apart.
        var other = result("lvd", row: 0, success: true)
        other.config += " params=max_iter=1"
        XCTAssertEqual(Stage2Report(results + [other]).groups.map(\.label), ["baseline", "lvd #1", "lvd #2"])
        // A long configuration widens the chart so its legend line is not cut off.
        func width(_ svg: String) throws -> Double {
            let start = try XCTUnwrap(svg.range(of: "width=\"")).upperBound
            return try XCTUnwrap(Double(svg[start...].prefix { $0 != "\"" }))
        }
        other.config += ",loss_scale=1000,loss_threshold=0,fg_top_p=0.25,bg_top_p=0.25,com_weight=0"
        let wide = try width(Stage2Report(results + [other]).svg)
        XCTAssertGreaterThan(wide, 6 * Double("lvd #2 — 1/1 videos — \(other.config)".count), "legend fits")
        XCTAssertLessThan(try width(svg), wide)
    }

    func testIntervalsAndPairedSignTest() throws {
        // Wilson 95 % by hand: 5/10 → 0.5 ± 0.2634; 0/10 → [0, 0.2775]; n = 0 says nothing.
        let half = Proportions.wilson95(5, of: 10)
        XCTAssertEqual(half.low, 0.2366, accuracy: 1e-4)
        XCTAssertEqual(half.high, 0.7634, accuracy: 1e-4)
        XCTAssertEqual(Proportions.wilson95(0, of: 10).low, 0)
        XCTAssertEqual(Proportions.wilson95(0, of: 10).high, 0.2775, accuracy: 1e-4)
        XCTAssertEqual(Proportions.wilson95(10, of: 10).high, 1)
        XCTAssertEqual(Proportions.wilson95(10, of: 10).low, 0.7225, accuracy: 1e-4)
        XCTAssertTrue(Proportions.wilson95(0, of: 0) == (0, 1))
        XCTAssertEqual(Proportions.percentWithInterval(67, of: 100), "67.0 % (57.3–75.4)")
        // Exact sign test: 10 against 2 → 2 · (1 + 12 + 66) / 4096; symmetric; 1 without discordant pairs.
        XCTAssertEqual(Proportions.signTestP(wins: 10, losses: 2), 2 * 79 / 4096, accuracy: 1e-12)
        XCTAssertEqual(Proportions.signTestP(wins: 2, losses: 10), Proportions.signTestP(wins: 10, losses: 2))
        XCTAssertEqual(Proportions.signTestP(wins: 0, losses: 0), 1)
        XCTAssertEqual(Proportions.signTestP(wins: 3, losses: 3), 1)
        // Large counts stay finite: 600 against 400 is far from chance.
        let large = Proportions.signTestP(wins: 600, losses: 400)
        XCTAssertTrue(large > 0 && large < 1e-9, "\(large)")

        // The report pairs each method with the baseline on the rows both ran with the same seed.
        var results: [ResultStore.Result] = []
        for row in 0..<12 {
            results.append(result("baseline", row: row, success: row == 0 || row == 11))
            results.append(result("lvd", row: row, success: row < 10))
        }
        results.append(result("lvd", row: 50, success: true))                 // no baseline beside it
        results.append(result("lvd", row: 11, success: true, seed: 999))      // another seed: not paired
        let report = Stage2Report(results)
        let pairing = try XCTUnwrap(report.pairings.first)
        XCTAssertEqual(report.pairings.count, 1)
        XCTAssertEqual([pairing.label, pairing.reference], ["lvd", "baseline"])
        XCTAssertEqual([pairing.rows, pairing.wins, pairing.losses], [12, 9, 1])
        XCTAssertEqual(pairing.p, Proportions.signTestP(wins: 9, losses: 1))
        let text = report.rendered(json: false, markdown: false)
        XCTAssertTrue(text.contains("overall with 95 % Wilson intervals: baseline 16.7 % (4.7–44.8), lvd 85.7 % (60.1–96.0)"), text)
        XCTAssertTrue(text.contains("lvd vs baseline on the same 12 rows: lvd alone succeeds on 9, baseline alone on 1 (exact sign test p = 0.0215)"), text)
        XCTAssertTrue(report.rendered(json: false, markdown: true).contains("exact sign test p = 0.0215"))
        let methods = try XCTUnwrap(report.json.objectValue?["methods"]?.arrayValue)
        let lvd = try XCTUnwrap(methods[1].objectValue)
        XCTAssertEqual(lvd["versus"]?.objectValue?["wins"]?.numberValue, 9)
        XCTAssertEqual(lvd["versus"]?.objectValue?["p"]?.numberValue ?? 0, 0.021484375, accuracy: 1e-12)
        XCTAssertEqual(lvd["overall_ci95"]?.arrayValue?.compactMap(\.numberValue).map { ($0 * 10).rounded() / 10 }, [60.1, 96.0])
        XCTAssertNil(methods[0].objectValue?["versus"], "the reference is not compared with itself")
    }

    // MARK: The commands

    /// A reference-format cache with a left-to-right car answer for each of `prompts`, and an
    /// answer without boxes for each of `empty`.
    func writeCache(_ prompts: [String], empty: [String] = [], to path: String) throws {
        let answer = (0..<6).map { "Frame \($0 + 1): [{'id': 0, 'name': 'car', 'box': [\(20 + $0 * 70), 200, 120, 90]}]" }.joined(separator: "\n")
            + "\nBackground keyword: street"
        let none = (0..<6).map { "Frame \($0 + 1): []" }.joined(separator: "\n") + "\nBackground keyword: street"
        var object = JSONObject()
        // Five answers each: a caption's n-th benchmark row takes its n-th answer.
        for prompt in prompts { object[prompt] = .array(Array(repeating: .string(answer), count: 5)) }
        for prompt in empty { object[prompt] = .array(Array(repeating: .string(none), count: 5)) }
        try JSONValue.object(object).serialized(pretty: true).write(toFile: path, atomically: true, encoding: .utf8)
    }

    func testRunResumesReportsAndMerges() throws {
        let temp = try TempDir()
        // --tasks dynamics --per-task 3: rows 300, 333 and 366; the cache answers row 300's caption
        // with a moving car, row 333's with no boxes, and has no answer for row 366's.
        let rows = Stage2Plan.rows(tasks: [.dynamics], perTask: 3)
        XCTAssertEqual(rows.map(\.index), [300, 333, 366])
        try writeCache([rows[0].prompt], empty: [rows[1].prompt], to: temp.file("cache.json"))
        let arguments = ["bench", "stage2", "--method", "baseline", "--layouts", "cache:" + temp.file("cache.json"), "--tasks", "dynamics",
                         "--per-task", "3", "--steps", "1", "--db", temp.file("r.db"), "-o", temp.file("videos")]
        let first = try lvd(arguments + ["--markdown"])
        XCTAssertEqual(first.status, 0, first.output)
        XCTAssertTrue(first.stderr.contains("row 366 has no layout"), first.stderr)
        XCTAssertTrue(first.stderr.contains("row 333's layout has no boxes"), first.stderr)
        XCTAssertTrue(first.stderr.contains("stage 2: 1/3 baseline row 300 (dynamics)"), first.stderr)
        XCTAssertTrue(first.stdout.contains("| baseline | ") && first.stdout.contains("/3 ("), first.stdout)
        XCTAssertTrue(first.stdout.contains("1 row(s) without a layout"), first.stdout)
        XCTAssertTrue(first.stdout.contains("1 layout(s) without boxes"), first.stdout)
        let stored = try ResultStore(path: temp.file("r.db"), create: false).results()
        XCTAssertEqual(stored.map(\.row), [300, 333, 366])
        XCTAssertEqual(stored[0].seed, 300, "seed = row index + repeat·6789 + offset")
        XCTAssertTrue(stored[0].config.contains("model=tiny@") && stored[0].config.contains("frames=8 steps=1"), stored[0].config)

        // The same model folder with other weights is another configuration: its results do not
        // resume from (or mix with) the first model's.
        let copy = temp.file("models/tiny")
        try FileManager.default.createDirectory(atPath: temp.file("models"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: TestPaths.repoRoot + "/Models/tiny", toPath: copy)
        let original = try XCTUnwrap(stored[0].config.split(separator: " ").first { $0.hasPrefix("model=") })
        let weights = copy + "/unet/diffusion_pytorch_model.safetensors"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: weights))
        bytes[bytes.count - 2] ^= 0x01 // the last weight's low bits: another, still valid, model
        try bytes.write(to: URL(fileURLWithPath: weights))
        // (A numeracy row: the cache has no layout for it, so nothing is generated.)
        let retrained = try lvd(["bench", "stage2", "--method", "baseline", "--layouts", "cache:" + temp.file("cache.json"), "--tasks", "numeracy",
                                 "--per-task", "1", "--steps", "1", "--model", copy, "--db", temp.file("other.db"), "-o", temp.file("videos")])
        XCTAssertEqual(retrained.status, 0, retrained.output)
        let other = try XCTUnwrap(try ResultStore(path: temp.file("other.db"), create: false).results().first)
        XCTAssertTrue(other.config.contains("model=tiny@"), other.config)
        XCTAssertFalse(other.config.contains(original), "\(other.config) vs \(original)")
        XCTAssertEqual(stored[0].frames, [0, 1, 3, 4, 6, 7])
        XCTAssertNotNil(stored[0].video.map { FileManager.default.fileExists(atPath: $0) })
        XCTAssertNil(stored[1].failure, "a layout without boxes is generated and scored")
        XCTAssertEqual(stored[2].failure?.contains("has no answer for"), true, "\(stored[2])")
        XCTAssertFalse(stored[2].success)

        // The same command again generates nothing.
        let second = try lvd(arguments + ["--json"])
        XCTAssertEqual(second.status, 0, second.output)
        XCTAssertTrue(second.stdout.contains("\"rows\": 3"), second.stdout)
        XCTAssertEqual(try ResultStore(path: temp.file("r.db"), create: false).results().count, 3)
        XCTAssertFalse(second.stderr.contains("row 300 (dynamics)"), "resumed, not generated again: \(second.stderr)")

        // Shards 0/2 and 1/2 split the rows; merged with the full run they overlap and count once.
        for k in 0..<2 {
            let shard = try lvd(arguments.map { $0 == temp.file("r.db") ? temp.file("s\(k).db") : $0 } + ["--shard", "\(k)/2"])
            XCTAssertEqual(shard.status, 0, shard.output)
        }
        XCTAssertEqual(try ResultStore(path: temp.file("s0.db"), create: false).results().map(\.row), [300, 366])
        XCTAssertEqual(try ResultStore(path: temp.file("s1.db"), create: false).results().map(\.row), [333])
        let merge = try lvd(["bench", "merge", temp.file("s0.db"), temp.file("s1.db"), temp.file("r.db"), "-o", temp.file("all.db")])
        XCTAssertEqual(merge.status, 0, merge.output)
        XCTAssertTrue(merge.stdout.contains("3 result(s) added"), merge.stdout)
        XCTAssertTrue(merge.stdout.contains("3 result(s) were already present"), merge.stdout)

        let report = try lvd(["bench", "report", temp.file("all.db"), "--markdown", "--svg", temp.file("chart.svg"), "--sheet", temp.file("sheet.gif")])
        XCTAssertEqual(report.status, 0, report.output)
        XCTAssertTrue(report.stdout.contains("| Method | Dynamics | Overall |"), report.stdout)
        XCTAssertTrue(report.stdout.contains("sheet row 1: dynamics, benchmark row 300"), report.stdout)
        XCTAssertTrue(try String(contentsOfFile: temp.file("chart.svg"), encoding: .utf8).contains("<rect class=\"bar\""))
        var error: Int32 = 0
        let gif = try XCTUnwrap(DGifOpenFileName(temp.file("sheet.gif"), &error))
        XCTAssertEqual(DGifSlurp(gif), GIF_OK)
        XCTAssertEqual(gif.pointee.ImageCount, 6, "the six sampled frames")
        DGifCloseFile(gif, &error)

        // A database several runs filled: --per-task K and --tasks keep the rows that run would
        // take (--per-task 1 of dynamics is row 300), --method the methods.
        let subset = try lvd(["bench", "report", temp.file("all.db"), "--markdown", "--per-task", "1", "--tasks", "dynamics"])
        XCTAssertEqual(subset.status, 0, subset.output)
        XCTAssertTrue(subset.stdout.contains("| baseline | ") && subset.stdout.contains("/1 ("), subset.stdout)
        XCTAssertFalse(subset.stdout.contains("/3 ("), "rows 333 and 366 are not in --per-task 1: \(subset.stdout)")
        let none = try lvd(["bench", "report", temp.file("all.db"), "--method", "lvd"])
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.stderr.contains("all.db: no results for the --method/--tasks/--per-task chosen"), none.stderr)
        let badTask = try lvd(["bench", "report", temp.file("all.db"), "--tasks", "dynamic"])
        XCTAssertNotEqual(badTask.status, 0)
        XCTAssertTrue(badTask.stderr.contains("--tasks: unknown task 'dynamic'"), badTask.stderr)

        let bad = try lvd(["bench", "report", temp.file("cache.json")])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("cache.json: not an SQLite database"), bad.stderr)
        let badShard = try lvd(arguments + ["--shard", "2/2"])
        XCTAssertNotEqual(badShard.status, 0)
        XCTAssertTrue(badShard.stderr.contains("--shard must be k/n with 0 ≤ k < n, got '2/2'"), badShard.stderr)
    }

    /// kill -9 in the middle of a run loses no stored result; the same command finishes the rest
    /// and leaves each result once.
    func testKillNineThenResume() throws {
        let temp = try TempDir()
        let rows = Stage2Plan.rows(tasks: [.dynamics], perTask: 3)
        try writeCache(rows.map(\.prompt), to: temp.file("cache.json"))
        let arguments = ["bench", "stage2", "--method", "baseline", "--layouts", "cache:" + temp.file("cache.json"), "--tasks", "dynamics",
                         "--per-task", "3", "--steps", "1", "--db", temp.file("r.db"), "-o", temp.file("videos")]
        let process = lvdProcess(arguments)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        func stored() -> [ResultStore.Result] {
            (try? ResultStore(path: temp.file("r.db"), create: false).results()) ?? []
        }
        let deadline = Date().addingTimeInterval(300)
        while stored().isEmpty && Date() < deadline && process.isRunning { usleep(100_000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        let before = stored()
        XCTAssertGreaterThanOrEqual(before.count, 1)
        XCTAssertLessThan(before.count, 3, "killed before the end")
        let again = try lvd(arguments)
        XCTAssertEqual(again.status, 0, again.output)
        let after = stored()
        XCTAssertEqual(after.map(\.row), rows.map(\.index), "every row once")
        XCTAssertEqual(Array(after.prefix(before.count)), before, "the results stored before the kill are unchanged")
        XCTAssertTrue(again.stdout.contains("\(before.count) results resumed"), again.stdout)
    }
}
