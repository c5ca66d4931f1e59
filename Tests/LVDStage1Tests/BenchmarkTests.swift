import Foundation
import LVDFormats
import LVDStage1
import XCTest

final class ConditionTests: XCTestCase {
    func layout(_ boxes: [Int: [Double]]) -> Layout {
        Layout(prompt: "p", keyframes: (0..<6).map { k in boxes[k].map { [Layout.Object(id: 0, name: "bear", box: $0)] } ?? [] })
    }

    func assertRows(_ condition: Condition, _ expected: [Int: [Double]], accuracy: Double = 1e-6, file: StaticString = #filePath, line: UInt = #line) {
        for (j, box) in expected {
            for c in 0..<4 {
                XCTAssertEqual(condition.boxes[0][j][c], box[c], accuracy: accuracy, "frame \(j) coordinate \(c)", file: file, line: line)
            }
        }
    }

    /// STAGE1.md §5.4 T1: one object moving right.
    func testT1MovingRight() {
        let bear = layout(Dictionary(uniqueKeysWithValues: (0..<6).map { ($0, [85.0 * Double($0), 256, 100, 100]) }))
        let sixteen = Condition(bear, frames: 16)
        let xMin = [0.000000, 0.055338, 0.110676, 0.166014, 0.221352, 0.276690, 0.332028, 0.387366,
                    0.442704, 0.498042, 0.553380, 0.608718, 0.664056, 0.719394, 0.774732, 0.830070]
        assertRows(sixteen, Dictionary(uniqueKeysWithValues: xMin.enumerated().map { ($0.offset, [$0.element, 0.5, $0.element + 0.195312, 0.695312]) }))
        XCTAssertEqual(Condition.linspace(0, 1 - 1e-5, 16)[15], 0.99999, "the last query is exactly 1 − 1e-5")
        let twentyFour = [0, 0.036090, 0.072180, 0.108270, 0.144360, 0.180450, 0.216540, 0.252630, 0.288720, 0.324810, 0.360900, 0.396990,
                          0.433080, 0.469170, 0.505260, 0.541350, 0.577440, 0.613530, 0.649620, 0.685710, 0.721800, 0.757890, 0.793980, 0.830070]
        for (j, x) in Condition(bear, frames: 24).boxes[0].map({ $0[0] }).enumerated() { XCTAssertEqual(x, twentyFour[j], accuracy: 1e-6, "frame \(j)") }
        // N = 6: the keyframes shifted by the 1e-5 rule, to full double precision.
        XCTAssertEqual(Condition(bear, frames: 6).boxes[0].map { $0[0] },
                       [0.0, 0.16601396484375, 0.3320279296875, 0.49804189453125003, 0.664055859375, 0.8300698242187501])
    }

    /// T2: appearance at keyframe 4.
    func testT2Appearance() {
        let condition = Condition(layout([3: [50, 230, 120, 60], 4: [150, 230, 120, 60], 5: [250, 230, 120, 60]]), frames: 16)
        for j in 0..<8 { XCTAssertEqual(condition.boxes[0][j], [0, 0, 0, 0], "absent at \(j)") }
        let rows: [Int: Double] = [8: 0.097656, 9: 0.097656, 10: 0.162754, 11: 0.227857, 12: 0.292961, 13: 0.358064, 14: 0.423168, 15: 0.488271]
        assertRows(condition, rows.mapValues { [$0, 0.449219, $0 + 0.234375, 0.566406] })
    }

    /// T3: a gap at keyframe 2.
    func testT3Gap() {
        let condition = Condition(layout([0: [0, 100, 64, 64], 1: [64, 100, 64, 64], 3: [192, 100, 64, 64], 4: [256, 100, 64, 64], 5: [320, 100, 64, 64]]), frames: 16)
        XCTAssertEqual(condition.boxes[0][6], [0, 0, 0, 0])
        XCTAssertEqual(condition.boxes[0][7], [0, 0, 0, 0])
        assertRows(condition, [5: [0.208331, 0.195312, 0.333331, 0.320312], 8: [0.333330, 0.195312, 0.458330, 0.320312],
                               15: [0.624994, 0.195312, 0.749994, 0.320312]])
    }

    func testObjectsInOrderOfFirstAppearanceFirstNameLastBoxWins() {
        let layout = Layout(prompt: "p", keyframes: [
            [.init(id: 3, name: "cat 2", box: [0, 0, 10, 10])],
            [.init(id: 1, name: "dog", box: [0, 0, 10, 10]), .init(id: 3, name: "kitten", box: [0, 0, 10, 10]), .init(id: 3, name: "x", box: [512, 0, 10, 10])],
        ])
        let condition = Condition(layout, frames: 2, stripDigits: true)
        XCTAssertEqual(condition.ids, [3, 1])
        XCTAssertEqual(condition.names, ["cat", "dog"], "first name, digits stripped")
        XCTAssertEqual(condition.boxes[0][1][0], 1, accuracy: 1e-4, "the last box of a repeated id wins")
    }
}

final class BenchmarkTests: XCTestCase {
    func testBuiltPromptListEqualsTheReferenceTSV() throws {
        let path = try SharedData.require() + "/lvd_prompts.tsv"
        let reference = try Benchmark.readTSV(String(contentsOfFile: path, encoding: .utf8), source: path)
        XCTAssertEqual(reference.count, 500)
        XCTAssertEqual(Benchmark.rows.count, 500)
        for (ours, theirs) in zip(Benchmark.rows, reference) {
            XCTAssertEqual(ours, theirs, "row \(theirs.index)")
        }
        XCTAssertEqual(Set(Benchmark.rows.map(\.prompt)).count, 184)
        XCTAssertEqual(Benchmark.rows[100].detectorTexts, ["a photo of a blue cat", "a photo of a white bird"])
        XCTAssertEqual(Benchmark.rows[101].detectorTexts, ["a photo of a yellow dog", "a photo of a green ball"])
    }

    /// STAGE1.md §7.8: the reference GPT-3.5 cache scores 100 / 100 / 100 / 73 / 15, 388/500.
    func testReferenceCacheReproducesThePublishedStage1Table() throws {
        let path = try SharedData.require() + "/cache_lvd_v0.1_gpt-3.5-turbo.json"
        let cache = try XCTUnwrap(try JSONValue.parse(String(contentsOfFile: path, encoding: .utf8)).objectValue)
        XCTAssertEqual(cache.count, 184)
        let occurrences = Benchmark.occurrences(Benchmark.rows)
        var board = Scoreboard()
        for (row, occurrence) in zip(Benchmark.rows, occurrences) {
            let answers = try XCTUnwrap(cache[row.prompt]?.arrayValue, row.prompt)
            XCTAssertLessThan(occurrence, answers.count, "one answer per occurrence")
            let layout = try ResponseParser.parse(try XCTUnwrap(answers[occurrence].stringValue), caption: row.prompt)
            board.outcomes.append(.init(row: row, success: Benchmark.success(row, layout: layout)))
        }
        let counts = Benchmark.Task.allCases.map { board.count($0).successes }
        XCTAssertEqual(counts, [100, 100, 100, 73, 15])
        XCTAssertEqual(board.count(nil).successes, 388)
        XCTAssertTrue(board.text.contains("388/500 = 77.6%"), board.text)
    }

    func testLegacyNumPyDrawsAndPredicates() {
        // Two-object rows draw two permutations per seed: rows 350 and 351 differ.
        XCTAssertNotEqual(Benchmark.rows[350].prompt, Benchmark.rows[351].prompt)
        let sequential = Benchmark.Predicate.sequential(names: ["car"], first: .lowerLeft, middle: .lowerRight, last: .upperRight)
        func condition(_ boxes: [[Double]], name: String = "moving car") -> Condition {
            Condition(Layout(prompt: "", keyframes: boxes.map { [Layout.Object(id: 0, name: name, box: $0)] }), frames: 6, stripDigits: true)
        }
        let path = [[50.0, 300, 100, 100], [100, 300, 100, 100], [200, 300, 100, 100], [350, 300, 100, 100], [350, 150, 100, 100], [350, 50, 100, 100]]
        XCTAssertTrue(sequential.evaluate(condition(path)))
        XCTAssertFalse(sequential.evaluate(condition(path, name: "cart")), "\"cart\" does not match \"car\"")
        XCTAssertTrue(sequential.evaluate(condition(path, name: "scar")), "\"scar\" matches \"car\" (reference quirk)")
        // A centre exactly at 0.5 is on neither side (frame 0 is the keyframe itself).
        var centred = path
        centred[0] = [206, 300, 100, 100]
        XCTAssertFalse(sequential.evaluate(condition(centred)))
        // valid() tests x_max and y_max, not the size: a zero-size box away from the origin is present.
        XCTAssertTrue(Benchmark.Predicate.numeracy(names: ["car"], count: 1).evaluate(condition(Array(repeating: [512, 231, 0, 0], count: 6))))
        XCTAssertFalse(Benchmark.Predicate.numeracy(names: ["car"], count: 1).evaluate(condition(Array(repeating: [0, 100, 0, 50], count: 6))))
    }
}
