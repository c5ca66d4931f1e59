import LVDFormats
import LVDStage1

/// The layout machinery every grounding method shares (METHODS.md §4): the generation prompt,
/// phrase refinement, token positions of a phrase, and box rasterisation onto attention grids.
public enum Grounding {
    // MARK: §4.1 Generation prompt

    /// key(caption), then ", {background} background", then "| name" for every object name the
    /// prompt (as extended so far) does not already contain.
    public static func generationPrompt(_ layout: Layout) -> String {
        var prompt = Stage1.key(layout.prompt)
        if !layout.background.isEmpty { prompt += ", " + layout.background + " background" }
        for name in objectNames(layout) where !refine(prompt, name).found { prompt += "| " + name }
        return prompt
    }

    /// The LLM names of the layout's objects in order of first appearance (first name kept).
    public static func objectNames(_ layout: Layout) -> [String] { Condition(layout, frames: 1).names }

    // MARK: §4.2 Phrase refinement

    /// (found, refined): the phrase, then stripped of digits and spaces, then its last word,
    /// then that word's plural — the first that occurs in `prompt` between word boundaries
    /// (case-sensitive; regular-expression characters taken literally [F]).
    public static func refine(_ prompt: String, _ phrase: String) -> (found: Bool, refined: String) {
        let text = Array(prompt.unicodeScalars)
        var candidate = phrase
        if matches(text, candidate) { return (true, candidate) }
        candidate = String(String.UnicodeScalarView(Array(candidate.unicodeScalars).strippedScalars(Set("0123456789 ".unicodeScalars))))
        if matches(text, candidate) { return (true, candidate) }
        candidate = candidate.split(separator: " ", omittingEmptySubsequences: false).last.map(String.init) ?? candidate
        if matches(text, candidate) { return (true, candidate) }
        candidate = plural(candidate)
        if matches(text, candidate) { return (true, candidate) }
        return (false, candidate)
    }

    /// Whether `\b` + candidate + `\b` (candidate literal) matches somewhere in `text`, with
    /// Python's Unicode word characters (letters, digits, underscore).
    static func matches(_ text: [Unicode.Scalar], _ candidate: String) -> Bool {
        let c = Array(candidate.unicodeScalars)
        func word(_ i: Int) -> Bool { i >= 0 && i < text.count && isWord(text[i]) }
        guard c.count <= text.count else { return false }
        for start in 0...(text.count - c.count) where text[start..<(start + c.count)].elementsEqual(c) {
            let end = start + c.count
            let before = c.first.map(isWord) ?? word(end), after = c.last.map(isWord) ?? word(start - 1)
            if word(start - 1) != before && word(end) != after { return true }
        }
        return false
    }

    static func isWord(_ c: Unicode.Scalar) -> Bool {
        c == "_" || c.properties.isAlphabetic || c.properties.numericType != nil
    }

    /// English plural: a table of irregular nouns, then the regular rules.
    public static func plural(_ word: String) -> String {
        let irregular = ["person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice", "goose": "geese",
                         "foot": "feet", "tooth": "teeth", "fish": "fish", "sheep": "sheep", "deer": "deer", "leaf": "leaves",
                         "knife": "knives", "wife": "wives", "life": "lives", "wolf": "wolves", "calf": "calves", "half": "halves",
                         "shelf": "shelves", "loaf": "loaves", "thief": "thieves"]
        if let plural = irregular[word] { return plural }
        if word.isEmpty { return word }
        let vowels = Set("aeiou")
        if word.hasSuffix("s") || word.hasSuffix("x") || word.hasSuffix("z") || word.hasSuffix("ch") || word.hasSuffix("sh") { return word + "es" }
        if word.hasSuffix("y"), word.count > 1, !vowels.contains(word.dropLast().last!) { return word.dropLast() + "ies" }
        return word + "s"
    }

    // MARK: §4.3 Token positions

    public struct PositionError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Positions (absolute, BOS = 0) of `phrase`'s tokens in `prompt`, found as the reference
    /// finds them: the refined phrase's token strings joined with spaces, searched as plain text
    /// in the prompt's joined token strings (so a match inside a longer token gives that token's
    /// index + 1, a quirk kept). `tokens(text)` gives BOS, the text's tokens, EOS.
    /// When the refined phrase is not there, the unrefined name's tokens are searched [F].
    public static func positions(prompt: String, phrase: String, maxTokens: Int = 77,
                                 tokens: (String) throws -> [String]) throws -> [Int] {
        let full = try tokens(prompt)
        let joined = Array(full.joined(separator: " ").unicodeScalars)
        func search(_ text: String) throws -> [Int]? {
            let inner = Array(try tokens(text).dropFirst().dropLast())
            guard !inner.isEmpty else { return nil }
            let sub = Array(inner.joined(separator: " ").unicodeScalars)
            guard let index = joined.firstIndex(of: sub) else { return nil }
            // Python: len(full[:idx - 1].split(" ")) — idx ≥ 1 here (BOS comes first).
            let head = joined[..<Swift.max(index - 1, 0)]
            let first = head.split(separator: " ", omittingEmptySubsequences: false).count
            return Array(first..<(first + inner.count))
        }
        let refined = refine(prompt, phrase).refined
        guard let found = try search(refined) ?? search(phrase) else {
            throw PositionError(description: "phrase \"\(phrase)\" has no tokens in the prompt \"\(prompt)\"")
        }
        guard let last = found.last, last < maxTokens else {
            throw PositionError(description: "phrase \"\(phrase)\" lies beyond token \(maxTokens) of the prompt (\(full.count) tokens): shorten the prompt or the layout's names")
        }
        return found
    }

    // MARK: §4.4 Rasterisation

    /// The cells of a normalised xyxy box on an `height` × `width` grid (row-major, 1 inside):
    /// corners and sizes rounded half to even separately, clamped, and a negative end counted
    /// from the far side as Python's slices do (a reference quirk kept).
    public static func rasterise(_ box: [Double], height: Int, width: Int) -> [Float] {
        let bounds = rasterBounds(box, height: height, width: width)
        var mask = [Float](repeating: 0, count: height * width)
        guard bounds.y1 > bounds.y0, bounds.x1 > bounds.x0 else { return mask }
        for y in bounds.y0..<bounds.y1 { for x in bounds.x0..<bounds.x1 { mask[y * width + x] = 1 } }
        return mask
    }

    /// Rows y0..<y1 and columns x0..<x1 the box fills (empty when y1 ≤ y0 or x1 ≤ x0), and the
    /// rasteriser's own x1, y1 (exclusive, before the slice rule) that BoxDiff's corners use.
    public static func rasterBounds(_ box: [Double], height: Int, width: Int) -> (x0: Int, y0: Int, x1: Int, y1: Int, rawX1: Int, rawY1: Int) {
        if box == [0, 0, 0, 0] { return (0, 0, 0, 0, 0, 0) }
        func round(_ v: Double) -> Int { Int(v.rounded(.toNearestOrEven)) }
        var x0 = round(box[0] * Double(width)), y0 = round(box[1] * Double(height))
        let bw = round((box[2] - box[0]) * Double(width)), bh = round((box[3] - box[1]) * Double(height))
        var x1 = x0 + bw, y1 = y0 + bh
        x0 = Swift.max(x0, 0); y0 = Swift.max(y0, 0); x1 = Swift.min(x1, width); y1 = Swift.min(y1, height)
        let endX = x1 >= 0 ? x1 : Swift.max(width + x1, 0), endY = y1 >= 0 ? y1 : Swift.max(height + y1, 0)
        return (x0, y0, Swift.min(endX, width), Swift.min(endY, height), x1, y1)
    }
}

extension Array where Element == Unicode.Scalar {
    func strippedScalars(_ set: Set<Unicode.Scalar>) -> [Unicode.Scalar] {
        guard let first = firstIndex(where: { !set.contains($0) }) else { return [] }
        let last = lastIndex(where: { !set.contains($0) })!
        return Array(self[first...last])
    }

    /// First index where `needle` starts.
    func firstIndex(of needle: [Unicode.Scalar]) -> Int? {
        guard !needle.isEmpty, needle.count <= count else { return nil }
        for i in 0...(count - needle.count) where self[i] == needle[0] && self[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }
}
