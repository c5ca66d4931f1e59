import ArgumentParser
import Foundation
import LVDFormats
import LVDHost
import LVDModels
import LVDRuntime
import LVDSDK
import LVDStage1

/// `lvd generate`: plan a layout (or read one), load the model, run a method plugin, and write
/// video.gif, video.npy, layout.json, layout.gif and run.json.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate a video: stage 1 (planner or layout file) then stage 2 (a method plugin) on a diffusers model.")

    @OptionGroup var host: HostOptions
    @Argument(help: "The prompt.") var prompt: String
    @Option(help: "Planner plugin for the layout (default: offline).") var planner: String = "offline"
    @Option(name: .customLong("planner-param"), help: ArgumentHelp("A planner parameter (repeatable).", valueName: "key=value"))
    var plannerParams: [String] = []
    @Option(help: ArgumentHelp("Use this layout file (lvd.layout/1) instead of a planner.", valueName: "file")) var layout: String?
    @Option(help: "Method plugin.") var method: String = "lvd"
    @Option(name: .customLong("param"), help: ArgumentHelp("A method parameter (repeatable; see `lvd plugins info ID`).", valueName: "key=value"))
    var params: [String] = []
    @Option(help: ArgumentHelp("A diffusers text-to-video folder (default: $LVD_MODEL, else the bundled model).", valueName: "dir"))
    var model: String?
    @Option(help: "Seed of the initial noise.") var seed: UInt64 = 0
    @Option(help: "Frames (default: the model folder's lvd.json, else 16).") var frames: Int?
    @Option(help: ArgumentHelp("Video size WxH in pixels (default: the model's sample size).", valueName: "WxH")) var size: String?
    @Option(help: "Denoising steps (default: the model folder's lvd.json, else 40).") var steps: Int?
    @Option(help: "Negative prompt (default: the model folder's lvd.json, else the method's: the reference's video negative prompt).") var negative: String?
    @Option(name: [.short, .customLong("output")], help: "Output folder.") var output: String = "lvd-output"
    @Flag(help: "Print run.json to standard output instead of progress and a summary.") var json = false
    @Flag(help: ArgumentHelp("With --json, progress on standard error all the same (for a parent lvd that relays it).", visibility: .hidden))
    var progress = false

    func validate() throws {
        if prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw ValidationError("the prompt is empty") }
        if let frames, !(1...256).contains(frames) { throw ValidationError("--frames must be in 1…256, got \(frames)") }
        if let steps, !(1...1000).contains(steps) { throw ValidationError("--steps must be in 1…1000, got \(steps)") }
        if let size, Self.parseSize(size) == nil { throw ValidationError("--size must be WxH with positive integers, e.g. 256x256, got '\(size)'") }
    }

    static func parseSize(_ text: String) -> (width: Int, height: Int)? {
        let parts = text.lowercased().split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts.allSatisfy({ $0 > 0 && $0 <= 4096 }) else { return nil }
        return (parts[0], parts[1])
    }

    /// Loads a model folder, saying how to use another one when it is missing or broken.
    static func loadPipeline(_ path: String) throws -> Pipeline {
        do { return try Pipeline(path: path) } catch {
            throw CLIError("\(error) (pass --model DIR or set LVD_MODEL to use another diffusers text-to-video folder)")
        }
    }

    func run() throws {
        let started = Date()
        let catalog = host.catalog()
        let loader = PluginLoader()
        defer { loader.shutdown() }
        let modelPath = try Self.modelFolder(model, method: method)
        let settings = try FolderSettings.read(modelPath)
        let frames = self.frames ?? settings.frames ?? 16, steps = self.steps ?? settings.steps ?? 40
        let negative = self.negative ?? settings.negativePrompt

        // Stage 1.
        let plannedAt = Date()
        let layoutValue: Layout
        let plannerUsed: String
        if let layout {
            guard let text = try? String(contentsOfFile: layout, encoding: .utf8) else { throw CLIError("layout file \(layout): cannot read it") }
            layoutValue = try Layout.decode(json: text, source: "layout file \(layout)")
            plannerUsed = "file:\(layout)"
        } else {
            let plugin = try loader.load(catalog.require(id: planner, kind: .planner))
            layoutValue = try PlannerInstance(plugin: plugin, params: try plugin.resolveParams(plannerParams)).planLayout(prompt: prompt)
            plannerUsed = planner
        }
        let planSeconds = Date().timeIntervalSince(plannedAt)

        // Stage 2.
        let methodPlugin = try loader.load(catalog.require(id: method, kind: .method))
        let folderParams = settings.paramsLayers(method, folder: modelPath) { methodPlugin.paramsSchema[$0] != nil }
        for name in folderParams.skipped {
            warn("\(modelPath)/lvd.json: params.\(name) not used: method '\(method)' takes no such param")
        }
        let resolved = try methodPlugin.resolveParams(params, folder: folderParams.layers)
        let instance = try MethodInstance(plugin: methodPlugin, params: resolved)
        let loadedAt = Date()
        let folder = try Self.loadPipeline(modelPath)
        let (width, height) = size.flatMap(Self.parseSize) ?? {
            let side = (folder.unet.configuration.sampleSize ?? 32) * folder.vaeScaleFactor
            return (side, side)
        }()
        let pipeline = ModelAPI.pipelines.insert(folder)
        defer { try? ModelAPI.pipelines.release(pipeline) }
        let loadSeconds = Date().timeIntervalSince(loadedAt)

        let progressLine = ProgressLine(enabled: !json || progress)
        HostServices.shared.setProgressHandler { _, done, total, what in progressLine.update(done: done, total: total, what: what) }
        defer { HostServices.shared.setProgressHandler(nil) }
        let generatedAt = Date()
        let request = MethodRequest(prompt: Stage1.key(prompt), negativePrompt: negative, layoutJSON: layoutValue.json.serialized(),
                                    seed: seed, frames: frames, width: width, height: height, steps: steps, pipeline: pipeline)
        let outcome = Result { () throws(PluginCallError) -> Tensor in try instance.generate(request) }
        progressLine.finish()
        let video: Tensor
        switch outcome {
        case .success(let value):
            video = value
        case .failure(let error) where error.status == LVD_ERR_CANCELLED:
            FileHandle.standardError.write(Data("cancelled: nothing was written\n".utf8))
            throw ExitCode(130)
        case .failure(let error):
            throw error
        }
        let generateSeconds = Date().timeIntervalSince(generatedAt)

        // Outputs: every file written whole (temporary name, then renamed); run.json last.
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let clip = VideoFrames(frames: video.shape[0], height: video.shape[1], width: video.shape[2], rgb: video.toArray().map { UInt8($0) })
        let layoutText = layoutValue.json.serialized(pretty: true) + "\n"
        do {
            try writeAtomically(layoutText, to: output + "/layout.json")
            try LayoutGIF.write(layoutValue, to: output + "/layout.gif", frames: frames)
            try clip.writeNPY(to: output + "/video.npy")
            try clip.writeGIF(to: output + "/video.gif")
        } catch { throw CLIError("\(error)") }
        let run = JSONObject([
            "prompt": .string(prompt), "layout": layoutValue.json, "planner": .string(plannerUsed),
            "method": .string(method), "method_version": .string(methodPlugin.version), "params": .object(resolved),
            "seed": .number(Double(seed)), "frames": .number(Double(frames)), "width": .number(Double(width)),
            "height": .number(Double(height)), "steps": .number(Double(steps)),
            "negative_prompt": negative.map(JSONValue.string) ?? .null,
            "model": .object(JSONObject(["path": .string(URL(fileURLWithPath: modelPath).standardized.path),
                                         "pipeline_class": .string(folder.folder.pipelineClass),
                                         "config_sha256": .string(Self.configHash(modelPath))])),
            "versions": .object(JSONObject(["lvd": .string(HostServices.hostVersion), "abi": .string("\(LVD_ABI_MAJOR).\(LVD_ABI_MINOR)")])),
            "timings": .object(JSONObject(["plan_seconds": .number(planSeconds), "model_load_seconds": .number(loadSeconds),
                                           "generate_seconds": .number(generateSeconds),
                                           "total_seconds": .number(Date().timeIntervalSince(started))])),
            "peak_rss_bytes": .number(Double(ProcessMemory.peakResidentBytes)),
            "files": .array(["video.gif", "video.npy", "layout.json", "layout.gif"].map(JSONValue.string)),
        ])
        let runText = JSONValue.object(run).serialized(pretty: true) + "\n"
        try writeAtomically(runText, to: output + "/run.json")
        if json {
            print(runText, terminator: "")
        } else {
            print("wrote \(output)/video.gif, video.npy, layout.json, layout.gif, run.json")
            print(String(format: "%@ on %@: %d frames %dx%d, %d steps, seed %llu, %.1f s (peak %.2f GiB)", method, folder.folder.pipelineClass,
                         frames, width, height, steps, seed, generateSeconds, Double(ProcessMemory.peakResidentBytes) / 1_073_741_824))
        }
    }

    /// A short fingerprint of a model folder's contents, cheap even for gigabytes of weights:
    /// SHA-256 over every file's path, size and first and last MiB (component folders that are
    /// links, as in tiny-gligen, are followed). Two trainings of one architecture differ here;
    /// the stage-2 benchmark keys its results by it.
    static func modelFingerprint(_ folder: String) -> String {
        let manager = FileManager.default
        func resolved(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().path }
        var files: [(name: String, path: String)] = []
        for entry in ((try? manager.contentsOfDirectory(atPath: folder)) ?? []).sorted() {
            let path = resolved(folder + "/" + entry)
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                for inner in ((try? manager.contentsOfDirectory(atPath: path)) ?? []).sorted() { files.append((entry + "/" + inner, path + "/" + inner)) }
            } else {
                files.append((entry, path))
            }
        }
        let listing = files.map { file -> String in
            guard let handle = FileHandle(forReadingAtPath: file.path) else { return file.name + " -" }
            defer { try? handle.close() }
            let size = (try? handle.seekToEnd()) ?? 0
            let window: UInt64 = 1 << 20
            try? handle.seek(toOffset: 0)
            var sample = (try? handle.read(upToCount: Int(Swift.min(size, window)))) ?? Data()
            if size > window {
                try? handle.seek(toOffset: size - window)
                sample += (try? handle.read(upToCount: Int(window))) ?? Data()
            }
            return "\(file.name) \(size) \(sha256Hex(of: sample) ?? "-")"
        }.joined(separator: "\n")
        return String((sha256Hex(of: Data(listing.utf8)) ?? "").prefix(8))
    }

    /// SHA-256 over the folder's JSON files (configs, model index), so run.json pins the model's
    /// configuration without hashing gigabytes of weights.
    static func configHash(_ folder: String) -> String {
        let files = (FileManager.default.enumerator(atPath: folder)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".json") }.sorted()
        let listing = files.map { "\($0) \(sha256Hex(ofFile: folder + "/" + $0) ?? "-")" }.joined(separator: "\n")
        return sha256Hex(of: Data(listing.utf8)) ?? ""
    }
}

/// A progress bar on a terminal (rewritten in place), plain lines otherwise.
final class ProgressLine: @unchecked Sendable {
    private let enabled: Bool
    private let terminal = isatty(2) != 0
    private let lock = NSLock()
    private var drawn = false

    init(enabled: Bool) { self.enabled = enabled }

    func update(done: Int64, total: Int64, what: String) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        if terminal {
            let width = 30, filled = total > 0 ? Int(Double(width) * Double(done) / Double(total)) : 0
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            FileHandle.standardError.write(Data("\r[\(bar)] \(what) \(done)/\(total)".utf8))
            drawn = true
        } else {
            FileHandle.standardError.write(Data("\(what) \(done)/\(total)\n".utf8))
        }
    }

    /// A line of its own (a warning), below the bar when one is drawn.
    func message(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        if drawn { FileHandle.standardError.write(Data("\n".utf8)); drawn = false }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// Ends the bar: kept on its line, or with `erase` wiped (the caller prints its own line there).
    func finish(erase: Bool = false) {
        lock.lock()
        defer { lock.unlock() }
        guard drawn else { return }
        FileHandle.standardError.write(Data((erase ? "\r\u{1B}[K" : "\n").utf8))
        drawn = false
    }
}
