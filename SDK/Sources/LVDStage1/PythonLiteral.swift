/// A value of the Python literal subset LLM layouts are written in (STAGE1.md §4.2): what
/// Python's `ast.literal_eval` would return for lists, tuples, dicts, strings, numbers and
/// True / False / None.
public indirect enum PythonValue: Equatable, Sendable {
    case int(Int)
    case float(Double)
    case string(String)
    case bool(Bool)
    case none
    case list([PythonValue])
    case tuple([PythonValue])
    case dict([(key: PythonValue, value: PythonValue)])

    public static func == (a: PythonValue, b: PythonValue) -> Bool {
        switch (a, b) {
        case let (.int(x), .int(y)): return x == y
        case let (.float(x), .float(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.none, .none): return true
        case let (.list(x), .list(y)), let (.tuple(x), .tuple(y)): return x == y
        case let (.dict(x), .dict(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// A number as a double (ints and floats; Python's bool is not taken for a number here).
    public var number: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .float(let value): return value
        default: return nil
        }
    }

    /// The elements of a list or tuple.
    public var sequence: [PythonValue]? {
        switch self {
        case .list(let items), .tuple(let items): return items
        default: return nil
        }
    }

    /// The value stored under string key `key` of a dict (the last one, as Python's dict keeps).
    public subscript(key: String) -> PythonValue? {
        guard case .dict(let pairs) = self else { return nil }
        return pairs.last { $0.key == .string(key) }?.value
    }

    /// Python's repr, for messages.
    public var repr: String {
        switch self {
        case .int(let value): return String(value)
        case .float(let value): return "\(value)"
        case .string(let value): return "'" + value.replacingAll("\\", "\\\\").replacingAll("'", "\\'") + "'"
        case .bool(let value): return value ? "True" : "False"
        case .none: return "None"
        case .list(let items): return "[" + items.map(\.repr).joined(separator: ", ") + "]"
        case .tuple(let items): return "(" + items.map(\.repr).joined(separator: ", ") + (items.count == 1 ? ",)" : ")")
        case .dict(let pairs): return "{" + pairs.map { $0.key.repr + ": " + $0.value.repr }.joined(separator: ", ") + "}"
        }
    }
}

extension String {
    func replacingAll(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

/// Why a text is not a Python literal, and at which character (0-based, in Unicode scalars).
public struct PythonLiteralError: Error, CustomStringConvertible, Equatable, Sendable {
    public var offset: Int
    public var reason: String
    public var description: String { "\(reason) at character \(offset + 1)" }
}

/// Evaluates a Python literal as `ast.literal_eval` does for the subset of STAGE1.md §4.2:
/// lists, tuples, dicts (trailing commas allowed), strings in single, double or triple quotes
/// with escapes, optional r/u prefixes and adjacent-literal concatenation, ints (decimal with
/// underscores, 0x/0o/0b), floats, a unary sign on a number, True/False/None, white space and
/// `#` comments anywhere between tokens. Everything else — names, operators, calls, sets,
/// bytes, f-strings — is an error.
public struct PythonLiteral {
    private let scalars: [Unicode.Scalar]
    private var position = 0
    /// Nesting limit: deeper input is refused rather than risking the stack.
    static let maxDepth = 200

    public static func evaluate(_ text: String) throws(PythonLiteralError) -> PythonValue {
        var parser = PythonLiteral(scalars: Array(text.unicodeScalars))
        parser.skipSpace()
        guard parser.position < parser.scalars.count else { throw parser.error("empty literal") }
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.position == parser.scalars.count else { throw parser.error("unexpected \(parser.describeNext()) after the literal") }
        return value
    }

    private init(scalars: [Unicode.Scalar]) { self.scalars = scalars }

    private func error(_ reason: String) -> PythonLiteralError { PythonLiteralError(offset: position, reason: reason) }

    private var next: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

    private func peek(_ offset: Int) -> Unicode.Scalar? { position + offset < scalars.count ? scalars[position + offset] : nil }

    private func describeNext() -> String {
        guard let next else { return "end of text" }
        return "'\(Character(next))'"
    }

    /// White space (including newlines: LLM lists span lines) and comments.
    private mutating func skipSpace() {
        while let c = next {
            switch c {
            case " ", "\t", "\n", "\r", "\u{0C}", "\u{0B}":
                position += 1
            case "#":
                while let d = next, d != "\n", d != "\r" { position += 1 }
            case "\\" where peek(1) == "\n":
                position += 2 // explicit line joining
            default:
                return
            }
        }
    }

    private mutating func value(depth: Int) throws(PythonLiteralError) -> PythonValue {
        guard depth < Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth)") }
        guard let c = next else { throw error("expected a value, found end of text") }
        switch c {
        case "[":
            position += 1
            return .list(try items(until: "]", depth: depth))
        case "(":
            position += 1
            skipSpace()
            if next == ")" { position += 1; return .tuple([]) }
            let first = try value(depth: depth + 1)
            skipSpace()
            if next == ")" { position += 1; return first } // parentheses around one value
            guard next == "," else { throw error("expected ',' or ')' in a tuple, found \(describeNext())") }
            position += 1
            return .tuple([first] + (try items(until: ")", depth: depth)))
        case "{":
            position += 1
            return try dict(depth: depth)
        case "+", "-":
            let negative = c == "-"
            position += 1
            skipSpace()
            guard let d = next, d.isDigit || d == "." else {
                throw error("a sign must be followed by a number, found \(describeNext())")
            }
            switch try number() {
            case .int(let n):
                guard !negative || n != Int.min else { return .int(n) }
                return .int(negative ? -n : n)
            case .float(let x): return .float(negative ? -x : x)
            default: throw error("a sign must be followed by a number")
            }
        case "'", "\"":
            return .string(try strings())
        default:
            if c.isDigit || (c == "." && peek(1)?.isDigit == true) {
                return try number()
            }
            if c.properties.isXIDStart || c == "_" {
                let start = position
                while let d = next, d.properties.isXIDContinue { position += 1 }
                let word = String(String.UnicodeScalarView(scalars[start..<position]))
                // String prefixes r / u (any case, r may pair with u only in Python 2; accept ru? no).
                if let quote = next, quote == "'" || quote == "\"", ["r", "R", "u", "U"].contains(word) {
                    position = start
                    return .string(try strings())
                }
                switch word {
                case "True": return .bool(true)
                case "False": return .bool(false)
                case "None": return .none
                default:
                    position = start
                    throw error("'\(word)' is a name, not a literal")
                }
            }
            throw error("unexpected \(describeNext())")
        }
    }

    /// Comma-separated values up to `close` (the opener already consumed); a trailing comma is fine.
    private mutating func items(until close: Unicode.Scalar, depth: Int) throws(PythonLiteralError) -> [PythonValue] {
        var result: [PythonValue] = []
        while true {
            skipSpace()
            if next == close { position += 1; return result }
            result.append(try value(depth: depth + 1))
            skipSpace()
            if next == close { position += 1; return result }
            guard next == "," else { throw error("expected ',' or '\(Character(close))', found \(describeNext())") }
            position += 1
        }
    }

    private mutating func dict(depth: Int) throws(PythonLiteralError) -> PythonValue {
        var pairs: [(key: PythonValue, value: PythonValue)] = []
        while true {
            skipSpace()
            if next == "}" { position += 1; return .dict(pairs) }
            let key = try value(depth: depth + 1)
            if case .list = key { throw error("a list cannot be a dict key") }
            if case .dict = key { throw error("a dict cannot be a dict key") }
            skipSpace()
            guard next == ":" else {
                throw error(pairs.isEmpty && (next == "," || next == "}") ? "sets are not supported" : "expected ':' after a dict key, found \(describeNext())")
            }
            position += 1
            skipSpace()
            let item = try value(depth: depth + 1)
            // A repeated key keeps its first position and the last value, as Python's dict.
            if let index = pairs.firstIndex(where: { $0.key == key }) { pairs[index].value = item } else { pairs.append((key, item)) }
            skipSpace()
            if next == "}" { position += 1; return .dict(pairs) }
            guard next == "," else { throw error("expected ',' or '}', found \(describeNext())") }
            position += 1
        }
    }

    // MARK: Strings

    /// One or more adjacent string literals, concatenated.
    private mutating func strings() throws(PythonLiteralError) -> String {
        var result = try string()
        while true {
            let save = position
            skipSpace()
            guard let c = next else { position = save; return result }
            let isPrefixed = ["r", "R", "u", "U"].contains(c) && (peek(1) == "'" || peek(1) == "\"")
            guard c == "'" || c == "\"" || isPrefixed else { position = save; return result }
            result += try string()
        }
    }

    private mutating func string() throws(PythonLiteralError) -> String {
        var raw = false
        if let c = next, ["r", "R", "u", "U"].contains(c) {
            raw = c == "r" || c == "R"
            position += 1
        }
        guard let quote = next, quote == "'" || quote == "\"" else { throw error("expected a string") }
        let start = position
        let triple = peek(1) == quote && peek(2) == quote
        position += triple ? 3 : 1
        var result = String.UnicodeScalarView()
        while true {
            guard let c = next else {
                position = start
                throw error("unterminated string")
            }
            if c == quote && (!triple || (peek(1) == quote && peek(2) == quote)) {
                position += triple ? 3 : 1
                return String(result)
            }
            if !triple && (c == "\n" || c == "\r") {
                throw error("line break inside a string")
            }
            position += 1
            guard c == "\\" else { result.append(c); continue }
            guard let e = next else { continue }
            if raw {
                // In a raw string a backslash stays, and escapes only keep the quote from ending it.
                result.append("\\")
                result.append(e)
                position += 1
                continue
            }
            position += 1
            switch e {
            case "\n": break // line continuation
            case "\\": result.append("\\")
            case "'": result.append("'")
            case "\"": result.append("\"")
            case "n": result.append("\n")
            case "t": result.append("\t")
            case "r": result.append("\r")
            case "a": result.append("\u{07}")
            case "b": result.append("\u{08}")
            case "f": result.append("\u{0C}")
            case "v": result.append("\u{0B}")
            case "0"..."7":
                var value = Int(e.value - 48), digits = 1
                while digits < 3, let d = next, ("0"..."7").contains(d) { value = value * 8 + Int(d.value - 48); digits += 1; position += 1 }
                result.append(Unicode.Scalar(UInt32(value))!)
            case "x", "u", "U":
                let count = e == "x" ? 2 : (e == "u" ? 4 : 8)
                var value: UInt32 = 0
                for _ in 0..<count {
                    guard let d = next, let digit = d.hexDigitValue else { throw error("truncated \\\(Character(e)) escape") }
                    value = value * 16 + UInt32(digit)
                    position += 1
                }
                guard let scalar = Unicode.Scalar(value) else { throw error("\\\(Character(e)) escape is not a character") }
                result.append(scalar)
            default:
                // Python keeps unknown escapes as they are.
                result.append("\\")
                result.append(e)
            }
        }
    }

    // MARK: Numbers

    private mutating func number() throws(PythonLiteralError) -> PythonValue {
        let start = position
        if next == "0", let base = peek(1).flatMap({ ["x": 16, "X": 16, "o": 8, "O": 8, "b": 2, "B": 2][$0] }) {
            position += 2
            var digits = ""
            while let c = next, c == "_" || c.hexDigitValue.map({ $0 < base }) == true {
                if c != "_" { digits.unicodeScalars.append(c) }
                position += 1
            }
            guard !digits.isEmpty, let value = Int(digits, radix: base) else {
                position = start
                throw error("bad base-\(base) integer")
            }
            try noTrailingName()
            return .int(value)
        }
        var text = ""
        var isFloat = false
        func digits() {
            while let c = next, c == "_" || ("0"..."9").contains(c) {
                if c != "_" { text.unicodeScalars.append(c) }
                position += 1
            }
        }
        digits()
        if next == "." {
            isFloat = true
            text += "."
            position += 1
            digits()
        }
        if let e = next, e == "e" || e == "E" {
            let mark = position
            position += 1
            var exponent = "e"
            if let sign = next, sign == "+" || sign == "-" { exponent.unicodeScalars.append(sign); position += 1 }
            if let d = next, ("0"..."9").contains(d) {
                isFloat = true
                text += exponent
                digits()
            } else {
                position = mark
            }
        }
        if next == "j" || next == "J" { throw error("complex numbers are not supported") }
        try noTrailingName()
        if isFloat {
            guard let value = Double(text.hasPrefix(".") ? "0" + text : text) else { position = start; throw error("bad number") }
            return .float(value)
        }
        if text.count > 1 && text.hasPrefix("0") && text.contains(where: { $0 != "0" }) {
            position = start
            throw error("leading zeros in a decimal integer are not allowed")
        }
        guard let value = Int(text) else { position = start; throw error("integer \(text) is too large") }
        return .int(value)
    }

    /// `12abc` is a syntax error in Python.
    private func noTrailingName() throws(PythonLiteralError) {
        if let c = next, c.properties.isXIDContinue { throw error("unexpected '\(Character(c))' after a number") }
    }
}

extension Unicode.Scalar {
    var isDigit: Bool { ("0"..."9").contains(self) }

    var hexDigitValue: Int? {
        switch self {
        case "0"..."9": return Int(value - 48)
        case "a"..."f": return Int(value - 87)
        case "A"..."F": return Int(value - 55)
        default: return nil
        }
    }
}
