import LVDFormats
import LVDGrounding
import XCTest

/// METHODS.md §4 test vectors: generation prompts, phrase refinement, token positions (including
/// the mid-token quirk), rasterisation (half-to-even, the negative-end slice rule).
final class GroundingTests: XCTestCase {
    /// Word tokens as CLIP writes them ("car</w>"), punctuation split off, BOS and EOS around.
    func tokens(_ text: String) -> [String] {
        var result = ["<|startoftext|>"]
        for word in text.lowercased().split(separator: " ") {
            var core = String(word)
            var trailing: [String] = []
            while let last = core.last, last == "," || last == "|" { trailing.insert(String(last) + "</w>", at: 0); core.removeLast() }
            var leading: [String] = []
            while let first = core.first, first == "|" { leading.append("|</w>"); core.removeFirst() }
            result += leading + (core.isEmpty ? [] : [core + "</w>"]) + trailing
        }
        return result + ["<|endoftext|>"]
    }

    func layout(_ names: [String], background: String, prompt: String) -> Layout {
        Layout(prompt: prompt, keyframes: [names.enumerated().map { Layout.Object(id: $0.offset, name: $0.element, box: [0, 0, 10, 10]) }],
               background: background)
    }

    func testGenerationPrompt() {
        XCTAssertEqual(Grounding.generationPrompt(layout(["car"], background: "street", prompt: "A realistic lively video of a scene with one moving car.")),
                       "A realistic lively video of a scene with one moving car, street background")
        XCTAssertEqual(Grounding.generationPrompt(layout(["blue cat", "white bird", "kitten"], background: "garden",
                                                         prompt: "A realistic lively video of a scene with a blue cat and a white bird")),
                       "A realistic lively video of a scene with a blue cat and a white bird, garden background| kitten")
        XCTAssertEqual(Grounding.generationPrompt(layout(["dog"], background: "", prompt: "a dog")), "a dog", "no background")
    }

    func testRefinement() {
        XCTAssertEqual(Grounding.refine("…with two moving cars, road background", "moving car").refined, "cars", "step 4: plural of the last word")
        XCTAssertEqual(Grounding.refine("a car 2 here", "car 2").refined, "car 2")
        XCTAssertEqual(Grounding.refine("two cars", "2 car").refined, "cars", "digits stripped, then plural")
        XCTAssertFalse(Grounding.refine("a scar", "car").found, "no match inside a word")
        XCTAssertTrue(Grounding.refine("a c++ compiler", "c++").found == false, "\\b cannot match after '+' followed by space (as Python)")
        XCTAssertTrue(Grounding.refine("price (usd) is", "(usd)").found == false, "metacharacters are literal [F]; \\b before '(' needs a word character")
        XCTAssertTrue(Grounding.refine("a.b", "a.b").found)
        XCTAssertFalse(Grounding.refine("axb", "a.b").found, "'.' is not a wildcard [F]")
        XCTAssertEqual(Grounding.plural("puppy"), "puppies")
        XCTAssertEqual(Grounding.plural("box"), "boxes")
        XCTAssertEqual(Grounding.plural("mouse"), "mice")
        XCTAssertEqual(Grounding.plural("toy"), "toys")
    }

    func testTokenPositions() throws {
        let car = "A realistic lively video of a scene with one moving car, street background"
        XCTAssertEqual(tokens(car).count, 16)
        XCTAssertEqual(try Grounding.positions(prompt: car, phrase: "moving car", tokens: tokens), [10, 11])
        XCTAssertEqual(try Grounding.positions(prompt: "A realistic lively video of a scene with two moving cars, road background",
                                               phrase: "moving car", tokens: tokens), [11])
        let kitten = "A realistic lively video of a scene with a blue cat and a white bird, garden background| kitten"
        XCTAssertEqual(try Grounding.positions(prompt: kitten, phrase: "kitten", tokens: tokens), [20])
        XCTAssertEqual(try Grounding.positions(prompt: kitten, phrase: "blue cat", tokens: tokens), [10, 11])
        XCTAssertEqual(try Grounding.positions(prompt: "a photo of an oscar statue and a car", phrase: "car", tokens: tokens), [6],
                       "the mid-token quirk: 'car</w>' first occurs inside 'oscar</w>'")
        XCTAssertThrowsError(try Grounding.positions(prompt: "a dog", phrase: "cat", tokens: tokens)) {
            XCTAssertTrue("\($0)".contains("phrase \"cat\" has no tokens in the prompt"))
        }
        let long = Array(repeating: "word", count: 80).joined(separator: " ") + " car"
        XCTAssertThrowsError(try Grounding.positions(prompt: long, phrase: "car", tokens: tokens)) {
            XCTAssertTrue("\($0)".contains("lies beyond token 77"), "\($0)")
        }
    }

    func testRasterisation() {
        func cells(_ box: [Double], _ h: Int, _ w: Int) -> (rows: [Int], cols: [Int]) {
            let mask = Grounding.rasterise(box, height: h, width: w)
            let on = mask.indices.filter { mask[$0] == 1 }
            return (Array(Set(on.map { $0 / w })).sorted(), Array(Set(on.map { $0 % w })).sorted())
        }
        XCTAssertEqual(cells([0.15625, 0.15625, 0.34375, 0.34375], 16, 16).cols, [2, 3, 4], "half to even: 2.5 → 2")
        let t1 = [0, 0.5, 0.195312, 0.695312]
        XCTAssertEqual(cells(t1, 16, 16).rows, [8, 9, 10])
        XCTAssertEqual(cells(t1, 16, 16).cols, [0, 1, 2])
        XCTAssertEqual(cells(t1, 8, 8).rows, [4, 5])
        XCTAssertEqual(cells(t1, 8, 8).cols, [0, 1])
        XCTAssertEqual(cells(t1, 20, 36).cols, Array(0..<7))
        XCTAssertEqual(cells(t1, 20, 36).rows, Array(10..<14))
        XCTAssertEqual(cells(t1, 10, 18).cols, Array(0..<4))
        XCTAssertEqual(cells(t1, 10, 18).rows, [5, 6])
        XCTAssertEqual(Grounding.rasterise([0, 0, 0, 0], height: 4, width: 4), Array(repeating: 0, count: 16), "absent")
        // Entirely left of the canvas, x1 = −2: Python's slice fills [0, W − 2).
        XCTAssertEqual(cells([-0.5, 0, -0.125, 0.5], 16, 16).cols, Array(0..<14))
    }
}
