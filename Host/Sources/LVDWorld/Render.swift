import Foundation

/// Draws scenes: backgrounds from bands and gradients, sprites from a few filled shapes in
/// sprite coordinates (u, v ∈ [0, 1], v down, facing right), 4 samples per pixel at the edges.
/// Background colours keep a distance from all eleven object colours, so colour alone tells
/// object pixels from the scene.
public enum WorldRenderer {
    public typealias RGB = (Double, Double, Double)

    /// A rendered clip: frames × size × size × RGB bytes, and for every object and frame the
    /// exact box of the pixels it covers (normalised xyxy; nil when none — off the canvas),
    /// whether or not another object hides them.
    public struct Clip: Sendable {
        public var pixels: [UInt8]
        public var boxes: [[[Double]?]]
        /// Share of each object's covered pixels not hidden by a later object, per frame (0 when
        /// it covers none).
        public var visible: [[Double]]
    }

    public static func render(_ scene: World.Scene) -> Clip {
        let s = scene.size
        var out = [UInt8](repeating: 0, count: scene.frames * s * s * 3)
        var boxes = [[[Double]?]](repeating: [[Double]?](repeating: nil, count: scene.frames), count: scene.objects.count)
        var visible = [[Double]](repeating: [Double](repeating: 0, count: scene.frames), count: scene.objects.count)
        let background = (0..<(s * s)).map { p in backgroundColour(scene.background, x: p % s, y: p / s, size: s) }
        let offsets = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]
        for f in 0..<scene.frames {
            var canvas = background
            var owner = [Int](repeating: -1, count: s * s)
            var coverage = [Int](repeating: 0, count: scene.objects.count)
            for (index, object) in scene.objects.enumerated() {
                var minX = s, minY = s, maxX = -1, maxY = -1
                defer {
                    if maxX >= 0 { boxes[index][f] = [Double(minX) / Double(s), Double(minY) / Double(s), Double(maxX + 1) / Double(s), Double(maxY + 1) / Double(s)] }
                }
                let (ox, oy) = (object.path[f].x, object.path[f].y)
                let x0 = Swift.max(0, Int(ox.rounded(.down))), x1 = Swift.min(s, Int((ox + object.width).rounded(.up)))
                let y0 = Swift.max(0, Int(oy.rounded(.down))), y1 = Swift.min(s, Int((oy + object.height).rounded(.up)))
                guard x1 > x0, y1 > y0 else { continue }
                let body = World.colours[object.colour].rgb
                let base: RGB = (Double(body.0), Double(body.1), Double(body.2))
                for y in y0..<y1 {
                    for x in x0..<x1 {
                        var sum: RGB = (0, 0, 0)
                        var covered = 0
                        for (dx, dy) in offsets {
                            var u = (Double(x) + dx - ox) / object.width
                            let v = (Double(y) + dy - oy) / object.height
                            if object.facingLeft { u = 1 - u }
                            guard let c = shade(object.kind, u, v, base) else { continue }
                            sum.0 += c.0; sum.1 += c.1; sum.2 += c.2
                            covered += 1
                        }
                        guard covered > 0 else { continue }
                        minX = Swift.min(minX, x); maxX = Swift.max(maxX, x); minY = Swift.min(minY, y); maxY = Swift.max(maxY, y)
                        let p = y * s + x
                        coverage[index] += 1
                        owner[p] = index
                        let bg = canvas[p], k = Double(covered)
                        canvas[p] = ((sum.0 + bg.0 * (4 - k)) / 4, (sum.1 + bg.1 * (4 - k)) / 4, (sum.2 + bg.2 * (4 - k)) / 4)
                    }
                }
            }
            var owned = [Int](repeating: 0, count: scene.objects.count)
            for p in 0..<(s * s) where owner[p] >= 0 { owned[owner[p]] += 1 }
            for index in scene.objects.indices where coverage[index] > 0 { visible[index][f] = Double(owned[index]) / Double(coverage[index]) }
            for p in 0..<(s * s) {
                let o = (f * s * s + p) * 3
                out[o] = UInt8(Swift.max(0, Swift.min(255, canvas[p].0.rounded())))
                out[o + 1] = UInt8(Swift.max(0, Swift.min(255, canvas[p].1.rounded())))
                out[o + 2] = UInt8(Swift.max(0, Swift.min(255, canvas[p].2.rounded())))
            }
        }
        return Clip(pixels: out, boxes: boxes, visible: visible)
    }

    static func backgroundColour(_ background: World.Background, x: Int, y: Int, size: Int) -> RGB {
        let v = Double(y) / Double(size), u = Double(x) / Double(size)
        func mix(_ a: RGB, _ b: RGB, _ t: Double) -> RGB { (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t, a.2 + (b.2 - a.2) * t) }
        switch background {
        case .street:
            if v < 0.42 { return mix((150, 185, 220), (185, 205, 225), v / 0.42) }            // sky over the street
            if v < 0.5 { return (165, 160, 150) }                                              // pavement
            let dash = abs(v - 0.76) < 0.025 && Int(u * 8) % 2 == 0
            return dash ? (215, 215, 200) : (80, 82, 88)                                       // road and lane mark
        case .grass:
            if v < 0.38 { return mix((140, 190, 235), (175, 210, 235), v / 0.38) }
            let stripe = Int(v * 24) % 2 == 0 ? 0.0 : 8.0
            return (70 + stripe, 115 + stripe, 45)                                             // darker than the green sprites
        case .sky:
            let cloud = pow((u - 0.3) / 0.22, 2) + pow((v - 0.25) / 0.08, 2) < 1 || pow((u - 0.72) / 0.18, 2) + pow((v - 0.62) / 0.07, 2) < 1
            return cloud ? (205, 220, 238) : mix((95, 150, 225), (165, 200, 240), v)
        case .room:
            if v < 0.6 { return (222, 205, 170) }                                              // wall
            let seam = Int(v * 30) % 3 == 0
            return seam ? (150, 100, 62) : (175, 122, 80)                                      // wooden floor
        case .scene:
            return mix((196, 196, 204), (176, 176, 184), v)
        }
    }

    // MARK: Sprites

    static func circle(_ u: Double, _ v: Double, _ cx: Double, _ cy: Double, _ r: Double) -> Bool { pow(u - cx, 2) + pow(v - cy, 2) <= r * r }
    static func ellipse(_ u: Double, _ v: Double, _ cx: Double, _ cy: Double, _ rx: Double, _ ry: Double) -> Bool {
        pow((u - cx) / rx, 2) + pow((v - cy) / ry, 2) <= 1
    }
    static func box(_ u: Double, _ v: Double, _ u0: Double, _ v0: Double, _ u1: Double, _ v1: Double) -> Bool { u >= u0 && u <= u1 && v >= v0 && v <= v1 }
    static func triangle(_ u: Double, _ v: Double, _ a: (Double, Double), _ b: (Double, Double), _ c: (Double, Double)) -> Bool {
        func side(_ p: (Double, Double), _ q: (Double, Double)) -> Double { (q.0 - p.0) * (v - p.1) - (q.1 - p.1) * (u - p.0) }
        let d1 = side(a, b), d2 = side(b, c), d3 = side(c, a)
        return !((d1 < 0 || d2 < 0 || d3 < 0) && (d1 > 0 || d2 > 0 || d3 > 0))
    }
    static func segment(_ u: Double, _ v: Double, _ a: (Double, Double), _ b: (Double, Double), _ width: Double) -> Bool {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1)
        let t = Swift.max(0, Swift.min(1, ((u - a.0) * dx + (v - a.1) * dy) / (dx * dx + dy * dy)))
        return pow(u - a.0 - t * dx, 2) + pow(v - a.1 - t * dy, 2) <= width * width / 4
    }

    /// The sprite's colour at (u, v), or nil outside it. Details are a darker or lighter shade of
    /// the body, so every object pixel stays near its colour.
    static func shade(_ kind: World.Kind, _ u: Double, _ v: Double, _ body: RGB) -> RGB? {
        guard u >= 0, u <= 1, v >= 0, v <= 1 else { return nil }
        let luminance = 0.3 * body.0 + 0.59 * body.1 + 0.11 * body.2
        let dark: RGB = luminance < 60 ? (body.0 + 70, body.1 + 70, body.2 + 70) : (body.0 * 0.45, body.1 * 0.45, body.2 * 0.45)
        let light: RGB = (body.0 + (255 - body.0) * 0.45, body.1 + (255 - body.1) * 0.45, body.2 + (255 - body.2) * 0.45)
        switch kind {
        case .ball:
            guard circle(u, v, 0.5, 0.5, 0.5) else { return nil }
            return circle(u, v, 0.36, 0.32, 0.13) ? light : body
        case .car:
            if circle(u, v, 0.24, 0.8, 0.17) || circle(u, v, 0.76, 0.8, 0.17) { return dark }                         // wheels
            if box(u, v, 0.33, 0.14, 0.67, 0.38) && !box(u, v, 0.48, 0.14, 0.52, 0.38) { return light }               // windows
            if box(u, v, 0, 0.4, 1, 0.78) || triangle(u, v, (0.18, 0.42), (0.3, 0.06), (0.3, 0.42))
                || box(u, v, 0.3, 0.06, 0.72, 0.42) || triangle(u, v, (0.72, 0.06), (0.84, 0.42), (0.72, 0.42)) { return body }
            return nil
        case .cat:
            if circle(u, v, 0.77, 0.34, 0.035) || circle(u, v, 0.88, 0.34, 0.035) { return dark }                      // eyes
            if ellipse(u, v, 0.45, 0.66, 0.34, 0.24) || circle(u, v, 0.82, 0.38, 0.17)
                || triangle(u, v, (0.64, 0.32), (0.68, 0.0), (0.82, 0.24)) || triangle(u, v, (0.82, 0.24), (0.96, 0.0), (0.99, 0.32))
                || segment(u, v, (0.16, 0.62), (0.06, 0.2), 0.14) || box(u, v, 0.17, 0.78, 0.3, 1) || box(u, v, 0.58, 0.78, 0.71, 1) { return body }
            return nil
        case .dog:
            if circle(u, v, 0.84, 0.3, 0.035) { return dark }                                                             // eye
            if ellipse(u, v, 0.74, 0.4, 0.06, 0.15) { return dark }                                                       // ear
            if ellipse(u, v, 0.45, 0.5, 0.34, 0.22) || box(u, v, 0.16, 0.55, 0.3, 1) || box(u, v, 0.58, 0.55, 0.72, 1)
                || circle(u, v, 0.8, 0.33, 0.17) || circle(u, v, 0.95, 0.4, 0.08) || segment(u, v, (0.13, 0.45), (0.04, 0.14), 0.13) { return body }
            return nil
        case .bird:
            if circle(u, v, 0.79, 0.34, 0.035) { return dark }                                                            // eye
            if triangle(u, v, (0.86, 0.32), (1.0, 0.42), (0.86, 0.5)) { return dark }                                     // beak
            if triangle(u, v, (0.28, 0.5), (0.58, 0.5), (0.38, 0.08)) { return light }                                    // wing
            if ellipse(u, v, 0.45, 0.58, 0.3, 0.22) || circle(u, v, 0.75, 0.4, 0.15)
                || triangle(u, v, (0, 0.36), (0.24, 0.56), (0, 0.8)) { return body }
            return nil
        }
    }
}
