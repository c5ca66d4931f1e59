/// The tiny world's detector (in place of OWL-ViT for the stage-2 benchmark): per frame, the
/// objects it sees with class, colour, box and score.
///
/// 1. Every pixel takes the nearest of the eleven object colours, their darker and lighter
///    shades (the sprites' details) and the backgrounds' colours, if near enough.
/// 2. Pixels of a colour form 8-connected components; shade pixels join a component of their
///    colour they touch; specks are dropped.
/// 3. A component's class is the sprite silhouette (each kind, both facings, scaled to the
///    component's box — anchored to the inner side when the box touches the frame's edge) that
///    overlaps its mask best; the overlap is the score.
public struct WorldDetector: Sendable {
    public struct Detection: Equatable, Sendable {
        public var kind: World.Kind
        public var colour: String
        /// Normalised xyxy.
        public var box: [Double]
        public var score: Double

        public init(kind: World.Kind, colour: String, box: [Double], score: Double) {
            self.kind = kind
            self.colour = colour
            self.box = box
            self.score = score
        }
    }

    /// Largest colour distance (RGB, Euclidean) at which a pixel still counts for a colour.
    public var maxDistance = 70.0
    /// Components smaller than this many pixels are noise.
    public var minPixels = 12

    public init() {}

    enum Label: Equatable { case none, body(Int), shade(Int) }

    /// Prototype colours: body, dark and light shade per object colour, then background colours.
    static let prototypes: [(rgb: (Double, Double, Double), label: Label)] = {
        var list: [(rgb: (Double, Double, Double), label: Label)] = []
        for (index, colour) in World.colours.enumerated() {
            let body = (Double(colour.rgb.0), Double(colour.rgb.1), Double(colour.rgb.2))
            list.append((body, .body(index)))
            let luminance = 0.3 * body.0 + 0.59 * body.1 + 0.11 * body.2
            let dark = luminance < 60 ? (body.0 + 70, body.1 + 70, body.2 + 70) : (body.0 * 0.45, body.1 * 0.45, body.2 * 0.45)
            let light = (body.0 + (255 - body.0) * 0.45, body.1 + (255 - body.1) * 0.45, body.2 + (255 - body.2) * 0.45)
            list.append((dark, .shade(index)))
            list.append((light, .shade(index)))
        }
        // Background colours, sampled from empty renders of every background.
        var seen = Set<Int>()
        for background in World.Background.allCases {
            let pixels = WorldRenderer.render(World.Scene(size: 64, frames: 1, background: background, objects: [])).pixels
            for p in 0..<(64 * 64) {
                let key = (Int(pixels[3 * p]) / 4) << 12 | (Int(pixels[3 * p + 1]) / 4) << 6 | Int(pixels[3 * p + 2]) / 4
                guard seen.insert(key).inserted else { continue }
                list.append(((Double(pixels[3 * p]), Double(pixels[3 * p + 1]), Double(pixels[3 * p + 2])), .none))
            }
        }
        return list
    }()

    /// Silhouettes of each kind, facing right, on a 48×48 sprite grid, and their tight bounds.
    static let silhouettes: [World.Kind: (mask: [Bool], u0: Double, v0: Double, u1: Double, v1: Double)] = {
        var result: [World.Kind: (mask: [Bool], u0: Double, v0: Double, u1: Double, v1: Double)] = [:]
        let n = 48
        for kind in World.Kind.allCases {
            var mask = [Bool](repeating: false, count: n * n)
            var u0 = 1.0, v0 = 1.0, u1 = 0.0, v1 = 0.0
            for j in 0..<n {
                for i in 0..<n {
                    let (u, v) = ((Double(i) + 0.5) / Double(n), (Double(j) + 0.5) / Double(n))
                    guard WorldRenderer.shade(kind, u, v, (128, 128, 128)) != nil else { continue }
                    mask[j * n + i] = true
                    u0 = Swift.min(u0, Double(i) / Double(n)); u1 = Swift.max(u1, Double(i + 1) / Double(n))
                    v0 = Swift.min(v0, Double(j) / Double(n)); v1 = Swift.max(v1, Double(j + 1) / Double(n))
                }
            }
            result[kind] = (mask, u0, v0, u1, v1)
        }
        return result
    }()

    /// The label of every colour, 6 bits per channel (the nearest prototype within `maxDistance`).
    static func labelTable(maxDistance: Double) -> [Label] {
        (0..<(1 << 18)).map { key in
            let (r, g, b) = (Double((key >> 12) << 2 | 2), Double(((key >> 6) & 63) << 2 | 2), Double((key & 63) << 2 | 2))
            var best = Double.infinity, label = Label.none
            for prototype in prototypes {
                let d = (r - prototype.rgb.0) * (r - prototype.rgb.0) + (g - prototype.rgb.1) * (g - prototype.rgb.1)
                    + (b - prototype.rgb.2) * (b - prototype.rgb.2)
                if d < best { best = d; label = prototype.label }
            }
            return best.squareRoot() <= maxDistance ? label : .none
        }
    }

    static let defaultTable = labelTable(maxDistance: 70)

    /// Objects in each frame of a clip (frames × height × width × 3 bytes).
    public func detect(frames rgb: [UInt8], count: Int, width: Int, height: Int) -> [[Detection]] {
        let bytes = width * height * 3
        return (0..<count).map { detect(rgb[($0 * bytes)..<(($0 + 1) * bytes)], width: width, height: height) }
    }

    /// Intersection over union of two normalised xyxy boxes (0 when both are empty).
    public static func iou(_ a: [Double], _ b: [Double]) -> Double {
        let w = Swift.max(0, Swift.min(a[2], b[2]) - Swift.max(a[0], b[0])), h = Swift.max(0, Swift.min(a[3], b[3]) - Swift.max(a[1], b[1]))
        let inter = w * h, union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return union > 0 ? inter / union : 0
    }

    /// Objects in one RGB frame (height × width × 3 bytes).
    public func detect(_ rgb: ArraySlice<UInt8>, width: Int, height: Int) -> [Detection] {
        let count = width * height
        let base = rgb.startIndex
        let table = maxDistance == 70 ? Self.defaultTable : Self.labelTable(maxDistance: maxDistance)
        var labels = [Label](repeating: .none, count: count)
        for p in 0..<count {
            let key = Int(rgb[base + 3 * p] >> 2) << 12 | Int(rgb[base + 3 * p + 1] >> 2) << 6 | Int(rgb[base + 3 * p + 2] >> 2)
            labels[p] = table[key]
        }
        var detections: [Detection] = []
        var visited = [Bool](repeating: false, count: count)
        for start in 0..<count {
            guard case .body(let colour) = labels[start], !visited[start] else { continue }
            // Flood fill over this colour's body and shade pixels, starting from a body pixel.
            var stack = [start], members: [Int] = []
            visited[start] = true
            while let p = stack.popLast() {
                members.append(p)
                let (x, y) = (p % width, p / width)
                for dy in -1...1 {
                    for dx in -1...1 where dx != 0 || dy != 0 {
                        let (nx, ny) = (x + dx, y + dy)
                        guard nx >= 0, ny >= 0, nx < width, ny < height else { continue }
                        let q = ny * width + nx
                        guard !visited[q] else { continue }
                        if labels[q] == .body(colour) || labels[q] == .shade(colour) {
                            visited[q] = true
                            stack.append(q)
                        }
                    }
                }
            }
            let bodyCount = members.filter { labels[$0] == .body(colour) }.count
            guard bodyCount >= minPixels else { continue }
            var minX = width, minY = height, maxX = -1, maxY = -1
            for p in members {
                minX = Swift.min(minX, p % width); maxX = Swift.max(maxX, p % width)
                minY = Swift.min(minY, p / width); maxY = Swift.max(maxY, p / width)
            }
            let boxW = maxX - minX + 1, boxH = maxY - minY + 1
            var mask = [Bool](repeating: false, count: boxW * boxH)
            for p in members { mask[(p / width - minY) * boxW + (p % width - minX)] = true }
            let touches = (left: minX == 0, right: maxX == width - 1, top: minY == 0, bottom: maxY == height - 1)
            var bestKind = World.Kind.ball, bestScore = -1.0
            for kind in World.Kind.allCases {
                for mirrored in [false, true] {
                    let score = Self.overlap(mask, boxW, boxH, kind: kind, mirrored: mirrored, touches: touches)
                    if score > bestScore { bestScore = score; bestKind = kind }
                }
            }
            detections.append(Detection(kind: bestKind, colour: World.colours[colour].name,
                                        box: [Double(minX) / Double(width), Double(minY) / Double(height),
                                              Double(maxX + 1) / Double(width), Double(maxY + 1) / Double(height)],
                                        score: bestScore))
        }
        return detections.sorted { $0.score > $1.score }
    }

    /// IoU of a component's mask with a kind's silhouette fitted to the component's box. A box
    /// cut by the frame edge keeps the silhouette's size from the other axis and aligns it to the
    /// inner side.
    static func overlap(_ mask: [Bool], _ w: Int, _ h: Int, kind: World.Kind, mirrored: Bool,
                        touches: (left: Bool, right: Bool, top: Bool, bottom: Bool)) -> Double {
        let sprite = silhouettes[kind]!
        let n = 48
        let spanU = sprite.u1 - sprite.u0, spanV = sprite.v1 - sprite.v0
        let spriteAspect = spanU / spanV * World.aspect(kind) // the shapes' width : height in pixels
        // Full-sprite extent in pixels (the visible box, or reconstructed when cut).
        var fullW = Double(w), fullH = Double(h)
        let cutX = touches.left || touches.right, cutY = touches.top || touches.bottom
        if cutX && !cutY { fullW = Swift.max(Double(w), Double(h) * spriteAspect) }
        if cutY && !cutX { fullH = Swift.max(Double(h), Double(w) / spriteAspect) }
        // Where the visible box sits inside the full extent.
        let offsetX = touches.left && !touches.right ? fullW - Double(w) : 0
        let offsetY = touches.top && !touches.bottom ? fullH - Double(h) : 0
        var inter = 0, union = 0
        for y in 0..<h {
            for x in 0..<w {
                var u = sprite.u0 + (Double(x) + 0.5 + offsetX) / fullW * spanU
                let v = sprite.v0 + (Double(y) + 0.5 + offsetY) / fullH * spanV
                if mirrored { u = sprite.u1 - (u - sprite.u0) }
                let i = Swift.min(n - 1, Swift.max(0, Int(u * Double(n)))), j = Swift.min(n - 1, Swift.max(0, Int(v * Double(n))))
                let template = u >= 0 && u <= 1 && v >= 0 && v <= 1 && sprite.mask[j * n + i]
                let m = mask[y * w + x]
                if m && template { inter += 1 }
                if m || template { union += 1 }
            }
        }
        return union == 0 ? 0 : Double(inter) / Double(union)
    }
}
