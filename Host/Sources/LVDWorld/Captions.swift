import LVDFormats

/// Captions for rendered clips. They name the objects (class, colour), counts, motion verbs and
/// the background, in the benchmark's phrasing among others — but never where things are or which
/// way they go (no left/right/top/bottom, no direction, no appearing or disappearing): like real
/// text-to-video models, the base model then cannot follow a layout by itself, and the grounding
/// methods have something to fix.
public enum Captions {
    /// The benchmark's attributed names: "moving car", "lively cat", …
    public static func verb(_ kind: World.Kind) -> String {
        switch kind {
        case .car, .ball: return "moving"
        case .cat: return "lively"
        case .bird: return "flying"
        case .dog: return "walking"
        }
    }

    static let numbers = ["no", "one", "two", "three", "four"]

    /// A caption for `scene`, chosen among the templates by `seed` (deterministic).
    public static func caption(_ scene: World.Scene, seed: UInt64) -> String {
        var random = SplitMix64(seed: seed ^ 0xCA97_1011)
        let background = scene.background.words[random.below(scene.background.words.count)]
        let where_ = scene.background == .scene ? "" : (scene.background == .room && background == "indoors" ? " indoors" : " in the \(background)")
        guard !scene.objects.isEmpty else {
            return ["A realistic lively video of an empty \(background)", "An empty \(background)", "A video of a quiet \(background)"][random.below(3)]
        }
        func article(_ word: String) -> String { ("aeiou".contains(word.first ?? "x") ? "an " : "a ") + word }
        // Objects of one class may be counted ("two cats") or listed with their colours.
        var kinds: [World.Kind] = []
        for object in scene.objects where !kinds.contains(object.kind) { kinds.append(object.kind) }
        var phrases: [String] = []
        for kind in kinds {
            let same = scene.objects.filter { $0.kind == kind }
            let style = random.below(3)
            if same.count > 1 && style == 0 {
                phrases.append("\(numbers[same.count]) \(verb(kind)) \(kind.rawValue)s")
            } else {
                for object in same {
                    switch random.below(3) {
                    case 0: phrases.append(article("\(object.colourName) \(kind.rawValue)"))
                    case 1: phrases.append(article("\(object.colourName) \(verb(kind)) \(kind.rawValue)"))
                    default: phrases.append("one \(object.colourName) \(kind.rawValue)")
                    }
                }
            }
        }
        let list = phrases.count == 1 ? phrases[0] : phrases.dropLast().joined(separator: ", ") + " and " + phrases.last!
        switch random.below(4) {
        case 0: return "A realistic lively video of a scene with \(list)" + (scene.background == .scene ? "" : ", \(background) background")
        case 1: return capitalised(list) + where_
        case 2: return "A video of \(list)" + where_
        default: return capitalised(list) + (scene.background == .scene ? "" : " and a \(background)")
        }
    }

    static func capitalised(_ text: String) -> String { text.prefix(1).uppercased() + text.dropFirst() }

    /// Words a caption must never contain (tests check every template against them).
    public static let forbidden = ["left", "right", "top", "bottom", "upper", "lower", "toward", "towards", "from", " to ",
                                   "appear", "disappear", "enter", "leave", "across", "above", "below", "behind", "front"]
}
