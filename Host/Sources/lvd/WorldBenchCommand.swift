import ArgumentParser
import Foundation
import LVDBench
import LVDFormats
import LVDHost
import LVDStage1
import LVDWorld

extension Bench {
    /// `lvd bench world`: how well a model of the tiny world draws what it is told, judged by the
    /// world's detector. Captions: `baseline` on single-object captions (random class × colour ×
    /// background, the world's own caption templates): is the named class, and the named colour,
    /// found in at least half the frames, and the named object alone (a frame full of blobs finds
    /// any class by chance)? Layouts: `lvd-gligen` on the benchmark prompts' layouts
    /// from a reference cache: on what share of (object, frame) pairs is a detection of the
    /// object's class at IoU ≥ 0.3 with its layout box? Each video is a child `lvd generate` in its
    /// own folder under -o; finished ones are kept and reused, so the run resumes after Ctrl-C.
    struct WorldBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "world",
            abstract: "Score generations of the tiny world with its detector: class and colour on captions, box IoU on layouts.")

        @OptionGroup var host: HostOptions
        @Option(help: "Single-object captions for the base model (baseline).") var captions: Int = 100
        @Option(help: ArgumentHelp("Layouts for lvd-gligen: a reference cache (cache:FILE).", valueName: "cache:FILE")) var layouts: String?
        @Option(help: "Benchmark prompts taken from the layouts cache (spread over its rows).") var layoutCount: Int = 50
        @Option(help: "A diffusers folder for both parts (default: the bundled tiny and tiny-gligen).") var model: String?
        @Option(help: "Frames (default: the model folder's lvd.json).") var frames: Int?
        @Option(help: "Denoising steps (default: the model folder's lvd.json).") var steps: Int?
        @Option(help: "First seed (item i uses seed + i for its scene and its noise).") var seed: UInt64 = 0
        @Option(name: .customLong("param"), help: ArgumentHelp("A method parameter for both methods (repeatable), e.g. guidance_scale=20.", valueName: "key=value"))
        var params: [String] = []
        @Option(name: [.short, .customLong("output")], help: "Output folder (one subfolder per video; kept for resuming).")
        var output: String = "lvd-bench-world"
        @Flag(help: "Print the figures as JSON.") var json = false

        func validate() throws {
            guard captions >= 0, layoutCount >= 0 else { throw ValidationError("--captions and --layout-count must be ≥ 0") }
            if let layouts, !layouts.hasPrefix("cache:") { throw ValidationError("--layouts must be cache:FILE, got '\(layouts)'") }
        }

        struct Item {
            var name: String
            var prompt: String
            var method: String
            var layout: Layout?
            var kind: World.Kind?
            var colour: String?
        }

        /// The finished videos under -o are reused, so they must have been made with these settings:
        /// `bench-world.json` records them, and a folder with videos made with others is refused,
        /// not mixed.
        func claimOutput() throws {
            let settings = JSONValue.object(JSONObject([
                "model": .string(try Generate.modelFolder(model)), "frames": frames.map { .number(Double($0)) } ?? .null,
                "steps": steps.map { .number(Double($0)) } ?? .null, "seed": .number(Double(seed)),
                "params": .array(params.map(JSONValue.string))]))
            let stamp = output + "/bench-world.json"
            let finished = ((try? FileManager.default.contentsOfDirectory(atPath: output)) ?? [])
                .contains { FileManager.default.fileExists(atPath: output + "/" + $0 + "/run.json") }
            if finished && FileManager.default.fileExists(atPath: stamp) {
                let text = (try? String(contentsOfFile: stamp, encoding: .utf8)) ?? ""
                guard let recorded = try? JSONValue.parse(text) else { throw CLIError("\(stamp): not JSON; remove it or give another -o") }
                guard recorded == settings else {
                    throw CLIError("\(stamp): the videos here were made with \(recorded.serialized()), not \(settings.serialized()); give another -o")
                }
            } else {
                try writeAtomically(settings.serialized(pretty: true) + "\n", to: stamp)
            }
        }

        func run() throws {
            InterruptHandler.install()
            var items: [Item] = []
            for i in 0..<captions {
                let scene = World.randomScene(seed: seed &+ UInt64(i), objectCount: 1, minSprite: 20, maxSprite: 28)
                items.append(Item(name: String(format: "caption-%03d", i), prompt: Captions.caption(scene, seed: seed &+ UInt64(i)), method: "baseline",
                                  kind: scene.objects[0].kind, colour: scene.objects[0].colourName))
            }
            if let file = layouts?.dropFirst("cache:".count), layoutCount > 0 {
                let cache = try ReferenceCache(path: String(file))
                let rows = Benchmark.rows
                let stride = Swift.max(1, rows.count / layoutCount)
                for (n, row) in Swift.stride(from: 0, to: rows.count, by: stride).prefix(layoutCount).map({ rows[$0] }).enumerated() {
                    let layout = try cache.layout(for: row.prompt, answer: 0)
                    items.append(Item(name: String(format: "layout-%03d", n), prompt: row.prompt, method: "lvd-gligen", layout: layout))
                }
            }
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            try claimOutput()
            var classHits = 0, colourHits = 0, aloneHits = 0, captionsDone = 0
            var perFrame = 0.0  // Σ over caption videos of their detections a frame
            var pairs = 0, pairHits = 0, layoutsDone = 0, seconds: [String: [Double]] = [:]
            for (index, item) in items.enumerated() {
                if HostServices.shared.isCancelled { break }
                let folder = output + "/" + item.name
                if !FileManager.default.fileExists(atPath: folder + "/run.json") {
                    var arguments = ["generate", item.prompt, "--method", item.method, "--seed", String(seed &+ UInt64(index)), "-o", folder, "--json"]
                    if let layout = item.layout {
                        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                        try writeAtomically(layout.json.serialized(pretty: true) + "\n", to: folder + "/layout-in.json")
                        arguments += ["--layout", folder + "/layout-in.json"]
                    }
                    arguments += ["--model", try Generate.modelFolder(model, method: item.method)]
                    if let frames { arguments += ["--frames", String(frames)] }
                    if let steps { arguments += ["--steps", String(steps)] }
                    arguments += params.flatMap { ["--param", $0] }
                    arguments += host.pluginPaths.flatMap { ["--plugin-path", $0] }
                    let child = try ChildRun.generate(arguments, label: item.name, onTerminalOnly: true, warnings: false)
                    if let failure = child.failure {
                        if HostServices.shared.isCancelled { break }
                        throw CLIError("\(item.name) (\(item.prompt)): \(failure)")
                    }
                }
                let video: VideoFrames
                do { video = try VideoFrames.readNPY(folder + "/video.npy") } catch { throw CLIError("\(error)") }
                if let run = try? JSONValue.parse(String(contentsOfFile: folder + "/run.json", encoding: .utf8)).objectValue,
                   let s = run["timings"]?.objectValue?["generate_seconds"]?.numberValue {
                    seconds[item.method, default: []].append(s)
                }
                let detections = WorldDetector().detect(frames: video.rgb, count: video.frames, width: video.width, height: video.height)
                if let kind = item.kind, let colour = item.colour {
                    let score = WorldDetector.captionScore(detections, kind: kind, colour: colour)
                    classHits += score.classFound ? 1 : 0
                    colourHits += score.colourFound ? 1 : 0
                    aloneHits += score.alone ? 1 : 0
                    perFrame += score.perFrame
                    captionsDone += 1
                } else if let layout = item.layout {
                    let score = Self.layoutScore(layout, detections: detections)
                    pairs += score.pairs
                    pairHits += score.hits
                    layoutsDone += 1
                }
                FileHandle.standardError.write(Data("world bench: \(index + 1)/\(items.count) \(item.name)\n".utf8))
            }
            func mean(_ v: [Double]?) -> Double { guard let v, !v.isEmpty else { return 0 }; return v.reduce(0, +) / Double(v.count) }
            let detectionsPerFrame = captionsDone == 0 ? 0 : perFrame / Double(captionsDone)
            let figures = JSONObject([
                "captions": .number(Double(captionsDone)), "class_found": .number(Proportions.share(classHits, of: captionsDone)),
                "colour_found": .number(Proportions.share(colourHits, of: captionsDone)), "alone_found": .number(Proportions.share(aloneHits, of: captionsDone)),
                "detections_per_frame": .number(detectionsPerFrame),
                "layouts": .number(Double(layoutsDone)), "object_frames": .number(Double(pairs)),
                "iou_0_3_share": .number(Proportions.share(pairHits, of: pairs)),
                // 95 % Wilson intervals (fractions): 100 captions leave about ±9 points.
                "class_found_ci95": Proportions.wilson95JSON(classHits, of: captionsDone),
                "colour_found_ci95": Proportions.wilson95JSON(colourHits, of: captionsDone),
                "alone_found_ci95": Proportions.wilson95JSON(aloneHits, of: captionsDone),
                "baseline_seconds_mean": .number(mean(seconds["baseline"])), "lvd_gligen_seconds_mean": .number(mean(seconds["lvd-gligen"])),
            ])
            if json {
                print(JSONValue.object(figures).serialized(pretty: true))
            } else {
                if captionsDone > 0 {
                    let rate = { (hits: Int) in Proportions.percentWithInterval(hits, of: captionsDone) }
                    print(String(format: "captions (baseline): %d videos; named class found in %@, named colour in %@, the named object alone in %@ (in ≥ half the frames; 95 %% intervals); %.2f detections a frame; %.2f s per video",
                                 captionsDone, rate(classHits), rate(colourHits), rate(aloneHits), detectionsPerFrame, mean(seconds["baseline"])))
                }
                if layoutsDone > 0 {
                    print(String(format: "layouts (lvd-gligen): %d videos, %d object-frames; detected box at IoU ≥ 0.3 on %.1f %%; %.2f s per video",
                                 layoutsDone, pairs, 100 * Proportions.share(pairHits, of: pairs), mean(seconds["lvd-gligen"])))
                }
            }
            if captionsDone + layoutsDone < items.count { print("interrupted: \(captionsDone + layoutsDone) of \(items.count) videos scored"); throw ExitCode(130) }
        }

        /// (object, frame) pairs where the layout has the object, and those with a detection of the
        /// object's class (named in its layout name) at IoU ≥ 0.3 with the layout box.
        static func layoutScore(_ layout: Layout, detections: [[WorldDetector.Detection]]) -> (pairs: Int, hits: Int) {
            let condition = Condition(layout, frames: detections.count, width: Double(layout.canvasWidth), height: Double(layout.canvasHeight))
            var pairs = 0, hits = 0
            for (object, name) in condition.names.enumerated() {
                let kind = World.Kind.allCases.first { name.lowercased().contains($0.rawValue) }
                for (f, box) in condition.boxes[object].enumerated() where box != [0, 0, 0, 0] {
                    pairs += 1
                    if detections[f].contains(where: { $0.kind == kind && WorldDetector.iou($0.box, box) >= 0.3 }) { hits += 1 }
                }
            }
            return (pairs, hits)
        }
    }
}
