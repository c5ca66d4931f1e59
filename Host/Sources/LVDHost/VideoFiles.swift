import CGIF
import Foundation

/// A generated video as bytes: frames × height × width × RGB, row-major.
public struct VideoFrames: Sendable {
    public let frames: Int
    public let height: Int
    public let width: Int
    public let rgb: [UInt8]

    public init(frames: Int, height: Int, width: Int, rgb: [UInt8]) {
        precondition(rgb.count == frames * height * width * 3, "rgb must hold frames·height·width·3 bytes")
        self.frames = frames
        self.height = height
        self.width = width
        self.rgb = rgb
    }

    /// `video.npy`: NumPy format 1.0, dtype uint8, shape (F, H, W, 3), written atomically.
    public func writeNPY(to path: String) throws {
        try writeUInt8NPY(rgb, shape: [frames, height, width, 3], to: path)
    }

    /// `video.gif` at `fps`, looping: one palette of up to 256 colours for the whole video, cut
    /// from its pixels by median cut (so a clip keeps its colours steady from frame to frame).
    public func writeGIF(to path: String, fps: Double = 8) throws {
        let palette = MedianCut.palette(rgb, colours: 256)
        var lookup = [Int32](repeating: -1, count: 1 << 15) // 5 bits per channel → nearest palette entry
        func index(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
            let key = Int(r >> 3) << 10 | Int(g >> 3) << 5 | Int(b >> 3)
            if lookup[key] >= 0 { return UInt8(lookup[key]) }
            var best = 0, bestDistance = Int.max
            for (i, c) in palette.enumerated() {
                let dr = Int(c.0) - Int(r), dg = Int(c.1) - Int(g), db = Int(c.2) - Int(b)
                let d = 2 * dr * dr + 4 * dg * dg + 3 * db * db
                if d < bestDistance { bestDistance = d; best = i }
            }
            lookup[key] = Int32(best)
            return UInt8(best)
        }
        let pixels = height * width
        let indexed: [[UInt8]] = (0..<frames).map { f in
            (0..<pixels).map { p in
                let o = (f * pixels + p) * 3
                return index(rgb[o], rgb[o + 1], rgb[o + 2])
            }
        }
        try GIFWriter(width: width, height: height, palette: palette).write(indexed, fps: fps, to: path)
    }
}

/// A uint8 array of `shape` as a NumPy 1.0 file (C order), written atomically.
public func writeUInt8NPY(_ bytes: [UInt8], shape: [Int], to path: String) throws {
    precondition(bytes.count == shape.reduce(1, *), "bytes must fill the shape")
    var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (\(shape.map(String.init).joined(separator: ", "))\(shape.count == 1 ? "," : "")), }"
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64, ending in "\n".
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
    let length = UInt16(header.utf8.count)
    data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
    data.append(contentsOf: Array(header.utf8))
    data.append(contentsOf: bytes)
    try writeAtomically(data, to: path)
}

/// Writes `data` to a temporary file beside `path` and renames it: never a half file in its place.
public func writeAtomically(_ data: Data, to path: String) throws {
    do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw GIFWriter.Failure(description: "cannot write \(path): \(error.localizedDescription)")
    }
}

/// Heckbert's median cut: split the box of colours with the widest channel range at its median
/// until there are `colours` boxes; each box's mean is a palette entry.
enum MedianCut {
    static func palette(_ rgb: [UInt8], colours: Int) -> [(UInt8, UInt8, UInt8)] {
        // A sample of at most ~64k pixels is plenty for a palette.
        let count = rgb.count / 3
        let stride = Swift.max(1, count / 65536)
        var samples: [(UInt8, UInt8, UInt8)] = []
        samples.reserveCapacity(count / stride + 1)
        for p in Swift.stride(from: 0, to: count, by: stride) { samples.append((rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2])) }
        guard !samples.isEmpty else { return [(0, 0, 0), (255, 255, 255)] }
        var boxes: [ArraySlice<(UInt8, UInt8, UInt8)>] = [samples[...]]
        func range(_ box: ArraySlice<(UInt8, UInt8, UInt8)>) -> (channel: Int, width: Int) {
            var lo = [255, 255, 255], hi = [0, 0, 0]
            for c in box {
                let v = [Int(c.0), Int(c.1), Int(c.2)]
                for k in 0..<3 { lo[k] = Swift.min(lo[k], v[k]); hi[k] = Swift.max(hi[k], v[k]) }
            }
            let widths = (0..<3).map { hi[$0] - lo[$0] }
            let channel = widths.indices.max { widths[$0] < widths[$1] }!
            return (channel, widths[channel])
        }
        while boxes.count < colours {
            // The box with the widest spread (ties: the most pixels) splits next.
            let ranges = boxes.map(range)
            guard let pick = boxes.indices.filter({ ranges[$0].width > 0 && boxes[$0].count > 1 })
                .max(by: { (ranges[$0].width, boxes[$0].count) < (ranges[$1].width, boxes[$1].count) }) else { break }
            let channel = ranges[pick].channel
            let sorted = boxes[pick].sorted { channel == 0 ? $0.0 < $1.0 : channel == 1 ? $0.1 < $1.1 : $0.2 < $1.2 }
            let middle = sorted.count / 2
            boxes[pick] = sorted[..<middle]
            boxes.append(sorted[middle...])
        }
        var palette = boxes.map { box -> (UInt8, UInt8, UInt8) in
            var sum = (0, 0, 0)
            for c in box { sum.0 += Int(c.0); sum.1 += Int(c.1); sum.2 += Int(c.2) }
            let n = Swift.max(box.count, 1)
            return (UInt8(sum.0 / n), UInt8(sum.1 / n), UInt8(sum.2 / n))
        }
        if palette.count < 2 { palette.append((0, 0, 0)) }
        return palette
    }
}

extension VideoFrames {
    /// Reads a uint8 (F, H, W, 3) `.npy` file, as `writeNPY` writes it.
    public static func readNPY(_ path: String) throws -> VideoFrames {
        guard let data = FileManager.default.contents(atPath: path) else { throw GIFWriter.Failure(description: "\(path): cannot read it") }
        let bytes = [UInt8](data)
        guard bytes.count > 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw GIFWriter.Failure(description: "\(path): not a .npy file")
        }
        let length = Int(bytes[8]) | Int(bytes[9]) << 8
        guard bytes.count >= 10 + length else { throw GIFWriter.Failure(description: "\(path): truncated header") }
        let header = String(decoding: bytes[10..<(10 + length)], as: UTF8.self)
        guard header.contains("'descr': '|u1'") || header.contains("'descr': '<u1'"), !header.contains("'fortran_order': True"),
              let open = header.firstIndex(of: "("), let close = header[open...].firstIndex(of: ")") else {
            throw GIFWriter.Failure(description: "\(path): needs a C-order uint8 array")
        }
        let dims = header[header.index(after: open)..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard dims.count == 4, dims[3] == 3, dims.allSatisfy({ $0 > 0 }) else {
            throw GIFWriter.Failure(description: "\(path): shape must be (frames, height, width, 3), got \(dims)")
        }
        let body = Array(bytes[(10 + length)...])
        guard body.count == dims[0] * dims[1] * dims[2] * 3 else { throw GIFWriter.Failure(description: "\(path): \(body.count) bytes of data for shape \(dims)") }
        return VideoFrames(frames: dims[0], height: dims[1], width: dims[2], rgb: body)
    }

    /// Reads an animated GIF with giflib (each frame drawn over the previous one).
    public static func readGIF(_ path: String) throws -> VideoFrames {
        var error: Int32 = 0
        guard let gif = DGifOpenFileName(path, &error) else { throw GIFWriter.Failure(description: "\(path): \(String(cString: GifErrorString(error)))") }
        defer { DGifCloseFile(gif, &error) }
        guard DGifSlurp(gif) == GIF_OK, gif.pointee.ImageCount > 0 else { throw GIFWriter.Failure(description: "\(path): not a readable GIF") }
        let (w, h, n) = (Int(gif.pointee.SWidth), Int(gif.pointee.SHeight), Int(gif.pointee.ImageCount))
        var canvas = [UInt8](repeating: 0, count: w * h * 3), rgb: [UInt8] = []
        for i in 0..<n {
            let image = gif.pointee.SavedImages[i]
            let d = image.ImageDesc
            guard let map = d.ColorMap ?? gif.pointee.SColorMap else { throw GIFWriter.Failure(description: "\(path): frame \(i) has no colour map") }
            for y in 0..<Int(d.Height) {
                for x in 0..<Int(d.Width) {
                    let (cx, cy) = (Int(d.Left) + x, Int(d.Top) + y)
                    guard cx < w, cy < h else { continue }
                    let index = Int(image.RasterBits[y * Int(d.Width) + x])
                    guard index < Int(map.pointee.ColorCount) else { continue }
                    let c = map.pointee.Colors[index], o = (cy * w + cx) * 3
                    canvas[o] = c.Red; canvas[o + 1] = c.Green; canvas[o + 2] = c.Blue
                }
            }
            rgb += canvas
        }
        return VideoFrames(frames: n, height: h, width: w, rgb: rgb)
    }
}
