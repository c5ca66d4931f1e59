import LVDFormats

/// The tiny world (DESIGN.md §5): short videos of the LVD benchmark's five classes as simple
/// sprites in its eleven colours on a handful of backgrounds, moving on random trajectories,
/// with the exact box of every object in every frame. Deterministic from a seed.
public enum World {
    public enum Kind: String, CaseIterable, Sendable { case car, cat, bird, ball, dog }

    public static let colours: [(name: String, rgb: (UInt8, UInt8, UInt8))] = [
        ("red", (220, 30, 30)), ("orange", (250, 140, 20)), ("yellow", (245, 220, 30)), ("green", (40, 170, 50)),
        ("blue", (30, 80, 220)), ("purple", (130, 40, 170)), ("pink", (245, 120, 190)), ("brown", (120, 70, 30)),
        ("black", (20, 20, 20)), ("white", (250, 250, 250)), ("gray", (128, 128, 128)),
    ]

    public enum Background: String, CaseIterable, Sendable {
        case street, grass, sky, room, scene

        /// The background a caption's keyword stands for (the words LLM layouts use).
        public static func forKeyword(_ keyword: String) -> Background {
            let word = keyword.lowercased()
            if ["street", "road", "city", "highway", "town", "parking"].contains(where: word.contains) { return .street }
            if ["garden", "park", "grass", "outdoor", "field", "meadow", "lawn", "yard", "forest"].contains(where: word.contains) { return .grass }
            if ["sky", "air", "cloud"].contains(where: word.contains) { return .sky }
            if ["room", "indoor", "house", "kitchen", "home", "living"].contains(where: word.contains) { return .room }
            return .scene
        }

        /// The words captions use for it.
        public var words: [String] {
            switch self {
            case .street: return ["street", "road", "city"]
            case .grass: return ["garden", "park", "grass"]
            case .sky: return ["sky"]
            case .room: return ["room", "indoors"]
            case .scene: return ["scene"]
            }
        }
    }

    public struct Object: Equatable, Sendable {
        public var kind: Kind
        public var colour: Int
        /// Sprite size in pixels.
        public var width: Double
        public var height: Double
        /// Top-left corner per frame (may lie partly or wholly off the canvas).
        public var path: [(x: Double, y: Double)]
        /// Whether the sprite faces left (drawn mirrored).
        public var facingLeft: Bool

        public init(kind: Kind, colour: Int, width: Double, height: Double, path: [(x: Double, y: Double)], facingLeft: Bool) {
            self.kind = kind
            self.colour = colour
            self.width = width
            self.height = height
            self.path = path
            self.facingLeft = facingLeft
        }

        public static func == (a: Object, b: Object) -> Bool {
            a.kind == b.kind && a.colour == b.colour && a.width == b.width && a.height == b.height && a.facingLeft == b.facingLeft
                && a.path.count == b.path.count && zip(a.path, b.path).allSatisfy { $0.x == $1.x && $0.y == $1.y }
        }

        public var colourName: String { World.colours[colour].name }
    }

    /// One rendered clip's description.
    public struct Scene: Equatable, Sendable {
        public var size: Int
        public var frames: Int
        public var background: Background
        public var objects: [Object]

        public init(size: Int, frames: Int, background: Background, objects: [Object]) {
            self.size = size
            self.frames = frames
            self.background = background
            self.objects = objects
        }
    }
}

extension SplitMix64 {
    /// The world's generator: salted, so scene seeds do not collide with other uses of a number.
    init(worldSeed seed: UInt64) { self.init(seed: seed ^ 0x5EED_0F_7E1D) }
}

extension World {
    /// Sprite proportions (width : height) per kind.
    static func aspect(_ kind: Kind) -> Double {
        switch kind {
        case .car: return 1.8
        case .cat: return 1.2
        case .bird: return 1.4
        case .ball: return 1.0
        case .dog: return 1.4
        }
    }

    /// A random scene: 0…`maxObjects` objects (each its own colour), each entering,
    /// leaving, crossing or wandering on a straight path; sprites `minSprite`…`maxSprite` px high.
    public static func randomScene(seed: UInt64, size: Int = 64, frames: Int = 8, maxObjects: Int = 4,
                                   objectCount: Int? = nil, minSprite: Double = 16, maxSprite: Double = 26) -> Scene {
        var random = SplitMix64(worldSeed: seed)
        let background = Background.allCases[random.below(Background.allCases.count)]
        let count = objectCount ?? random.below(maxObjects + 1)
        var objects: [Object] = []
        var used = Set<Int>()
        let s = Double(size)
        while objects.count < count {
            let kind = Kind.allCases[random.below(Kind.allCases.count)]
            // One colour per object in a scene: a caption can then name each object by its colour.
            let colour = random.below(colours.count)
            guard used.insert(colour).inserted else { continue }
            let height = random.range(minSprite, maxSprite) / (kind == .car || kind == .bird ? 1.3 : 1)
            let width = Swift.min(height * aspect(kind), s * 0.6)
            // Paths: crossing (edge to edge), entering, leaving, or moving within the canvas.
            let style = random.below(4)
            func inside() -> (Double, Double) { (random.range(0, s - width), random.range(0, s - height)) }
            var start = inside(), end = inside()
            switch style {
            case 0: // crossing horizontally
                let leftToRight = random.below(2) == 0
                start.0 = leftToRight ? -width * 0.6 : s - width * 0.4
                end.0 = leftToRight ? s - width * 0.4 : -width * 0.6
                end.1 = start.1
            case 1: // entering from a side
                start.0 = random.below(2) == 0 ? -width : s
            case 2: // leaving through a side
                end.0 = random.below(2) == 0 ? -width : s
            default: break
            }
            let path = (0..<frames).map { f -> (x: Double, y: Double) in
                let t = frames > 1 ? Double(f) / Double(frames - 1) : 0
                return (start.0 + (end.0 - start.0) * t, start.1 + (end.1 - start.1) * t)
            }
            objects.append(Object(kind: kind, colour: colour, width: width, height: height, path: path, facingLeft: end.0 < start.0))
        }
        return Scene(size: size, frames: frames, background: background, objects: objects)
    }
}
