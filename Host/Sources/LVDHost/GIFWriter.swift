import CGIF
import Foundation

/// Animated GIFs through giflib: palette-indexed frames, a delay per frame, looping forever.
/// Written to a temporary file beside the target and renamed when complete, so an interrupted
/// write never leaves a GIF that looks finished.
public struct GIFWriter {
    public struct Failure: Error, CustomStringConvertible { public var description: String }

    public let width: Int
    public let height: Int
    /// Up to 256 RGB colours.
    public let palette: [(UInt8, UInt8, UInt8)]

    public init(width: Int, height: Int, palette: [(UInt8, UInt8, UInt8)]) {
        self.width = width
        self.height = height
        self.palette = palette
    }

    /// Writes `frames` (width·height palette indices each) at `fps` frames per second; the
    /// delays alternate so that their mean is exact (8 fps: 13, 12, 13, … hundredths).
    public func write(_ frames: [[UInt8]], fps: Double, to path: String) throws {
        guard !frames.isEmpty, frames.allSatisfy({ $0.count == width * height }) else {
            throw Failure(description: "\(path): frames must hold \(width)×\(height) pixels each")
        }
        let temporary = path + ".partial-\(getpid())"
        var error: Int32 = 0
        guard let gif = EGifOpenFileName(temporary, false, &error) else {
            throw Failure(description: "cannot write \(path): \(String(cString: GifErrorString(error)))")
        }
        var closed = false
        defer {
            if !closed { EGifCloseFile(gif, &error) }
            if FileManager.default.fileExists(atPath: temporary) { try? FileManager.default.removeItem(atPath: temporary) }
        }
        func check(_ status: Int32, _ what: String) throws {
            guard status == GIF_OK else { throw Failure(description: "cannot write \(path): \(what): \(String(cString: GifErrorString(gif.pointee.Error)))") }
        }
        // The colour table size is a power of two ≥ 2.
        var size = 2
        while size < palette.count { size *= 2 }
        var colors = palette.map { GifColorType(Red: $0.0, Green: $0.1, Blue: $0.2) }
        colors += Array(repeating: GifColorType(Red: 0, Green: 0, Blue: 0), count: size - colors.count)
        guard let map = GifMakeMapObject(Int32(size), colors) else { throw Failure(description: "cannot write \(path): colour map") }
        defer { GifFreeMapObject(map) }
        EGifSetGifVersion(gif, true)
        try check(EGifPutScreenDesc(gif, Int32(width), Int32(height), Int32(size.trailingZeroBitCount), 0, map), "screen")
        // NETSCAPE2.0 application extension: loop forever.
        try check(EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE), "loop extension")
        var netscape = Array("NETSCAPE2.0".utf8)
        try check(EGifPutExtensionBlock(gif, Int32(netscape.count), &netscape), "loop extension")
        var loop: [UInt8] = [1, 0, 0]
        try check(EGifPutExtensionBlock(gif, 3, &loop), "loop extension")
        try check(EGifPutExtensionTrailer(gif), "loop extension")
        var elapsed = 0.0, written = 0
        for frame in frames {
            elapsed += 100 / fps
            let delay = Int(elapsed.rounded()) - written
            written += delay
            var control = GraphicsControlBlock(DisposalMode: DISPOSE_DO_NOT, UserInputFlag: false, DelayTime: Int32(delay), TransparentColor: NO_TRANSPARENT_COLOR)
            var bytes = [UInt8](repeating: 0, count: 4)
            let length = EGifGCBToExtension(&control, &bytes)
            try check(EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, Int32(length), bytes), "frame delay")
            try check(EGifPutImageDesc(gif, 0, 0, Int32(width), Int32(height), false, nil), "frame")
            var row = [GifPixelType](repeating: 0, count: width)
            for y in 0..<height {
                for x in 0..<width { row[x] = frame[y * width + x] }
                try check(EGifPutLine(gif, &row, Int32(width)), "pixels")
            }
        }
        closed = true
        guard EGifCloseFile(gif, &error) == GIF_OK else { throw Failure(description: "cannot write \(path): \(String(cString: GifErrorString(error)))") }
        // giflib creates the file 0600; a GIF is as readable as any other output (umask applies).
        let mask = umask(0)
        umask(mask)
        chmod(temporary, 0o666 & ~mask)
        guard rename(temporary, path) == 0 else { throw Failure(description: "cannot write \(path): \(String(cString: strerror(errno)))") }
    }
}
