import LVDFormats

/// Python's `str.isspace()` characters: what `strip()` with no argument removes.
func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
    c.properties.isWhitespace || ("\u{1C}"..."\u{1F}").contains(c)
}

extension Array where Element == Unicode.Scalar {
    /// Python's `strip(chars)` (or `strip()` with `chars` nil).
    func pythonStripped(_ chars: Set<Unicode.Scalar>? = nil) -> ArraySlice<Unicode.Scalar> {
        let keep: (Unicode.Scalar) -> Bool = { c in chars.map { !$0.contains(c) } ?? !isPythonSpace(c) }
        guard let first = firstIndex(where: keep) else { return [] }
        let last = lastIndex(where: keep)!
        return self[first...last]
    }

    /// Index of the first occurrence of `needle` at or after `from`, as Python's `str.find`.
    func find(_ needle: [Unicode.Scalar], from: Int = 0) -> Int? {
        guard needle.count <= count else { return nil }
        var i = from
        while i + needle.count <= count {
            if self[i] == needle[0] && self[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}

extension String {
    init<S: Sequence>(scalars: S) where S.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self.init(view)
    }
}

/// Stage-1 conventions shared by planners and evaluators.
public enum Stage1 {
    /// The cache key and query text of a caption (STAGE1.md §3.1): `caption.strip().rstrip(".")`.
    public static func key(_ caption: String) -> String {
        var scalars = Array(Array(caption.unicodeScalars).pythonStripped())
        while scalars.last == "." { scalars.removeLast() }
        return String(scalars: scalars)
    }
}

/// An LLM answer that does not parse: the reason and, when there is one, the line it concerns.
public struct ResponseParseError: Error, CustomStringConvertible, Equatable, Sendable {
    public var reason: String
    public var line: String?

    public init(reason: String, line: String?) {
        self.reason = reason
        self.line = line
    }

    public var description: String {
        guard let line else { return reason }
        let quoted = line.count > 160 ? String(line.prefix(160)) + "…" : line
        return "\(reason): \"\(quoted)\""
    }
}

/// The parser of LLM answers in the DSL text format (STAGE1.md §2, §4): tolerant exactly where
/// the reference is (leading prose, blank lines, backticks, trailing `#` or ` - ` comments, a
/// leading `-` in a frame, python-literal lists with single or double quotes, tuples, floats),
/// strict elsewhere.
public enum ResponseParser {
    public static let keyframeCount = 6
    static let markers = (1...keyframeCount).map { "Frame \($0):" } + ["Background keyword:"]
    /// Strip set of the reference: space, tab, line feed, backtick.
    static let stripSet: Set<Unicode.Scalar> = [" ", "\t", "\n", "`"]

    /// The layout of `response`, planned for `caption` (its prompt is `Stage1.key(caption)`).
    public static func parse(_ response: String, caption: String) throws(ResponseParseError) -> Layout {
        // Line endings normalised first [F]: no stray "\r" in the background.
        var text: [Unicode.Scalar] = []
        text.reserveCapacity(response.unicodeScalars.count)
        for c in response.unicodeScalars {
            if c == "\n" && text.last == "\r" { text[text.count - 1] = "\n" } else { text.append(c == "\r" ? "\n" : c) }
        }
        let markerScalars = markers.map { Array($0.unicodeScalars) }
        guard let first = text.find(markerScalars[0]) else {
            throw ResponseParseError(reason: "no \"Frame 1:\" in the answer", line: firstLine(text))
        }
        // Only the text between the first and a second "Frame 1:" counts (split(M[0])[1]).
        let afterFirst = first + markerScalars[0].count
        let end = text.find(markerScalars[0], from: afterFirst) ?? text.count
        var rest = Array(text[afterFirst..<end])
        let reasoning = Self.reasoning(Array(text[..<first]))

        var keyframes: [[Layout.Object]] = []
        for index in 0..<keyframeCount {
            let label = markers[index], nextMarker = markers[index + 1]
            guard let j = rest.find(markerScalars[index + 1]) else {
                throw ResponseParseError(reason: "\"\(nextMarker)\" is missing (after \(label))", line: nil)
            }
            var content = Array(Array(rest[..<j]).pythonStripped(stripSet))
            if let cut = content.find(Array(" - ".unicodeScalars)) { content = Array(content[..<cut]) }
            content = Array(content.pythonStripped())
            if content.first == "-" { content = Array(Array(content.dropFirst()).pythonStripped()) }
            let line = label + " " + String(scalars: content)
            let value: PythonValue
            do { value = try PythonLiteral.evaluate(String(scalars: content)) } catch {
                throw ResponseParseError(reason: "\(label) is not a Python literal (\(error))", line: line)
            }
            keyframes.append(try objects(value, label: label, line: line))
            rest = Array(rest[(j + markerScalars[index + 1].count)...])
        }
        let background = String(scalars: rest.pythonStripped(stripSet))
        return Layout(prompt: Stage1.key(caption), reasoning: reasoning, keyframes: keyframes, background: background)
    }

    /// The objects of one keyframe: a list or tuple of dicts with `id` (an integer), `name` (or
    /// `keyword`) and `box` (its first four elements numbers: x, y, w, h on the canvas).
    static func objects(_ value: PythonValue, label: String, line: String) throws(ResponseParseError) -> [Layout.Object] {
        guard let items = value.sequence else {
            throw ResponseParseError(reason: "\(label) must be a list of objects, got \(kind(value))", line: line)
        }
        guard items.count <= Layout.maxObjectsPerKeyframe else {
            throw ResponseParseError(reason: "\(label) has \(items.count) objects (at most \(Layout.maxObjectsPerKeyframe))", line: line)
        }
        var result: [Layout.Object] = []
        for (position, item) in items.enumerated() {
            func fail(_ reason: String) -> ResponseParseError {
                ResponseParseError(reason: "\(label) object \(position + 1): \(reason)", line: line)
            }
            guard case .dict = item else { throw fail("must be a dict, got \(kind(item))") }
            guard let idValue = item["id"] else { throw fail("has no 'id'") }
            guard case .int(let id) = idValue else { throw fail("'id' must be an integer, got \(idValue.repr)") }
            guard let nameValue = item["name"] ?? item["keyword"] else { throw fail("has no 'name'") }
            guard case .string(let name) = nameValue else { throw fail("'name' must be a string, got \(nameValue.repr)") }
            guard let boxValue = item["box"] else { throw fail("has no 'box'") }
            guard let box = boxValue.sequence, box.count >= 4, let numbers = Optional(box.prefix(4).compactMap(\.number)), numbers.count == 4,
                  numbers.allSatisfy(\.isFinite) else {
                throw fail("'box' must start with four numbers [x, y, w, h], got \(boxValue.repr)")
            }
            result.append(Layout.Object(id: id, name: name, box: numbers))
        }
        return result
    }

    /// The reasoning statement before the frames, if the answer has one.
    static func reasoning(_ head: [Unicode.Scalar]) -> String? {
        let marker = Array("Reasoning:".unicodeScalars)
        let start = head.find(marker).map { $0 + marker.count } ?? 0
        let text = String(scalars: Array(head[start...]).pythonStripped(stripSet))
        return text.isEmpty ? nil : text
    }

    static func firstLine(_ text: [Unicode.Scalar]) -> String? {
        let line = text.split(separator: "\n").first.map { String(scalars: $0) }
        return line?.isEmpty == false ? line : nil
    }

    static func kind(_ value: PythonValue) -> String {
        switch value {
        case .int: return "an integer"
        case .float: return "a number"
        case .string: return "a string"
        case .bool: return "a boolean"
        case .none: return "None"
        case .list: return "a list"
        case .tuple: return "a tuple"
        case .dict: return "a dict"
        }
    }
}
