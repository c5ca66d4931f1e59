import Foundation
import LVDFormats

/// CLIP's byte-level BPE tokenizer, exactly as the reference runs it: transformers 4.29.2's
/// CLIPTokenizer without ftfy. The text is first split at special tokens (BOS, EOS and the pad
/// token — so with ModelScope's pad token "!" every "!" in a prompt becomes id 0, a reference
/// quirk kept as is); other text goes through BasicTokenizer (control characters dropped, white
/// space normalised, CJK characters spaced, lower case with accents stripped, punctuation split
/// off), the CLIP pre-tokenisation pattern, the byte-to-unicode mapping and BPE merges by rank
/// with "</w>" ending each word. Then BOS … EOS, truncated and padded to `maxLength`.
public final class CLIPTokenizer: @unchecked Sendable {
    public let vocabulary: [String: Int]
    public let merges: [String: Int]
    public let bosID: Int, eosID: Int, padID: Int
    public let maxLength: Int
    /// Split out of the text before tokenising, longest first.
    private let specialTokens: [String]
    private let tokens: [Int: String]
    private var cache: [String: [String]] = [:]
    private let lock = NSLock()

    public struct Encoding: Equatable, Sendable {
        /// maxLength ids: BOS, the prompt's tokens, EOS, padding.
        public var ids: [Int]
        /// The token strings of `ids` (as in the vocabulary, e.g. "dog</w>").
        public var tokens: [String]
        /// Index of the EOS token (the pooled output's position).
        public var eosIndex: Int
    }

    public init(vocabulary: [String: Int], merges: [(String, String)], padToken: String = "<|endoftext|>", maxLength: Int = 77) throws(ModelError) {
        func need(_ token: String) throws(ModelError) -> Int {
            guard let id = vocabulary[token] else { throw ModelError(file: "tokenizer", reason: "vocabulary has no \(token)") }
            return id
        }
        self.vocabulary = vocabulary
        var ranks: [String: Int] = [:]
        for (rank, pair) in merges.enumerated() where ranks[pair.0 + " " + pair.1] == nil { ranks[pair.0 + " " + pair.1] = rank }
        self.merges = ranks
        bosID = try need("<|startoftext|>")
        eosID = try need("<|endoftext|>")
        padID = try need(padToken)
        self.maxLength = maxLength
        specialTokens = Array(Set(["<|startoftext|>", "<|endoftext|>", padToken])).sorted { $0.count > $1.count }
        var inverse: [Int: String] = [:]
        for (token, id) in vocabulary { inverse[id] = token }
        tokens = inverse
    }

    /// From a tokenizer folder: vocab.json + merges.txt (+ special_tokens_map.json / tokenizer_config.json
    /// for the pad token and max length), or tokenizer.json.
    public convenience init(folder: String) throws(ModelError) {
        let files = FileManager.default
        var padToken = "<|endoftext|>", maxLength = 77
        // tokenizer_config.json first: special_tokens_map.json overrides it, as in transformers.
        for name in ["tokenizer_config.json", "special_tokens_map.json"] {
            guard files.fileExists(atPath: folder + "/" + name), let object = try ModelFolder.readJSON(folder + "/" + name).objectValue else { continue }
            switch object["pad_token"] {
            case .string(let token): padToken = token
            case .object(let token): if let content = token["content"]?.stringValue { padToken = content }
            default: break
            }
            if let length = object["model_max_length"]?.intValue, length > 2, length <= 4096 { maxLength = length }
        }
        if files.fileExists(atPath: folder + "/vocab.json") {
            let vocab = try Self.readVocabulary(folder + "/vocab.json")
            let mergesPath = folder + "/merges.txt"
            guard let data = files.contents(atPath: mergesPath), let text = String(data: data, encoding: .utf8) else {
                throw ModelError(file: mergesPath, reason: "cannot read (missing?)")
            }
            var merges: [(String, String)] = []
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                if line.hasPrefix("#version") || line.isEmpty { continue }
                let parts = line.split(separator: " ")
                guard parts.count == 2 else { throw ModelError(file: mergesPath, reason: "line \(number + 1): expected two symbols, got \"\(line)\"") }
                merges.append((String(parts[0]), String(parts[1])))
            }
            try self.init(vocabulary: vocab, merges: merges, padToken: padToken, maxLength: maxLength)
        } else {
            let path = folder + "/tokenizer.json"
            guard let model = try ModelFolder.readJSON(path).objectValue?["model"]?.objectValue else {
                throw ModelError(file: folder, reason: "no vocab.json + merges.txt and no tokenizer.json with a model")
            }
            guard model["type"] == .string("BPE"), let vocabObject = model["vocab"]?.objectValue, let mergeList = model["merges"]?.arrayValue else {
                throw ModelError(file: path, reason: "model must be BPE with vocab and merges")
            }
            var vocab: [String: Int] = [:]
            for (token, id) in vocabObject {
                guard let id = id.intValue else { throw ModelError(file: path, reason: "model.vocab.\(token): id must be an integer") }
                vocab[token] = id
            }
            var merges: [(String, String)] = []
            for entry in mergeList {
                // "a b" (older files) or ["a", "b"].
                if let text = entry.stringValue, case let parts = text.split(separator: " "), parts.count == 2 {
                    merges.append((String(parts[0]), String(parts[1])))
                } else if let pair = entry.arrayValue?.compactMap(\.stringValue), pair.count == 2 {
                    merges.append((pair[0], pair[1]))
                } else {
                    throw ModelError(file: path, reason: "model.merges: bad entry \(entry.serialized())")
                }
            }
            try self.init(vocabulary: vocab, merges: merges, padToken: padToken, maxLength: maxLength)
        }
    }

    static func readVocabulary(_ path: String) throws(ModelError) -> [String: Int] {
        guard let object = try ModelFolder.readJSON(path).objectValue else { throw ModelError(file: path, reason: "must be a JSON object") }
        var vocab: [String: Int] = [:]
        for (token, id) in object {
            guard let id = id.intValue else { throw ModelError(file: path, reason: "\(token): id must be an integer") }
            vocab[token] = id
        }
        return vocab
    }

    // MARK: Encoding

    /// BOS, the tokens of `text` (truncated), EOS, padded to `maxLength`.
    public func encode(_ text: String) -> Encoding {
        var ids = [bosID] + tokenIDs(text).prefix(maxLength - 2) + [eosID]
        let eosIndex = ids.count - 1
        ids += [Int](repeating: padID, count: maxLength - ids.count)
        return Encoding(ids: ids, tokens: ids.map { tokens[$0] ?? "" }, eosIndex: eosIndex)
    }

    /// The token ids of `text` without BOS/EOS or padding.
    public func tokenIDs(_ text: String) -> [Int] {
        var ids: [Int] = []
        for (segment, isSpecial) in splitSpecialTokens(text) {
            if isSpecial {
                ids.append(vocabulary[segment]!)
                continue
            }
            for word in Self.preTokenize(Self.basicTokenize(segment).joined(separator: " ")) {
                let encoded = String(String.UnicodeScalarView(word.utf8.map { Self.byteEncoder[Int($0)] }))
                for piece in bpe(encoded) {
                    // Every BPE result is in a consistent vocabulary; unknown pieces map to the unk token (EOS).
                    ids.append(vocabulary[piece] ?? eosID)
                }
            }
        }
        return ids
    }

    /// The text cut at occurrences of the special tokens (case-sensitive, leftmost, longest first).
    private func splitSpecialTokens(_ text: String) -> [(String, Bool)] {
        var result: [(String, Bool)] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            var earliest: (Range<Substring.Index>, String)?
            for token in specialTokens {
                if let range = rest.range(of: token), earliest == nil || range.lowerBound < earliest!.0.lowerBound {
                    earliest = (range, token)
                }
            }
            guard let (range, token) = earliest else { result.append((String(rest), false)); break }
            if range.lowerBound > rest.startIndex { result.append((String(rest[..<range.lowerBound]), false)) }
            result.append((token, true))
            rest = rest[range.upperBound...]
        }
        return result
    }

    /// The token strings of `text` without BOS/EOS (what the methods match phrases against).
    public func tokenStrings(_ text: String) -> [String] { tokenIDs(text).map { tokens[$0] ?? "" } }

    private func bpe(_ word: String) -> [String] {
        lock.lock()
        if let cached = cache[word] { lock.unlock(); return cached }
        lock.unlock()
        var symbols = word.unicodeScalars.map { String($0) }
        guard !symbols.isEmpty else { return [] }
        symbols[symbols.count - 1] += "</w>"
        while symbols.count > 1 {
            var best: (rank: Int, index: Int)?
            for i in 0..<(symbols.count - 1) {
                if let rank = merges[symbols[i] + " " + symbols[i + 1]], rank < (best?.rank ?? .max) { best = (rank, i) }
            }
            guard let (_, _) = best else { break }
            // Merge every occurrence of the best pair, left to right (as the reference).
            let first = symbols[best!.index], second = symbols[best!.index + 1]
            var merged: [String] = []
            var i = 0
            while i < symbols.count {
                if i < symbols.count - 1, symbols[i] == first, symbols[i + 1] == second {
                    merged.append(first + second)
                    i += 2
                } else {
                    merged.append(symbols[i])
                    i += 1
                }
            }
            symbols = merged
        }
        lock.lock()
        if cache.count < 50_000 { cache[word] = symbols }
        lock.unlock()
        return symbols
    }

    // MARK: Text cleaning (transformers 4.29 BasicTokenizer with do_lower_case)

    /// Words after cleaning, CJK spacing, lower case without accents, and punctuation split off.
    static func basicTokenize(_ text: String) -> [String] {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            let value = scalar.value
            if value == 0 || value == 0xFFFD || isControl(scalar) { continue }
            if isWhitespace(scalar) { cleaned.append(" "); continue }
            if isCJK(value) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
                continue
            }
            cleaned.append(scalar)
        }
        var words: [String] = []
        for token in String(cleaned).split(whereSeparator: { $0.unicodeScalars.allSatisfy(isWhitespace) }) {
            // lower() then strip accents: NFD, drop non-spacing marks.
            let stripped = String(String.UnicodeScalarView(
                token.lowercased().decomposedStringWithCanonicalMapping.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }))
            var current = String.UnicodeScalarView()
            for scalar in stripped.unicodeScalars {
                if isPunctuation(scalar) {
                    if !current.isEmpty { words.append(String(current)); current = String.UnicodeScalarView() }
                    words.append(String(scalar))
                } else {
                    current.append(scalar)
                }
            }
            if !current.isEmpty { words.append(String(current)) }
        }
        return words
    }

    /// ASCII punctuation ranges (so "$", "^", "`" count) or a Unicode punctuation category.
    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == " " || s == "\t" || s == "\n" || s == "\r" || s.properties.generalCategory == .spaceSeparator
    }

    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    static func isCJK(_ cp: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(cp) || (0x3400...0x4DBF).contains(cp) || (0x20000...0x2A6DF).contains(cp)
            || (0x2A700...0x2B73F).contains(cp) || (0x2B740...0x2B81F).contains(cp) || (0x2B820...0x2CEAF).contains(cp)
            || (0xF900...0xFAFF).contains(cp) || (0x2F800...0x2FA1F).contains(cp)
    }

    // MARK: Pre-tokenisation: <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+

    static func preTokenize(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var words: [String] = []
        var i = 0
        func isLetterCategory(_ s: Unicode.Scalar) -> Bool {
            switch s.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
            default: return false
            }
        }
        func isNumber(_ s: Unicode.Scalar) -> Bool {
            switch s.properties.generalCategory {
            case .decimalNumber, .letterNumber, .otherNumber: return true
            default: return false
            }
        }
        func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }
        let specials = ["<|startoftext|>", "<|endoftext|>"].map { Array($0.unicodeScalars) }
        let contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"].map { Array($0.unicodeScalars) }
        func matches(_ pattern: [Unicode.Scalar], at index: Int) -> Bool {
            guard index + pattern.count <= scalars.count else { return false }
            for k in 0..<pattern.count where String(scalars[index + k]).lowercased() != String(pattern[k]) { return false }
            return true
        }
        scan: while i < scalars.count {
            for pattern in specials + contractions where matches(pattern, at: i) {
                words.append(String(String.UnicodeScalarView(scalars[i..<(i + pattern.count)])))
                i += pattern.count
                continue scan
            }
            let s = scalars[i]
            if isLetterCategory(s) {
                let start = i
                while i < scalars.count, isLetterCategory(scalars[i]) { i += 1 }
                words.append(String(String.UnicodeScalarView(scalars[start..<i])))
            } else if isNumber(s) {
                words.append(String(s))
                i += 1
            } else if isSpace(s) {
                i += 1
            } else {
                let start = i
                // Greedy, as the regex: a contraction or special token inside the run does not end it.
                while i < scalars.count, !isSpace(scalars[i]), !isLetterCategory(scalars[i]), !isNumber(scalars[i]) { i += 1 }
                words.append(String(String.UnicodeScalarView(scalars[start..<i])))
            }
        }
        return words
    }

    /// GPT-2's reversible byte → unicode table: printable bytes map to themselves, the rest to 256+.
    static let byteEncoder: [Unicode.Scalar] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var mapped = printable
        var extra = 0
        for byte in 0..<256 where !printable.contains(byte) {
            printable.append(byte)
            mapped.append(256 + extra)
            extra += 1
        }
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        for (byte, code) in zip(printable, mapped) { table[byte] = Unicode.Scalar(UInt32(code))! }
        return table
    }()
}
