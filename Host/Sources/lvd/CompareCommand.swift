import ArgumentParser
import Foundation
import LVDFormats
import LVDHost
import LVDStage1

/// `lvd compare`: one layout and one seed, several methods, each in its own child process (a
/// crash or an out-of-memory kill in one is reported and the others finish); a labelled
/// side-by-side GIF and a table of time, peak memory and guidance energy.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run several methods on the same layout and seed and put their videos side by side.")

    @OptionGroup var host: HostOptions
    @Argument(help: "The prompt.") var prompt: String
    @Option(help: "Methods, comma-separated, e.g. baseline,lvd,boxdiff.") var methods: String
    @Option(help: "Planner plugin for the layout (default: offline).") var planner: String = "offline"
    @Option(name: .customLong("planner-param"), help: ArgumentHelp("A planner parameter (repeatable).", valueName: "key=value"))
    var plannerParams: [String] = []
    @Option(help: ArgumentHelp("Use this layout file instead of a planner.", valueName: "file")) var layout: String?
    @Option(name: .customLong("param"), help: ArgumentHelp("A parameter for one method (repeatable).", valueName: "method.key=value"))
    var params: [String] = []
    @Option(help: ArgumentHelp("The diffusers model folder (default: $LVD_MODEL, else the bundled model).", valueName: "dir")) var model: String?
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Frames (default: the model folder's lvd.json, else 16).") var frames: Int?
    @Option(help: ArgumentHelp("Video size WxH.", valueName: "WxH")) var size: String?
    @Option(help: "Denoising steps (default: the model folder's lvd.json, else 40).") var steps: Int?
    @Flag(help: "Draw the layout's boxes over every video.") var overlay = false
    @Option(name: [.short, .customLong("output")], help: "Output folder (one subfolder per method, compare.gif, compare.json).")
    var output: String = "lvd-compare"
    @Flag(help: "Print the table as JSON.") var json = false

    var methodList: [String] { methods.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    func validate() throws {
        guard !methodList.isEmpty else { throw ValidationError("--methods needs at least one method id") }
        guard Set(methodList).count == methodList.count else { throw ValidationError("--methods lists a method twice") }
        for param in params {
            guard let dot = param.firstIndex(of: "."), param[..<dot].isEmpty == false, methodList.contains(String(param[..<dot])) else {
                throw ValidationError("--param \(param): write method.key=value with a method of --methods")
            }
        }
        if let size, Generate.parseSize(size) == nil { throw ValidationError("--size must be WxH, e.g. 256x256") }
    }

    struct Row {
        var method: String
        var status: String
        var seconds: Double?
        var peak: Double?
        var energy: (Double, Double)?
        var video: VideoFrames?
    }

    func run() throws {
        let catalog = host.catalog()
        // Each method's model: --model or $LVD_MODEL for all, else the bundled one it needs.
        let modelPaths = try Dictionary(uniqueKeysWithValues: methodList.map { ($0, try Generate.modelFolder(model, method: $0)) })
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        // The one layout every method gets.
        let layoutValue: Layout
        if let layout {
            guard let text = try? String(contentsOfFile: layout, encoding: .utf8) else { throw CLIError("layout file \(layout): cannot read it") }
            layoutValue = try Layout.decode(json: text, source: "layout file \(layout)")
        } else {
            let loader = PluginLoader()
            defer { loader.shutdown() }
            let plugin = try loader.load(catalog.require(id: planner, kind: .planner))
            layoutValue = try PlannerInstance(plugin: plugin, params: try plugin.resolveParams(plannerParams)).planLayout(prompt: prompt)
        }
        let layoutPath = output + "/layout.json"
        try writeAtomically(layoutValue.json.serialized(pretty: true) + "\n", to: layoutPath)

        var rows: [Row] = []
        for method in methodList {
            if HostServices.shared.isCancelled { break }
            FileHandle.standardError.write(Data("\(method): generating…\n".utf8))
            var arguments = ["generate", prompt, "--layout", layoutPath, "--method", method, "--model", modelPaths[method]!, "--seed", String(seed),
                             "-o", output + "/" + method, "--json", "--log-level", "info"]
            if let size { arguments += ["--size", size] }
            if let frames { arguments += ["--frames", String(frames)] }
            if let steps { arguments += ["--steps", String(steps)] }
            arguments += host.pluginPaths.flatMap { ["--plugin-path", $0] }
            for param in params where param.hasPrefix(method + ".") { arguments += ["--param", String(param.dropFirst(method.count + 1))] }
            let child = try ChildRun.generate(arguments, label: method)
            var row = Row(method: method, status: child.failure ?? "ok")
            if child.failure == nil, let run = try? JSONValue.parse(String(decoding: child.stdout, as: UTF8.self)).objectValue {
                row.seconds = run["timings"]?.objectValue?["generate_seconds"]?.numberValue
                row.peak = run["peak_rss_bytes"]?.numberValue
                row.energy = Self.energy(in: child.stderr)
                row.video = try? VideoFrames.readNPY(output + "/" + method + "/video.npy")
            }
            FileHandle.standardError.write(Data("\(method): \(row.status)\n".utf8))
            rows.append(row)
        }
        try writeSideBySide(rows, layout: layoutValue)
        // compare.json: what was compared and how each method fared (the --json table, with the
        // prompt, seed and layout it ran on), written whole.
        let record = JSONObject(["prompt": .string(prompt), "seed": .number(Double(seed)), "layout": .string("layout.json"),
                                 "methods": tableJSON(rows)])
        try writeAtomically(JSONValue.object(record).serialized(pretty: true) + "\n", to: output + "/compare.json")
        printTable(rows)
        if rows.contains(where: { $0.status != "ok" }) || rows.count < methodList.count { throw ExitCode(1) }
    }

    /// "guidance: N updates, energy A → B" from a method's log.
    static func energy(in log: String) -> (Double, Double)? {
        guard let line = log.split(separator: "\n").last(where: { $0.contains("guidance:") && $0.contains("energy") }),
              let range = line.range(of: "energy ") else { return nil }
        let parts = line[range.upperBound...].components(separatedBy: " → ")
        guard parts.count == 2, let a = Double(parts[0].trimmingCharacters(in: .whitespaces)),
              let b = Double(parts[1].split(separator: " ").first.map(String.init) ?? "") else { return nil }
        return (a, b)
    }

    /// compare.gif: the methods as labelled columns (a grey column for a method that failed).
    func writeSideBySide(_ rows: [Row], layout: Layout) throws {
        guard let sample = rows.compactMap(\.video).first else { return }
        let (f, h, w) = (sample.frames, sample.height, sample.width)
        let label = 12, gap = 4
        let scale = Swift.max(1, 96 / Swift.max(w, 1))  // tiny videos are enlarged so labels fit
        let cellW = w * scale, cellH = h * scale
        // A column is as wide as its video or its label, whichever is wider.
        let columns = rows.map { Swift.max(cellW, $0.method.count * 6 + 4) }
        let width = columns.reduce(0, +) + (rows.count - 1) * gap, height = cellH + label
        var rgb = [UInt8](repeating: 255, count: f * height * width * 3)
        let condition = Condition(layout, frames: f, width: Double(layout.canvasWidth), height: Double(layout.canvasHeight))
        for (column, row) in rows.enumerated() {
            let left = columns[..<column].reduce(0, +) + column * gap
            TextStamp.draw(row.method, x: left + 2, y: 2, into: &rgb, width: width, frames: f, height: height)
            for frame in 0..<f {
                for y in 0..<cellH {
                    for x in 0..<cellW {
                        let target = ((frame * height + label + y) * width + left + x) * 3
                        if let video = row.video, video.frames == f, video.height == h, video.width == w {
                            let source = ((frame * h + y / scale) * w + x / scale) * 3
                            rgb[target] = video.rgb[source]; rgb[target + 1] = video.rgb[source + 1]; rgb[target + 2] = video.rgb[source + 2]
                        } else {
                            rgb[target] = 160; rgb[target + 1] = 160; rgb[target + 2] = 160
                        }
                    }
                }
                guard overlay else { continue }
                for boxes in condition.boxes where boxes[frame] != [0, 0, 0, 0] {
                    let b = boxes[frame]
                    let x0 = Int(b[0] * Double(cellW)), y0 = Int(b[1] * Double(cellH)), x1 = Int(b[2] * Double(cellW)), y1 = Int(b[3] * Double(cellH))
                    for x in Swift.max(x0, 0)..<Swift.max(Swift.min(x1, cellW), Swift.max(x0, 0)) {
                        for y in [y0, y1 - 1] where y >= 0 && y < cellH { paint(&rgb, frame, left + x, label + y, width, height) }
                    }
                    for y in Swift.max(y0, 0)..<Swift.max(Swift.min(y1, cellH), Swift.max(y0, 0)) {
                        for x in [x0, x1 - 1] where x >= 0 && x < cellW { paint(&rgb, frame, left + x, label + y, width, height) }
                    }
                }
            }
        }
        do { try VideoFrames(frames: f, height: height, width: width, rgb: rgb).writeGIF(to: output + "/compare.gif") } catch { throw CLIError("\(error)") }
    }

    private func paint(_ rgb: inout [UInt8], _ frame: Int, _ x: Int, _ y: Int, _ width: Int, _ height: Int) {
        let o = ((frame * height + y) * width + x) * 3
        rgb[o] = 255; rgb[o + 1] = 40; rgb[o + 2] = 40
    }

    /// The table as JSON: one object per method run.
    func tableJSON(_ rows: [Row]) -> JSONValue {
        .array(rows.map { row in
            var object = JSONObject(["method": .string(row.method), "status": .string(row.status)])
            if let s = row.seconds { object["seconds"] = .number(s) }
            if let p = row.peak { object["peak_rss_bytes"] = .number(p) }
            if let e = row.energy { object["energy_before"] = .number(e.0); object["energy_after"] = .number(e.1) }
            return .object(object)
        })
    }

    func printTable(_ rows: [Row]) {
        if json {
            print(tableJSON(rows).serialized(pretty: true))
            return
        }
        func cell(_ text: String, _ width: Int) -> String { text.padding(toLength: Swift.max(width, text.count + 1), withPad: " ", startingAt: 0) }
        print(cell("method", 20) + cell("seconds", 10) + cell("peak RSS", 11) + cell("energy first → last pass", 26) + "status")
        for row in rows {
            let seconds = row.seconds.map { String(format: "%.2f", $0) } ?? "-"
            let peak = row.peak.map { String(format: "%.2f GiB", $0 / 1_073_741_824) } ?? "-"
            let energy = row.energy.map { String(format: "%.4g → %.4g", $0.0, $0.1) } ?? "-"
            print(cell(row.method, 20) + cell(seconds, 10) + cell(peak, 11) + cell(energy, 26) + row.status)
        }
        print("wrote \(output)/compare.gif (\(rows.map(\.method).joined(separator: " | "))) and compare.json")
    }
}

/// Dark 5×7 text stamped into every frame of an RGB video (the compare GIF's column labels).
enum TextStamp {
    static func draw(_ text: String, x: Int, y: Int, into rgb: inout [UInt8], width: Int, frames: Int, height: Int) {
        let pixels = LayoutGIF.textPixels(text)
        for (dx, dy) in pixels where x + dx < width && y + dy < height {
            for f in 0..<frames {
                let o = ((f * height + y + dy) * width + x + dx) * 3
                rgb[o] = 20; rgb[o + 1] = 20; rgb[o + 2] = 20
            }
        }
    }
}
