import Foundation

/// The tiny world's detector (in place of OWL-ViT for the stage-2 benchmark): per frame, the
/// objects it sees with class, colour, box and score.
///
/// 1. Every pixel takes the nearest of the eleven object colours, their darker and lighter
///    shades (the sprites' details) and the backgrounds' colours, if near enough; a pixel that
///    is no colour exactly (blurred, noisy) is also claimed by any object colour whose prototype
///    is nearly as near, unless a background colour is nearer.
/// 2. From each pixel nearest a colour's body, the pixels that colour claims form an 8-connected
///    component (body and shades); specks, and regions spanning most of the frame (background in
///    an object's colour), are dropped.
/// 3. A component's class is the sprite silhouette (each kind, both facings, drawn in body, dark
///    and light shades) that overlaps its mask best, shade for shade, placed over the component's
///    box or a larger extent where blur, the frame's edge or another object took off a thin part,
///    with the kind's proportions as a prior; that overlap is the score, the placed silhouette's
///    extent (within the frame) the box.
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

    enum Label: Equatable { case none, body(Int), dark(Int), light(Int) }

    /// Prototype colours: body, dark and light shade per object colour, then background colours.
    static let prototypes: [(rgb: (Double, Double, Double), label: Label)] = {
        var list: [(rgb: (Double, Double, Double), label: Label)] = []
        for (index, colour) in World.colours.enumerated() {
            let body = (Double(colour.rgb.0), Double(colour.rgb.1), Double(colour.rgb.2))
            list.append((body, .body(index)))
            let luminance = 0.3 * body.0 + 0.59 * body.1 + 0.11 * body.2
            let dark = luminance < 60 ? (body.0 + 70, body.1 + 70, body.2 + 70) : (body.0 * 0.45, body.1 * 0.45, body.2 * 0.45)
            let light = (body.0 + (255 - body.0) * 0.45, body.1 + (255 - body.1) * 0.45, body.2 + (255 - body.2) * 0.45)
            list.append((dark, .dark(index)))
            list.append((light, .light(index)))
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

    /// Pixel codes of component masks and silhouettes: nothing, body colour, dark shade, light shade.
    static let empty: UInt8 = 0, bodyCode: UInt8 = 1, darkCode: UInt8 = 2, lightCode: UInt8 = 3

    typealias Silhouette = (mask: [UInt8], u0: Double, v0: Double, u1: Double, v1: Double)

    /// Silhouettes of each kind, facing right, on a 48×48 sprite grid (each cell body, dark or
    /// light as drawn), and their tight bounds.
    static let silhouettes: [World.Kind: Silhouette] = {
        var result: [World.Kind: Silhouette] = [:]
        let n = 48
        for kind in World.Kind.allCases {
            var mask = [UInt8](repeating: empty, count: n * n)
            var u0 = 1.0, v0 = 1.0, u1 = 0.0, v1 = 0.0
            for j in 0..<n {
                for i in 0..<n {
                    let (u, v) = ((Double(i) + 0.5) / Double(n), (Double(j) + 0.5) / Double(n))
                    guard let colour = WorldRenderer.shade(kind, u, v, (128, 128, 128)) else { continue }
                    mask[j * n + i] = colour.0 < 100 ? darkCode : colour.0 > 150 ? lightCode : bodyCode
                    u0 = Swift.min(u0, Double(i) / Double(n)); u1 = Swift.max(u1, Double(i + 1) / Double(n))
                    v0 = Swift.min(v0, Double(j) / Double(n)); v1 = Swift.max(v1, Double(j + 1) / Double(n))
                }
            }
            result[kind] = (mask, u0, v0, u1, v1)
        }
        return result
    }()

    /// How far (RGB) a second object colour may be behind the nearest one and still claim a
    /// pixel: the shades of the achromatic colours overlap (black's light shade is gray's body,
    /// white's dark shade is near it), and blur mixes them further, so such a pixel belongs to
    /// both colours' regions. A background colour nearer than every object colour always wins.
    public var ambiguity = 12.0

    /// For every colour (6 bits per channel): the nearest prototype's label within `maxDistance`,
    /// and for each object colour the code (body, dark, light shade; or empty) it claims the
    /// pixel with — `codes[key * colours + c]`.
    struct ColourTable {
        var nearest: [Label]
        var codes: [UInt8]
    }

    static func colourTable(maxDistance: Double, ambiguity: Double) -> ColourTable {
        // A pixel this near a prototype is that colour as drawn: no second colour claims it.
        let exact = 6.0
        let colours = World.colours.count
        var nearest = [Label](repeating: .none, count: 1 << 18)
        var codes = [UInt8](repeating: empty, count: (1 << 18) * colours)
        for key in 0..<(1 << 18) {
            let (r, g, b) = (Double((key >> 12) << 2 | 2), Double(((key >> 6) & 63) << 2 | 2), Double((key & 63) << 2 | 2))
            var best = Double.infinity, label = Label.none, background = Double.infinity
            var perColour = [(distance: Double, code: UInt8)](repeating: (.infinity, empty), count: colours)
            for prototype in prototypes {
                let d = ((r - prototype.rgb.0) * (r - prototype.rgb.0) + (g - prototype.rgb.1) * (g - prototype.rgb.1)
                    + (b - prototype.rgb.2) * (b - prototype.rgb.2)).squareRoot()
                if d < best { best = d; label = prototype.label }
                switch prototype.label {
                case .none: background = Swift.min(background, d)
                case .body(let c): if d < perColour[c].distance { perColour[c] = (d, bodyCode) }
                case .dark(let c): if d < perColour[c].distance { perColour[c] = (d, darkCode) }
                case .light(let c): if d < perColour[c].distance { perColour[c] = (d, lightCode) }
                }
            }
            nearest[key] = best <= maxDistance ? label : .none
            for c in 0..<colours where perColour[c].distance <= maxDistance && perColour[c].distance < background
                && (perColour[c].distance == best || best > exact && perColour[c].distance <= best + ambiguity) {
                codes[key * colours + c] = perColour[c].code
            }
        }
        return ColourTable(nearest: nearest, codes: codes)
    }

    static let defaultTable = colourTable(maxDistance: 70, ambiguity: 12)

    /// Objects in each frame of a clip (frames × height × width × 3 bytes).
    public func detect(frames rgb: [UInt8], count: Int, width: Int, height: Int) -> [[Detection]] {
        let bytes = width * height * 3
        return (0..<count).map { detect(rgb[($0 * bytes)..<(($0 + 1) * bytes)], width: width, height: height) }
    }

    /// How a video made for a single-object caption reads: is the named class, the named colour,
    /// and the named object alone (one detection, of that class and colour) found in at least half
    /// the frames; and the detections a frame, on average. A frame full of blobs of every colour
    /// finds the named class and colour by chance: `alone` and `perFrame` tell it from one object.
    public struct CaptionScore: Equatable, Sendable {
        public var classFound: Bool
        public var colourFound: Bool
        public var alone: Bool
        public var perFrame: Double

        public init(classFound: Bool, colourFound: Bool, alone: Bool, perFrame: Double) {
            self.classFound = classFound
            self.colourFound = colourFound
            self.alone = alone
            self.perFrame = perFrame
        }
    }

    public static func captionScore(_ detections: [[Detection]], kind: World.Kind, colour: String) -> CaptionScore {
        let half = (detections.count + 1) / 2
        func inHalf(_ test: ([Detection]) -> Bool) -> Bool { detections.filter(test).count >= half }
        return CaptionScore(
            classFound: inHalf { $0.contains { $0.kind == kind } },
            colourFound: inHalf { $0.contains { $0.colour == colour } },
            alone: inHalf { $0.count == 1 && $0[0].kind == kind && $0[0].colour == colour },
            perFrame: detections.isEmpty ? 0 : Double(detections.map(\.count).reduce(0, +)) / Double(detections.count))
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
        let table = maxDistance == 70 && ambiguity == 12 ? Self.defaultTable : Self.colourTable(maxDistance: maxDistance, ambiguity: ambiguity)
        let colours = World.colours.count
        var keys = [Int](repeating: 0, count: count)
        for p in 0..<count {
            keys[p] = Int(rgb[base + 3 * p] >> 2) << 12 | Int(rgb[base + 3 * p + 1] >> 2) << 6 | Int(rgb[base + 3 * p + 2] >> 2)
        }
        var detections: [Detection] = []
        // A pixel may lie in regions of two colours (see `ambiguity`): visited per colour.
        var visited = [Bool](repeating: false, count: count * colours)
        for start in 0..<count {
            guard case .body(let colour) = table.nearest[keys[start]], !visited[colour * count + start] else { continue }
            // Flood fill over the pixels this colour claims, starting from one nearest its body.
            func code(_ p: Int) -> UInt8 { table.codes[keys[p] * colours + colour] }
            var stack = [start], members: [Int] = []
            visited[colour * count + start] = true
            while let p = stack.popLast() {
                members.append(p)
                let (x, y) = (p % width, p / width)
                for dy in -1...1 {
                    for dx in -1...1 where dx != 0 || dy != 0 {
                        let (nx, ny) = (x + dx, y + dy)
                        guard nx >= 0, ny >= 0, nx < width, ny < height else { continue }
                        let q = ny * width + nx
                        guard !visited[colour * count + q], code(q) != Self.empty else { continue }
                        visited[colour * count + q] = true
                        stack.append(q)
                    }
                }
            }
            let bodyCount = members.filter { code($0) == Self.bodyCode }.count
            guard bodyCount >= minPixels else { continue }
            var minX = width, minY = height, maxX = -1, maxY = -1
            for p in members {
                minX = Swift.min(minX, p % width); maxX = Swift.max(maxX, p % width)
                minY = Swift.min(minY, p / width); maxY = Swift.max(maxY, p / width)
            }
            let boxW = maxX - minX + 1, boxH = maxY - minY + 1
            // No sprite spans three quarters of the frame (they are at most 60 % wide): a region
            // that does is background in an object's colour (a generated sky taken for blue).
            guard Double(boxW) <= 0.75 * Double(width), Double(boxH) <= 0.75 * Double(height) else { continue }
            var mask = [UInt8](repeating: Self.empty, count: boxW * boxH)
            for p in members { mask[(p / width - minY) * boxW + (p % width - minX)] = code(p) }
            let touches = (left: minX == 0, right: maxX == width - 1, top: minY == 0, bottom: maxY == height - 1)
            var best = Fit(score: -1, x0: 0, y0: 0, x1: Double(boxW), y1: Double(boxH))
            var bestKind = World.Kind.ball
            for kind in World.Kind.allCases {
                for mirrored in [false, true] {
                    let fit = Self.fit(mask, boxW, boxH, kind: kind, mirrored: mirrored, touches: touches)
                    if fit.score > best.score { best = fit; bestKind = kind }
                }
            }
            // The fitted sprite's extent on the canvas (it may reach past what the colour kept).
            let x0 = Swift.max(0, Double(minX) + best.x0), y0 = Swift.max(0, Double(minY) + best.y0)
            let x1 = Swift.min(Double(width), Double(minX) + best.x1), y1 = Swift.min(Double(height), Double(minY) + best.y1)
            detections.append(Detection(kind: bestKind, colour: World.colours[colour].name,
                                        box: [x0 / Double(width), y0 / Double(height), x1 / Double(width), y1 / Double(height)],
                                        score: best.score))
        }
        return detections.sorted { $0.score > $1.score }
    }

    /// A silhouette placed over a component: the score (mask IoU, less the aspect penalty) and
    /// the sprite's extent in the component box's pixel coordinates.
    struct Fit {
        var score: Double
        var x0: Double, y0: Double, x1: Double, y1: Double
    }

    /// The best placement of a kind's silhouette over a component's mask. The sprite's extent is
    /// the component's box, or larger where blur, a frame edge or another object took off a thin
    /// part (wheels, a tail, legs): up to 30 % wider or taller, the component at either end. A box
    /// cut by the frame edge keeps the silhouette's size from the other axis. Extents far from the
    /// kind's proportions are penalised, so an elongated blob is not a ball.
    static func fit(_ mask: [UInt8], _ w: Int, _ h: Int, kind: World.Kind, mirrored: Bool,
                    touches: (left: Bool, right: Bool, top: Bool, bottom: Bool)) -> Fit {
        let sprite = silhouettes[kind]!
        let spriteAspect = (sprite.u1 - sprite.u0) / (sprite.v1 - sprite.v0) * World.aspect(kind) // width : height in pixels
        let cutX = touches.left || touches.right, cutY = touches.top || touches.bottom
        // Candidate extents of an uncut axis: (size, offset of the component inside it).
        func options(_ size: Double) -> [(Double, Double)] {
            var list = [(size, 0.0)]
            for scale in [1.15, 1.3] { list += [(size * scale, 0), (size * scale, size * scale - size)] }
            return list
        }
        // A cut axis takes its size from each candidate of the other through the kind's
        // proportions (never less than what is visible), aligned to the inner side.
        func cut(_ size: Double, _ full: Double, low: Bool, high: Bool) -> (Double, Double) {
            let full = Swift.max(size, full)
            return (full, low && !high ? full - size : 0)
        }
        var candidates: [(fullW: Double, offsetX: Double, fullH: Double, offsetY: Double)] = []
        switch (cutX, cutY) {
        case (true, true):
            candidates = [(Double(w), 0, Double(h), 0)]
        case (true, false):
            for (fullH, offsetY) in options(Double(h)) {
                let (fullW, offsetX) = cut(Double(w), fullH * spriteAspect, low: touches.left, high: touches.right)
                candidates.append((fullW, offsetX, fullH, offsetY))
            }
        case (false, true):
            for (fullW, offsetX) in options(Double(w)) {
                let (fullH, offsetY) = cut(Double(h), fullW / spriteAspect, low: touches.top, high: touches.bottom)
                candidates.append((fullW, offsetX, fullH, offsetY))
            }
        case (false, false):
            for (fullW, offsetX) in options(Double(w)) {
                for (fullH, offsetY) in options(Double(h)) { candidates.append((fullW, offsetX, fullH, offsetY)) }
            }
        }
        var best = Fit(score: -1, x0: 0, y0: 0, x1: Double(w), y1: Double(h))
        for (fullW, offsetX, fullH, offsetY) in candidates {
            let iou = overlap(mask, w, h, sprite: sprite, mirrored: mirrored, fullW: fullW, fullH: fullH, offsetX: offsetX, offsetY: offsetY,
                              cutX: cutX, cutY: cutY)
            // Proportions only tell when neither axis is cut.
            let skew = cutX || cutY ? 0 : abs(log((fullW / fullH) / spriteAspect))
            let score = iou - 0.5 * Swift.max(0, skew - log(1.2))
            if score > best.score {
                best = Fit(score: score, x0: -offsetX, y0: -offsetY, x1: fullW - offsetX, y1: fullH - offsetY)
            }
        }
        best.score = Swift.max(best.score, 0)
        return best
    }

    /// IoU of the mask with the silhouette drawn over `fullW` × `fullH` pixels, the mask's box at
    /// (`offsetX`, `offsetY`) inside; on a cut axis only the visible part (the mask's box) counts.
    static func overlap(_ mask: [UInt8], _ w: Int, _ h: Int, sprite: Silhouette,
                        mirrored: Bool, fullW: Double, fullH: Double, offsetX: Double, offsetY: Double, cutX: Bool, cutY: Bool) -> Double {
        let n = 48
        let spanU = sprite.u1 - sprite.u0, spanV = sprite.v1 - sprite.v0
        let (xFrom, xTo) = cutX ? (0, w) : (Int((-offsetX).rounded(.down)), Int((fullW - offsetX).rounded(.up)))
        let (yFrom, yTo) = cutY ? (0, h) : (Int((-offsetY).rounded(.down)), Int((fullH - offsetY).rounded(.up)))
        // The silhouette's grid column of every x and row of every y (-1: outside its bounds).
        let columns = (xFrom..<xTo).map { x -> Int in
            var u = sprite.u0 + (Double(x) + 0.5 + offsetX) / fullW * spanU
            if mirrored { u = sprite.u1 - (u - sprite.u0) }
            return u >= sprite.u0 && u <= sprite.u1 ? Swift.min(n - 1, Swift.max(0, Int(u * Double(n)))) : -1
        }
        let rows = (yFrom..<yTo).map { y -> Int in
            let v = sprite.v0 + (Double(y) + 0.5 + offsetY) / fullH * spanV
            return v >= sprite.v0 && v <= sprite.v1 ? Swift.min(n - 1, Swift.max(0, Int(v * Double(n)))) : -1
        }
        // Pixels both cover count 1 when their shades agree (body, dark or light) and ½ when not.
        var inter = 0, union = 0
        sprite.mask.withUnsafeBufferPointer { silhouette in
            mask.withUnsafeBufferPointer { mask in
                for r in 0..<rows.count {
                    let y = yFrom + r, row = rows[r]
                    let inside = y >= 0 && y < h
                    for c in 0..<columns.count {
                        let x = xFrom + c, column = columns[c]
                        let template = row >= 0 && column >= 0 ? silhouette[row * n + column] : empty
                        let m = inside && x >= 0 && x < w ? mask[y * w + x] : empty
                        if m != empty && template != empty { inter += m == template ? 2 : 0 }
                        if m != empty || template != empty { union += 2 }
                    }
                }
            }
        }
        return union == 0 ? 0 : Double(inter) / Double(union)
    }
}
