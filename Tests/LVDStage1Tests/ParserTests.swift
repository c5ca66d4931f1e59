import Foundation
import LVDFormats
import LVDStage1
import XCTest

/// ../shared/data/lvd-benchmark beside the checkout, when present.
enum SharedData {
    static let benchmark: String? = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        let path = url.path + "/shared/data/lvd-benchmark"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }()

    static func require() throws -> String {
        guard let benchmark else { throw XCTSkip("../shared/data/lvd-benchmark is not beside the checkout") }
        return benchmark
    }
}

final class PythonLiteralTests: XCTestCase {
    func testAcceptsTheSubsetLLMsWrite() throws {
        let cases: [(String, PythonValue)] = [
            ("[]", .list([])),
            ("[1, 2,]", .list([.int(1), .int(2)])),
            ("(1,)", .tuple([.int(1)])),
            ("(1)", .int(1)),
            ("()", .tuple([])),
            ("{'a': 1, \"b\": -2.5}", .dict([(.string("a"), .int(1)), (.string("b"), .float(-2.5))])),
            ("{'a': 1, 'a': 2}", .dict([(.string("a"), .int(2))])),
            ("'driver\\'s car'", .string("driver's car")),
            ("\"driver's car\"", .string("driver's car")),
            ("'a' 'b'", .string("ab")),
            ("'\\x41\\u00e9\\n\\t\\\\'", .string("Aé\n\t\\")),
            ("r'\\d'", .string("\\d")),
            ("u'x'", .string("x")),
            ("'''tri'ple'''", .string("tri'ple")),
            ("'\\q'", .string("\\q")),
            ("1_000", .int(1000)),
            ("0x1F", .int(31)),
            ("0o17", .int(15)),
            ("0b101", .int(5)),
            ("+7", .int(7)),
            ("- 5", .int(-5)),
            (".5", .float(0.5)),
            ("5.", .float(5)),
            ("3e1", .float(30)),
            ("-2.25", .float(-2.25)),
            ("00", .int(0)),
            ("[True, False, None]", .list([.bool(true), .bool(false), .none])),
            ("[1, # a comment\n 2] # trailing", .list([.int(1), .int(2)])),
            ("\n\t[ 1 ,\r\n 2 ]\n", .list([.int(1), .int(2)])),
            ("[{'id': 0, 'name': 'car', 'box': (1, 2.0, 3, 4)}]",
             .list([.dict([(.string("id"), .int(0)), (.string("name"), .string("car")), (.string("box"), .tuple([.int(1), .float(2), .int(3), .int(4)]))])])),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(try PythonLiteral.evaluate(text), expected, text)
        }
    }

    func testRefusesEverythingElse() {
        let cases: [(String, String)] = [
            ("", "empty literal"),
            ("[1, 2", "expected ',' or ']'"),
            ("[1 2]", "expected ',' or ']'"),
            ("100+20", "unexpected '+' after the literal"),
            ("foo", "'foo' is a name"),
            ("print(1)", "'print' is a name"),
            ("{1, 2}", "sets are not supported"),
            ("`[1]`", "unexpected '`'"),
            ("'abc", "unterminated string"),
            ("'a\nb'", "line break inside a string"),
            ("007", "leading zeros"),
            ("12abc", "unexpected 'a' after a number"),
            ("1j", "complex numbers"),
            ("[1][2]", "after the literal"),
            ("-'a'", "a sign must be followed by a number"),
            ("{[1]: 2}", "a list cannot be a dict key"),
            ("'\\x4'", "truncated \\x escape"),
            ("99999999999999999999", "too large"),
            (String(repeating: "[", count: 500), "nesting deeper than 200"),
        ]
        for (text, needle) in cases {
            XCTAssertThrowsError(try PythonLiteral.evaluate(text), text) { error in
                XCTAssertTrue("\(error)".contains(needle), "\(text): \(error)")
            }
        }
    }
}

final class ResponseParserTests: XCTestCase {
    static let frames = [
        "[{'id': 0, 'name': 'running dog', 'box': [0, 300, 110, 90]}, {'id': 1, 'name': 'bird', 'box': [300, 120, 40, 30]}]",
        "[{'id': 0, 'name': 'running dog', 'box': [60, 300, 110, 90]}, {'id': 1, 'name': 'bird', 'box': [310, 80, 40, 30]}]",
        "[{'id': 0, 'name': 'running dog', 'box': [120, 300, 110, 90]}, {'id': 1, 'name': 'bird', 'box': [320, 40, 40, 30]}]",
        "[{'id': 0, 'name': 'running dog', 'box': [180, 300, 110, 90]}, {'id': 1, 'name': 'bird', 'box': [330, 5, 40, 30]}]",
        "[{'id': 0, 'name': 'running dog', 'box': [240, 300, 110, 90]}]",
        "[{'id': 0, 'name': 'running dog', 'box': [300, 300, 110, 90]}]",
    ]

    /// An answer from frame lines (each given its "Frame k: " prefix) and a tail.
    func answer(_ frames: [String] = frames, prefix: (Int) -> String = { "Frame \($0): " }, between: String = "\n",
                head: String = "Reasoning: The dog runs right; the bird flies off.\n", tail: String = "\nBackground keyword: park") -> String {
        head + frames.enumerated().map { prefix($0.offset + 1) + $0.element }.joined(separator: between) + tail
    }

    func parse(_ text: String, caption: String = " A dog and a bird... ") throws -> Layout {
        try ResponseParser.parse(text, caption: caption)
    }

    func testWellFormedAnswer() throws {
        let layout = try parse(answer())
        XCTAssertEqual(layout.prompt, "A dog and a bird", "key(): stripped, trailing dots removed")
        XCTAssertEqual(layout.reasoning, "The dog runs right; the bird flies off.")
        XCTAssertEqual(layout.background, "park")
        XCTAssertEqual(layout.keyframes.count, 6)
        XCTAssertEqual(layout.keyframes[0], [.init(id: 0, name: "running dog", box: [0, 300, 110, 90]), .init(id: 1, name: "bird", box: [300, 120, 40, 30])])
        XCTAssertEqual(layout.keyframes[5].count, 1)
    }

    /// One case per row of STAGE1.md §4.3 that the reference tolerates.
    func testToleratedDeviations() throws {
        XCTAssertEqual(try parse(answer(head: "Sure! Here is the layout.\n")).keyframes.count, 6, "leading prose")
        XCTAssertNil(try parse(answer(head: "")).reasoning, "no reasoning line")
        XCTAssertEqual(try parse(answer(between: "\n\n\n")).keyframes[1][0].box, [60, 300, 110, 90], "blank lines")
        XCTAssertEqual(try parse(answer(Self.frames.map { "`\($0)`" })).keyframes[2][1].name, "bird", "backticks around a list")
        XCTAssertEqual(try parse(answer(head: "```\n", tail: "\nBackground keyword: park\n```")).background, "park", "fence lines of backticks")
        XCTAssertEqual(try parse(answer(Self.frames.map { $0 + " # The car is partially out of the frame." })).keyframes[3].count, 2, "trailing # comment")
        XCTAssertEqual(try parse(answer(Self.frames.map { $0 + " - the dog keeps running" })).keyframes[4].count, 1, "trailing - comment")
        XCTAssertEqual(try parse(answer(Self.frames.map { "- " + $0 })).keyframes[0].count, 2, "a leading - inside the content")
        var withEmpty = Self.frames
        withEmpty[5] = "[]"
        XCTAssertEqual(try parse(answer(withEmpty)).keyframes[5], [], "empty frame")
        var loose = Self.frames.map { $0.replacingOccurrences(of: "'", with: "\"") }
        loose[0] = loose[0].replacingOccurrences(of: "[0, 300, 110, 90]", with: "(-0.5, 300.25, 110, 90)")
        XCTAssertEqual(try parse(answer(loose)).keyframes[0][0].box, [-0.5, 300.25, 110, 90], "double quotes, floats, negatives, tuples")
        let outside = Self.frames.map { $0.replacingOccurrences(of: "[300, 120, 40, 30]", with: "[600, -20, 0, 0]") }
        XCTAssertEqual(try parse(answer(outside)).keyframes[0][1].box, [600, -20, 0, 0], "boxes outside the canvas and zero-size kept unchanged")
        XCTAssertEqual(try parse(answer(Self.frames.map { $0.replacingOccurrences(of: "'name'", with: "'keyword'") })).keyframes[0][0].name, "running dog", "keyword for name")
        XCTAssertEqual(try parse(answer(tail: "\nBackground keyword: park\nNote: sunny day")).background, "park\nNote: sunny day", "extra text joins the background")
        XCTAssertEqual(try parse(answer(prefix: { $0 == 1 ? "- Frame 1: " : "Frame \($0): " })).keyframes.count, 6, "a bullet before Frame 1 is harmless")
        XCTAssertEqual(try parse(answer(prefix: { "### Frame \($0): " })).keyframes[1].count, 2, "markdown headings: the #s form a comment")
        XCTAssertEqual(try parse(answer(tail: "\r\nBackground keyword: street\r\n").replacingOccurrences(of: "\n", with: "\r\n")).background, "street", "CRLF normalised [F]")
        XCTAssertEqual(try parse(answer(tail: "\nBackground keyword:")).background, "", "no background")
    }

    /// One case per failing row of §4.3, each error naming the problem and quoting the line.
    func testFailuresQuoteTheOffendingLine() {
        let cases: [(String, String)] = [
            (answer(prefix: { $0 == 3 ? "- Frame 3: " : "Frame \($0): " }), "Frame 2: is not a Python literal"),
            (answer(prefix: { "**Frame \($0):** " }), "Frame 1: is not a Python literal"),
            (answer(prefix: { $0 == 2 ? "1. Frame 2: " : "Frame \($0): " }), "Frame 1: is not a Python literal"),
            (answer(head: "Reasoning: unlike Frame 1: above\n"), "\"Frame 2:\" is missing (after Frame 1:)"),
            (answer(Self.frames.map { $0.replacingOccurrences(of: "running dog", with: "dog - running") }), "Frame 1: is not a Python literal"),
            (answer(Array(Self.frames.prefix(5)), tail: "\nBackground keyword: park"), "\"Frame 6:\" is missing"),
            (answer(tail: ""), "\"Background keyword:\" is missing"),
            (answer(Self.frames + ["[]"]), "Frame 6: is not a Python literal (unexpected 'F' after the literal"),
            (answer(Self.frames.map { "```python\n" + $0 }), "is not a Python literal"),
            ("I cannot help with that.", "no \"Frame 1:\" in the answer: \"I cannot help with that.\""),
            ("", "no \"Frame 1:\" in the answer"),
            (answer(Self.frames.map { $0.replacingOccurrences(of: "'id': 0", with: "'id': 'zero'") }), "Frame 1: object 1: 'id' must be an integer, got 'zero'"),
            (answer(Self.frames.map { $0.replacingOccurrences(of: "[0, 300, 110, 90]", with: "[0, 300, 110]") }), "Frame 1: object 1: 'box' must start with four numbers"),
            (answer(Self.frames.map { $0.replacingOccurrences(of: ", 'name': 'running dog'", with: "") }), "Frame 1: object 1: has no 'name'"),
            (answer(["{'id': 0}"] + Self.frames.dropFirst()), "Frame 1: must be a list of objects, got a dict"),
            (answer(["[1, 2]"] + Self.frames.dropFirst()), "Frame 1: object 1: must be a dict, got an integer"),
        ]
        for (text, needle) in cases {
            XCTAssertThrowsError(try parse(text), needle) { error in
                XCTAssertTrue("\(error)".contains(needle), "expected \(needle), got: \(error)")
            }
        }
        // The quoted line is the offending frame's.
        XCTAssertThrowsError(try parse(answer(["[{'id': 0, 'name': 'car', 'box': [1, 2, 3, 4]}, oops]"] + Self.frames.dropFirst()))) {
            XCTAssertTrue("\($0)".hasSuffix(": \"Frame 1: [{'id': 0, 'name': 'car', 'box': [1, 2, 3, 4]}, oops]\""), "\($0)")
        }
    }

    func testKeyNormalisation() {
        XCTAssertEqual(Stage1.key("  abc..  "), "abc")
        XCTAssertEqual(Stage1.key("abc. ."), "abc. ", "whitespace exposed by rstrip('.') stays")
        XCTAssertEqual(Stage1.key("\u{3000}x\n"), "x", "Unicode white space")
    }

    /// Mutated answers (bytes dropped, duplicated, swapped, replaced by characters that matter to
    /// the grammar) never crash the parser: each is a layout or an error with a message.
    func testFuzzedAnswersNeverCrash() throws {
        var seed: UInt64 = 0x5EED
        func random(_ n: Int) -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int((seed >> 33) % UInt64(n))
        }
        let base = Array(answer().unicodeScalars)
        let alphabet = Array("[](){}'\",:#-` \n\\0123456789.eExjTFN_\u{0}é🙂".unicodeScalars)
        var parsed = 0, failed = 0
        for _ in 0..<100_000 {
            var text = base
            for _ in 0..<(1 + random(4)) {
                let at = random(text.count)
                switch random(4) {
                case 0: text.remove(at: at)
                case 1: text.insert(alphabet[random(alphabet.count)], at: at)
                case 2: text[at] = alphabet[random(alphabet.count)]
                default: text.insert(contentsOf: text[at..<Swift.min(text.count, at + random(40))], at: at)
                }
            }
            var view = String.UnicodeScalarView()
            view.append(contentsOf: text)
            do { _ = try ResponseParser.parse(String(view), caption: "c"); parsed += 1 } catch {
                XCTAssertFalse("\(error)".isEmpty)
                failed += 1
            }
        }
        XCTAssertEqual(parsed + failed, 100_000)
        XCTAssertGreaterThan(parsed, 1000, "many mutations are harmless")
        XCTAssertGreaterThan(failed, 1000, "many are caught")
    }
}
