import LVDFormats
import LVDStage1

/// Renders a layout as an animated GIF of boxes: its keyframes interpolated to `frames` frames
/// as generation sees them (STAGE1.md §5.3), one colour per object id, each box labelled with
/// its name, the background keyword and the frame number written along the edges.
public enum LayoutGIF {
    /// White, black, grey, then twelve well-separated object colours.
    public static let palette: [(UInt8, UInt8, UInt8)] = [
        (250, 250, 250), (20, 20, 20), (200, 200, 200),
        (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 200, 200),
        (240, 50, 230), (150, 110, 40), (128, 128, 0), (0, 0, 128), (170, 110, 195), (128, 0, 0),
    ]
    static let objectColours = 12

    /// Palette-indexed frames of `size` × `size` pixels.
    public static func frames(_ layout: Layout, frames count: Int = 16, size: Int = 256) -> [[UInt8]] {
        let condition = Condition(layout, frames: count, width: Double(layout.canvasWidth), height: Double(layout.canvasHeight))
        return (0..<count).map { f in
            var canvas = Canvas(size: size)
            for (object, boxes) in condition.boxes.enumerated() {
                let box = boxes[f]
                guard box != [0, 0, 0, 0] else { continue }
                let colour = UInt8(3 + condition.ids[object] % objectColours)
                let (x0, y0) = (Int((box[0] * Double(size)).rounded()), Int((box[1] * Double(size)).rounded()))
                let (x1, y1) = (Int((box[2] * Double(size)).rounded()), Int((box[3] * Double(size)).rounded()))
                canvas.rectangle(x0, y0, x1, y1, colour, thickness: 2)
                let label = "\(condition.ids[object]) \(condition.names[object])"
                canvas.fill(x0, y0 - 9, x0 + label.count * 6 + 2, y0, colour)
                canvas.text(label, x: x0 + 1, y: y0 - 8, colour: 0)
            }
            if !layout.background.isEmpty { canvas.text("BG: " + layout.background, x: 3, y: size - 10, colour: 1) }
            let counter = "\(f + 1)/\(count)"
            canvas.text(counter, x: size - counter.count * 6 - 2, y: 2, colour: 1)
            return canvas.pixels
        }
    }

    /// Writes the layout's GIF at 8 fps, looping.
    public static func write(_ layout: Layout, to path: String, frames count: Int = 16, size: Int = 256) throws {
        try GIFWriter(width: size, height: size, palette: palette).write(frames(layout, frames: count, size: size), fps: 8, to: path)
    }

    struct Canvas {
        let size: Int
        var pixels: [UInt8]

        init(size: Int) {
            self.size = size
            pixels = [UInt8](repeating: 0, count: size * size)
        }

        mutating func set(_ x: Int, _ y: Int, _ colour: UInt8) {
            guard x >= 0, y >= 0, x < size, y < size else { return }
            pixels[y * size + x] = colour
        }

        mutating func fill(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ colour: UInt8) {
            for y in Swift.max(y0, 0)..<Swift.max(Swift.min(y1, size), Swift.max(y0, 0)) {
                for x in Swift.max(x0, 0)..<Swift.max(Swift.min(x1, size), Swift.max(x0, 0)) { pixels[y * size + x] = colour }
            }
        }

        mutating func rectangle(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ colour: UInt8, thickness: Int) {
            fill(x0, y0, x1, y0 + thickness, colour)
            fill(x0, y1 - thickness, x1, y1, colour)
            fill(x0, y0, x0 + thickness, y1, colour)
            fill(x1 - thickness, y0, x1, y1, colour)
        }

        /// 5×7 capitals with one column of spacing.
        mutating func text(_ string: String, x: Int, y: Int, colour: UInt8) {
            for (index, character) in string.uppercased().enumerated() {
                let rows = BitmapFont.glyph(character)
                for (dy, row) in rows.enumerated() {
                    for dx in 0..<5 where row & (0b10000 >> dx) != 0 { set(x + index * 6 + dx, y + dy, colour) }
                }
            }
        }
    }
}

/// A 5×7 bitmap font of capitals, digits and common punctuation, drawn for this project.
/// Each glyph is seven rows of five bits, the high bit leftmost.
extension LayoutGIF {
    /// The lit pixels (x, y) of `text` in the 5×7 font, one column between characters.
    public static func textPixels(_ text: String) -> [(Int, Int)] {
        var pixels: [(Int, Int)] = []
        for (index, character) in text.uppercased().enumerated() {
            for (dy, row) in BitmapFont.glyph(character).enumerated() {
                for dx in 0..<5 where row & (0b10000 >> dx) != 0 { pixels.append((index * 6 + dx, dy)) }
            }
        }
        return pixels
    }
}

enum BitmapFont {
    static func glyph(_ c: Character) -> [UInt8] { glyphs[c] ?? glyphs["?"]! }

    static let glyphs: [Character: [UInt8]] = [
        " ": [0, 0, 0, 0, 0, 0, 0],
        "A": [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
        "B": [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110],
        "C": [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110],
        "D": [0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100],
        "E": [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111],
        "F": [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000],
        "G": [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111],
        "H": [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
        "I": [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        "J": [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100],
        "K": [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001],
        "L": [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111],
        "M": [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001],
        "N": [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001],
        "O": [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        "P": [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000],
        "Q": [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101],
        "R": [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001],
        "S": [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110],
        "T": [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100],
        "U": [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        "V": [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100],
        "W": [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010],
        "X": [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001],
        "Y": [0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100],
        "Z": [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111],
        "0": [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110],
        "1": [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        "2": [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111],
        "3": [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110],
        "4": [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010],
        "5": [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110],
        "6": [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110],
        "7": [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000],
        "8": [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110],
        "9": [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100],
        "-": [0, 0, 0, 0b11111, 0, 0, 0],
        ".": [0, 0, 0, 0, 0, 0b01100, 0b01100],
        ",": [0, 0, 0, 0, 0b01100, 0b00100, 0b01000],
        "'": [0b00100, 0b00100, 0b01000, 0, 0, 0, 0],
        "|": [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100],
        "/": [0b00001, 0b00010, 0b00010, 0b00100, 0b01000, 0b01000, 0b10000],
        "(": [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010],
        ")": [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000],
        ":": [0, 0b01100, 0b01100, 0, 0b01100, 0b01100, 0],
        "#": [0b01010, 0b01010, 0b11111, 0b01010, 0b11111, 0b01010, 0b01010],
        "?": [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0, 0b00100],
        "!": [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0, 0b00100],
        "_": [0, 0, 0, 0, 0, 0, 0b11111],
        "+": [0, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0],
    ]
}
