import Foundation
import LVDFormats
import LVDHost

/// An animated GIF grid of benchmark videos: a row per (task, benchmark row), a column per
/// method, each cell the six sampled frames with the detections that survived drawn on them, a
/// green frame around a success and a red one around a failure.
public enum ContactSheet {
    public static let cell = 128
    static let margin = 4, header = 14, rowLabel = 120

    /// Picks up to `perTask` benchmark rows per task that every group has a result for (spread
    /// evenly over them) and writes the sheet; returns one line per sheet row saying what it shows.
    @discardableResult
    public static func write(_ report: Stage2Report, perTask: Int, to path: String) throws -> [String] {
        var picks: [(task: String, row: Int, prompt: String)] = []
        for task in report.tasks {
            let perGroup = report.groups.map { Set($0.results.filter { $0.task == task }.map(\.row)) }
            let rows = perGroup.dropFirst().reduce(perGroup.first ?? []) { $0.intersection($1) }.sorted()
            guard !rows.isEmpty else { continue }
            let count = min(perTask, rows.count)
            for i in 0..<count {
                let row = rows[i * rows.count / count]
                let prompt = report.groups[0].results.first { $0.row == row }?.prompt ?? ""
                picks.append((task, row, prompt))
            }
        }
        guard !picks.isEmpty, !report.groups.isEmpty else { throw Stage2.Failure("no results to put on a contact sheet") }
        let width = rowLabel + report.groups.count * (cell + margin) + margin
        let height = header + picks.count * (cell + margin) + margin
        let frames = 6
        var rgb = [UInt8](repeating: 255, count: frames * width * height * 3)
        func set(_ f: Int, _ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
            guard x >= 0, y >= 0, x < width, y < height else { return }
            let o = ((f * height + y) * width + x) * 3
            rgb[o] = c.0; rgb[o + 1] = c.1; rgb[o + 2] = c.2
        }
        func text(_ s: String, _ x: Int, _ y: Int) {
            for (dx, dy) in LayoutGIF.textPixels(s) { for f in 0..<frames { set(f, x + dx, y + dy, (20, 20, 20)) } }
        }
        func rectangle(_ f: Int, _ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8), _ thickness: Int) {
            guard x1 >= x0, y1 >= y0 else { return }
            for t in 0..<thickness {
                for x in x0...x1 { set(f, x, y0 + t, c); set(f, x, y1 - t, c) }
                for y in y0...y1 { set(f, x0 + t, y, c); set(f, x1 - t, y, c) }
            }
        }
        for (g, group) in report.groups.enumerated() {
            text(String(group.label.prefix(cell / 6)), rowLabel + margin + g * (cell + margin), 3)
        }
        let labelColours: [(UInt8, UInt8, UInt8)] = [(255, 230, 0), (0, 230, 255), (255, 0, 255), (255, 255, 255)]
        var lines: [String] = []
        for (p, pick) in picks.enumerated() {
            let top = header + margin + p * (cell + margin)
            text(pick.task, 3, top + 2)
            text("ROW \(pick.row)", 3, top + 12)
            lines.append("sheet row \(p + 1): \(pick.task), benchmark row \(pick.row): \(pick.prompt)")
            for (g, group) in report.groups.enumerated() {
                let left = rowLabel + margin + g * (cell + margin)
                guard let result = group.results.first(where: { $0.row == pick.row }) else { continue }
                let video = result.video.flatMap { try? VideoFrames.readNPY($0) }
                let detections = (try? JSONValue.parse(result.detections))?.arrayValue ?? []
                for f in 0..<frames {
                    if let video, f < result.frames.count, result.frames[f] < video.frames {
                        let source = result.frames[f]
                        for y in 0..<cell {
                            for x in 0..<cell {
                                let (sx, sy) = (x * video.width / cell, y * video.height / cell)
                                let o = ((source * video.height + sy) * video.width + sx) * 3
                                set(f, left + x, top + y, (video.rgb[o], video.rgb[o + 1], video.rgb[o + 2]))
                            }
                        }
                    } else {
                        for y in 0..<cell { for x in 0..<cell { set(f, left + x, top + y, (128, 128, 128)) } }
                        for (dx, dy) in LayoutGIF.textPixels(result.failure == nil ? "NO VIDEO" : "FAILED") { set(f, left + 8 + dx, top + 60 + dy, (255, 255, 255)) }
                    }
                    if f < detections.count {
                        for detection in detections[f].arrayValue ?? [] {
                            guard let object = detection.objectValue, let box = object["box"]?.arrayValue?.compactMap(\.numberValue), box.count == 4 else { continue }
                            let label = Int(object["label"]?.numberValue ?? 0)
                            let c = box.map { Int(($0 * Double(cell)).rounded()) }
                            rectangle(f, left + max(c[0], 0), top + max(c[1], 0), left + min(c[2], cell - 1), top + min(c[3], cell - 1),
                                      labelColours[label % labelColours.count], 1)
                        }
                    }
                    rectangle(f, left - 2, top - 2, left + cell + 1, top + cell + 1, result.success ? (40, 170, 60) : (210, 40, 40), 2)
                }
            }
        }
        try VideoFrames(frames: frames, height: height, width: width, rgb: rgb).writeGIF(to: path, fps: 2)
        return lines
    }
}
