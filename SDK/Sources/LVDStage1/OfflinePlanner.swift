import LVDFormats

/// A deterministic planner without a network: it reads the benchmark's caption grammar and
/// simple free-form prompts — objects with counts and colours, placement (left / right / top /
/// bottom / corners), "moving from X to Y", appearing / disappearing, corner sequences — and
/// lays the objects out on the 512 × 512 canvas. A prompt naming no object it knows is refused
/// with the reason, never guessed at.
public enum OfflinePlanner {
    public struct Refusal: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Nouns the planner knows, singular → typical box size (w, h) and default background.
    static let nouns: [String: (size: (Double, Double), background: String)] = [
        "car": ((130, 70), "street"), "cat": ((90, 80), "room"), "bird": ((70, 50), "sky"), "ball": ((60, 60), "grass"),
        "dog": ((110, 90), "park"), "bus": ((180, 110), "street"), "truck": ((170, 100), "road"), "bicycle": ((110, 80), "street"),
        "bike": ((110, 80), "street"), "horse": ((150, 130), "field"), "cow": ((150, 110), "field"), "sheep": ((110, 80), "field"),
        "person": ((60, 160), "street"), "man": ((60, 160), "street"), "woman": ((60, 160), "street"), "child": ((50, 110), "park"),
        "boy": ((50, 120), "park"), "girl": ((50, 120), "park"), "bear": ((150, 120), "forest"), "fish": ((80, 40), "sea"),
        "boat": ((150, 80), "sea"), "plane": ((160, 70), "sky"), "airplane": ((160, 70), "sky"), "kite": ((60, 70), "sky"),
        "balloon": ((60, 80), "sky"), "rabbit": ((60, 60), "garden"), "duck": ((60, 50), "pond"), "butterfly": ((40, 35), "garden"),
        "train": ((220, 100), "railway"), "squirrel": ((50, 50), "park"), "deer": ((120, 130), "forest"), "robot": ((80, 130), "room"),
        "drone": ((70, 40), "sky"), "apple": ((40, 40), "table"), "cup": ((40, 50), "table"), "box": ((90, 90), "room"),
    ]
    static let irregularPlurals = ["people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
                                   "geese": "goose", "sheep": "sheep", "fish": "fish", "deer": "deer", "buses": "bus",
                                   "boxes": "box", "butterflies": "butterfly", "puppies": "puppy"]
    static let counts = ["a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                         "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "a couple of": 2, "several": 3]
    static let colors = Set(["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray", "grey"])
    static let backgrounds = ["street", "road", "city", "garden", "park", "grass", "field", "sky", "room", "kitchen", "beach", "sea",
                              "forest", "desert", "snow", "river", "lake", "pond", "table", "railway", "indoors", "outdoors", "scene"]
    /// Words between a count and a noun that stay part of the name ("moving car", "lively cat").
    static let modifiers = Set(["moving", "lively", "flying", "walking", "running", "jumping", "small", "big", "large", "little",
                                "tiny", "cute", "old", "young", "fluffy", "shiny", "wooden", "toy", "sports", "white-tailed"])

    struct Mention {
        var count: Int
        var name: String      // e.g. "blue cat", "moving car"
        var noun: String      // singular noun
        var start: Int        // word index
        var end: Int
    }

    public enum Side: String { case left, right, top, bottom, center }

    /// Plans `prompt` (the cache-key normalisation applied), or refuses.
    public static func plan(_ prompt: String) throws(Refusal) -> Layout {
        let caption = Stage1.key(prompt)
        let words = tokenize(caption)
        let mentions = findMentions(words)
        guard !mentions.isEmpty else {
            throw Refusal(description: "the offline planner cannot plan \"\(caption)\": it names no object the planner knows (it knows \(nouns.keys.sorted().prefix(12).joined(separator: ", ")), …); use the llm planner or a layout file")
        }
        let text = " " + words.joined(separator: " ") + " "
        let background = backgrounds.first { text.contains(" \($0) ") } ?? nouns[mentions[0].noun]!.background
        var planner = Planning(mentions: mentions, text: text)
        let keyframes = try planner.keyframes()
        return Layout(prompt: caption, reasoning: "Planned offline: \(planner.summary)", keyframes: keyframes, background: background)
    }

    static func tokenize(_ caption: String) -> [String] {
        var words: [String] = []
        var current = ""
        for c in caption.lowercased() {
            if c.isLetter || c.isNumber || c == "-" || c == "'" { current.append(c) } else {
                if !current.isEmpty { words.append(current); current = "" }
                if c == "." || c == "," { words.append(String(c)) }
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// Singular of a known noun, or nil.
    static func noun(_ word: String) -> (singular: String, plural: Bool)? {
        if nouns[word] != nil { return (word, false) }
        if let singular = irregularPlurals[word], nouns[singular] != nil { return (singular, true) }
        for (suffix, replacement) in [("ies", "y"), ("es", ""), ("s", "")] where word.hasSuffix(suffix) {
            let stem = String(word.dropLast(suffix.count)) + replacement
            if nouns[stem] != nil { return (stem, true) }
        }
        return nil
    }

    static func findMentions(_ words: [String]) -> [Mention] {
        var mentions: [Mention] = []
        for (index, word) in words.enumerated() {
            guard let (singular, plural) = noun(word) else { continue }
            // Walk back over colours and modifiers to a count word.
            var start = index, descriptors: [String] = []
            while start > 0, colors.contains(words[start - 1]) || modifiers.contains(words[start - 1]) {
                start -= 1
                descriptors.insert(words[start], at: 0)
            }
            var count = plural ? 2 : 1
            if start > 0, let n = counts[words[start - 1]] {
                count = n
                start -= 1
            }
            // "the car" after a first mention refers back to it.
            if start > 0, words[start - 1] == "the" || words[start - 1] == "its", mentions.contains(where: { $0.noun == singular }) { continue }
            if mentions.contains(where: { $0.noun == singular && descriptors.isEmpty }) { continue }
            let name = (descriptors + [singular]).joined(separator: " ")
            mentions.append(Mention(count: count, name: name, noun: singular, start: start, end: index))
        }
        return mentions
    }

    /// Keyframes for the mentions with the motion the text describes.
    struct Planning {
        let mentions: [Mention]
        let text: String
        var summary = ""

        init(mentions: [Mention], text: String) {
            self.mentions = mentions
            self.text = text
        }

        func has(_ phrase: String) -> Bool { text.contains(" \(phrase) ") }

        func side(after marker: String) -> String? {
            guard let range = text.firstRange(of: " \(marker) ") else { return nil }
            let rest = text[range.upperBound...].split(separator: " ").prefix(3).map(String.init)
            let joined = rest.joined(separator: " ")
            for quadrant in ["lower left", "lower right", "upper left", "upper right", "bottom left", "bottom right", "top left", "top right"]
            where joined.hasPrefix("the \(quadrant)") || joined.hasPrefix(quadrant) { return quadrant }
            for word in rest.prefix(2) where ["left", "right", "top", "bottom", "center", "middle"].contains(word) { return word }
            return nil
        }

        /// Centre of a named place on the canvas (x, y).
        static func point(_ place: String) -> (Double, Double) {
            switch place {
            case "left": return (90, 300)
            case "right": return (422, 300)
            case "top": return (256, 110)
            case "bottom": return (256, 420)
            case "lower left", "bottom left": return (128, 384)
            case "lower right", "bottom right": return (384, 384)
            case "upper left", "top left": return (128, 128)
            case "upper right", "top right": return (384, 128)
            default: return (256, 300)
            }
        }

        mutating func keyframes() throws(Refusal) -> [[Layout.Object]] {
            // Expand counts into objects; ids in order of mention.
            var objects: [(id: Int, name: String, size: (Double, Double), mention: Int)] = []
            for (index, mention) in mentions.enumerated() {
                for _ in 0..<mention.count {
                    objects.append((objects.count, mention.name, OfflinePlanner.nouns[mention.noun]!.size, index))
                }
            }
            guard objects.count <= 12 else { throw Refusal(description: "the offline planner places at most 12 objects, the prompt asks for \(objects.count)") }
            // Crowded rows shrink their boxes so that they never overlap.
            let slot = 512 / Double(objects.count) - 12
            objects = objects.map { object in
                let scale = Swift.min(1, slot / object.size.0)
                return (object.id, object.name, ((object.size.0 * scale).rounded(), (object.size.1 * scale).rounded()), object.mention)
            }
            // Resting positions: spread along a row, ordered left to right, no overlap.
            var rest: [(Double, Double)] = []
            for (slot, object) in objects.enumerated() {
                let x = (Double(slot) + 0.5) * 512 / Double(objects.count)
                rest.append((x, 330 - object.size.1 / 4))
            }
            // Placement words attached to a mention ("a cat on the left").
            var paths = objects.map { object -> [(Double, Double)?] in Array(repeating: rest[object.id], count: 6) }
            var parts: [String] = []

            let first = mentions[0]
            let appears = has("appears") || has("appear") || has("enters") || has("comes in")
            let disappears = has("disappears") || has("disappear") || has("leaves") || has("vanishes")
            if let q1 = side(after: "initially on") ?? side(after: "starts at") ?? side(after: "starts in"),
               let q2 = side(after: "first moves to") ?? side(after: "moves to"), let q3 = side(after: "then moves to") {
                // Corner sequence: keyframe 0 at q1, 3 at q2, 5 at q3 (the predicate's frames), linear between.
                let (a, b, c) = (Self.point(q1), Self.point(q2), Self.point(q3))
                let path: [(Double, Double)] = [a, lerp(a, b, 1.0 / 3), lerp(a, b, 2.0 / 3), b, lerp(b, c, 0.5), c]
                for object in objects where object.mention == 0 { paths[object.id] = path.map { $0 } }
                parts.append("\(first.name) goes \(q1) → \(q2) → \(q3)")
            } else if let from = side(after: "from the") ?? side(after: "from"), let to = side(after: "to its") ?? side(after: "to the") ?? side(after: "to") {
                if has("of a") || has("of an") || has("of the"), mentions.count >= 2, text.contains(" to its ") {
                    // "a cat moving from the left of a dog to its right": the second stays in the middle.
                    let anchor = Self.point("center")
                    for object in objects where object.mention == 1 { paths[object.id] = Array(repeating: anchor, count: 6) }
                    let start = (from == "left" ? anchor.0 - 170 : anchor.0 + 170, anchor.1)
                    let end = (to == "right" ? anchor.0 + 170 : anchor.0 - 170, anchor.1)
                    for object in objects where object.mention == 0 { paths[object.id] = (0..<6).map { lerp(start, end, Double($0) / 5) } }
                    parts.append("\(first.name) passes \(mentions[1].name) from its \(from) to its \(to)")
                } else {
                    let (a, b) = (Self.point(from), Self.point(to))
                    for object in objects where object.mention == 0 {
                        let offset = Double(objects.filter { $0.mention == 0 && $0.id < object.id }.count) * (object.size.1 + 20)
                        paths[object.id] = (0..<6).map { let p = lerp(a, b, Double($0) / 5); return (p.0, p.1 - offset) }
                    }
                    parts.append("\(first.name) moves from the \(from) to the \(to)")
                }
            } else {
                // Static placement words: "a cat on the left and a dog on the right".
                for (index, mention) in mentions.enumerated() {
                    let window = mentionWindow(index)
                    for place in ["left", "right", "top", "bottom"] where window.contains(" on the \(place) ") || window.contains(" at the \(place) ") || window.contains(" in the \(place) ") {
                        for object in objects where object.mention == index {
                            let p = Self.point(place)
                            paths[object.id] = Array(repeating: (p.0 + Double(object.id - objects.firstIndex { $0.mention == index }!) * (object.size.0 + 15), p.1), count: 6)
                        }
                        parts.append("\(mention.name) on the \(place)")
                    }
                }
            }
            if appears || disappears {
                // "only in the second half" → absent in keyframes 0–2; "first half" → absent in 3–5.
                let secondHalf = has("second half") || (appears && !has("first half"))
                let hidden = secondHalf ? 0..<3 : 3..<6
                for object in objects where object.mention == 0 { for k in hidden { paths[object.id][k] = nil } }
                parts.append("\(first.name) \(secondHalf ? "appears in the second half" : "is gone in the second half")")
            }
            if parts.isEmpty { parts.append(mentions.map { "\($0.count) × \($0.name)" }.joined(separator: ", ") + ", at rest") }
            summary = parts.joined(separator: "; ")
            return (0..<6).map { k in
                objects.compactMap { object in
                    guard let centre = paths[object.id][k] else { return nil }
                    let (w, h) = object.size
                    return Layout.Object(id: object.id, name: object.name, box: [(centre.0 - w / 2).rounded(), (centre.1 - h / 2).rounded(), w, h])
                }
            }
        }

        /// The words from a mention up to the next mention.
        func mentionWindow(_ index: Int) -> String {
            let words = text.split(separator: " ").map(String.init)
            let start = mentions[index].start, end = index + 1 < mentions.count ? mentions[index + 1].start : words.count
            guard start < end else { return " " }
            return " " + words[start..<end].joined(separator: " ") + " "
        }

        func lerp(_ a: (Double, Double), _ b: (Double, Double), _ t: Double) -> (Double, Double) {
            (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
        }
    }
}
