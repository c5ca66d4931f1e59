import LVDFormats

/// Per-frame boxes of a layout's objects (STAGE1.md §5): objects in order of first appearance,
/// the name at that first appearance, and for every output frame a normalised `xyxy` box
/// (`[0, 0, 0, 0]` where the object is absent).
public struct Condition: Equatable, Sendable {
    public var ids: [Int]
    public var names: [String]
    /// boxes[object][frame] = [x0, y0, x1, y1]
    public var boxes: [[[Double]]]

    public var frameCount: Int { boxes.first?.count ?? 0 }

    /// The condition of `layout` over `frames` output frames. Boxes are divided by `width` and
    /// `height` (512 for every video model in generation; the video's size for detections).
    /// `stripDigits` strips digits and spaces from both ends of names (evaluation, §5.5).
    public init(_ layout: Layout, frames: Int, width: Double = 512, height: Double = 512, stripDigits: Bool = false) {
        var order: [Int] = []
        var names: [Int: String] = [:]
        var keyboxes: [Int: [Int: [Double]]] = [:]
        for (index, keyframe) in layout.keyframes.enumerated() {
            for object in keyframe {
                if names[object.id] == nil {
                    names[object.id] = object.name
                    order.append(object.id)
                }
                // A repeated id within one keyframe: the last one wins.
                keyboxes[object.id, default: [:]][index] = Condition.xyxy(object.box, width: width, height: height)
            }
        }
        ids = order
        self.names = order.map { id in
            let name = names[id]!
            return stripDigits ? String(scalars: Array(name.unicodeScalars).pythonStripped(Set("0123456789 ".unicodeScalars))) : name
        }
        boxes = order.map { Condition.interpolate(keyboxes[$0]!, keyframes: layout.keyframes.count, frames: frames) }
    }

    /// `[x, y, w, h]` on the canvas → `[x/W, y/H, x/W + w/W, y/H + h/H]`, no clipping (§5.2).
    public static func xyxy(_ box: [Double], width: Double, height: Double) -> [Double] {
        [box[0] / width, box[1] / height, box[0] / width + box[2] / width, box[1] / height + box[3] / height]
    }

    /// NumPy's `linspace(start, stop, count)`: the last value exactly `stop`.
    public static func linspace(_ start: Double, _ stop: Double, _ count: Int) -> [Double] {
        guard count > 1 else { return count == 1 ? [start] : [] }
        let step = (stop - start) / Double(count - 1)
        var values = (0..<count).map { start + Double($0) * step }
        values[count - 1] = stop
        return values
    }

    /// Keyframe boxes of one object → `frames` boxes, as the reference (§5.3): query positions
    /// `linspace(0, 1 − 1e-5, N)`, presence by bucket `floor(q·Nin)`, NumPy `interp` with
    /// constant extrapolation between the keyframes where the object is present.
    public static func interpolate(_ keyboxes: [Int: [Double]], keyframes: Int, frames: Int) -> [[Double]] {
        let present = keyboxes.keys.sorted()
        let xs = present.map { Double($0) / Double(Swift.max(keyframes - 1, 1)) }
        return linspace(0, 1 - 1e-5, frames).map { q in
            let bucket = Int((q * Double(keyframes)).rounded(.down))
            guard keyboxes[bucket] != nil else { return [0, 0, 0, 0] }
            return (0..<4).map { c in interp(q, xs, present.map { keyboxes[$0]![c] }) }
        }
    }

    /// NumPy's `interp` for increasing `xs`, with its arithmetic (slope·(x − xᵢ) + yᵢ, an exact
    /// hit returns yᵢ), clamped at both ends.
    static func interp(_ x: Double, _ xs: [Double], _ ys: [Double]) -> Double {
        if x <= xs[0] { return ys[0] }
        if x >= xs[xs.count - 1] { return ys[ys.count - 1] }
        var i = 0
        while !(xs[i] <= x && x < xs[i + 1]) { i += 1 }
        if xs[i] == x { return ys[i] }
        let slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
        return slope * (x - xs[i]) + ys[i]
    }
}
