import ArgumentParser
import Foundation
import LVDFormats
import LVDRuntime

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print figures and ratios measured side by side in one run.",
        subcommands: [Ops.self, Unet.self, Stage1.self, Stage2Bench.self, Merge.self, Rescore.self, Report.self, WorldBench.self])

    struct Ops: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "GFLOP/s of the runtime's kernels at UNet shapes, forward and backward (use a release build).")

        @Flag(help: "Print one JSON object per case.") var json = false
        @Option(help: ArgumentHelp("A Python with torch: time the same cases in PyTorch in this run and print the ratio.", valueName: "python"))
        var reference: String?
        @Option(help: "Minimum seconds to spend timing each case.") var minSeconds: Double = 0.5
        @Option(help: "Only cases whose name contains this.") var filter: String?

        func run() throws {
            InterruptHandler.install(quitAtOnce: true)
            let cases = BenchCase.all.filter { filter == nil || $0.name.contains(filter!) }
            let library = BLAS.library
            let header = [
                "lvd bench ops — build: \(BuildInfo.configuration), threads: \(Parallel.threads)",
                "OpenBLAS: \(library.coreName) kernels (\(library.reason))",
            ]
            if !json { header.forEach { print($0) } }
            var torchSeconds: [String: Double] = [:]
            var torchVersion = ""
            if let reference {
                if !json { print("PyTorch: timing the same cases with \(reference) …") }
                (torchVersion, torchSeconds) = try runTorch(reference, cases)
                if !json { print("PyTorch \(torchVersion), \(Parallel.threads) threads") }
            }
            var rows = [["case", "shape", "dir", "seconds", "GFLOP/s", "torch s", "speed-up"]]
            var objects: [JSONValue] = []
            var sgemmRate = 0.0
            for benchCase in cases {
                let seconds = try benchCase.time(minSeconds: minSeconds)
                let rate = benchCase.gflop / seconds
                if benchCase.op == "sgemm" { sgemmRate = Swift.max(sgemmRate, rate) }
                let torch = torchSeconds[benchCase.name]
                rows.append([benchCase.name, benchCase.shapeText, benchCase.direction, String(format: "%.4f", seconds),
                             benchCase.gflop > 0 ? String(format: "%.1f", rate) : "-", torch.map { String(format: "%.4f", $0) } ?? "-",
                             torch.map { String(format: "%.2f×", $0 / seconds) } ?? "-"])
                var object = JSONObject()
                object["op"] = .string(benchCase.op)
                object["name"] = .string(benchCase.name)
                object["shape"] = .string(benchCase.shapeText)
                object["direction"] = .string(benchCase.direction)
                object["seconds"] = .number(seconds)
                object["gflops"] = .number(rate)
                if benchCase.bytes > 0 { object["gbytes_per_second"] = .number(benchCase.bytes / seconds / 1e9) }
                if sgemmRate > 0 { object["percent_of_sgemm"] = .number(100 * rate / sgemmRate) }
                if let torch {
                    object["torch_seconds"] = .number(torch)
                    object["speedup_vs_torch"] = .number(torch / seconds)
                }
                objects.append(.object(object))
                if json { print(JSONValue.object(object).serialized()) }
            }
            guard !json else { return }
            func row(_ name: String) -> JSONObject? { objects.first { $0.objectValue?["name"] == .string(name) }?.objectValue }
            print(table(rows), terminator: "")
            if sgemmRate > 0 { print(String(format: "sgemm rate: %.1f GFLOP/s", sgemmRate)) }
            // Ratios the targets are stated in (the sgemm share only when sgemm ran in this run).
            for benchCase in cases where sgemmRate > 0 && (benchCase.op == "conv2d" || benchCase.op == "attention") {
                guard let found = row(benchCase.name), found["direction"] == .string("forward"), let rate = found["gflops"]?.numberValue else { continue }
                print(String(format: "%@: %.0f%% of the sgemm rate", benchCase.name, 100 * rate / Swift.max(sgemmRate, 1e-9)))
            }
            // Cases bound by memory against the copy's bandwidth, measured in this run.
            if let copy = cases.first(where: { $0.op == "copy" }), let bandwidth = row(copy.name)?["gbytes_per_second"]?.numberValue {
                print(String(format: "copy bandwidth: %.1f GB/s (read + write)", bandwidth))
                for benchCase in cases where benchCase.op == "attention" && benchCase.direction == "forward" {
                    guard let rate = row(benchCase.name)?["gbytes_per_second"]?.numberValue else { continue }
                    print(String(format: "%@: operands %.0f MB at %.1f GB/s, %.0f%% of the copy bandwidth",
                                 benchCase.name, benchCase.bytes / 1e6, rate, 100 * rate / bandwidth))
                }
            }
            func seconds(_ name: String) -> Double? { row(name)?["seconds"]?.numberValue }
            for forward in cases where forward.direction == "forward" {
                for backward in cases where backward.direction.hasPrefix("backward") && backward.op == forward.op && backward.shapes == forward.shapes {
                    guard let f = seconds(forward.name), let b = seconds(backward.name) else { continue }
                    print(String(format: "%@: %@ / forward = %.2f", forward.name, backward.direction, b / f))
                }
            }
        }

        private func runTorch(_ python: String, _ cases: [BenchCase]) throws -> (String, [String: Double]) {
            let input = JSONValue.array(cases.map { $0.torchJSON(threads: Parallel.threads, minSeconds: minSeconds) })
            let root = try runReference(python, script: "bench_ops_torch.py", input: input)
            guard let seconds = root["seconds"]?.objectValue else { throw CLIError("bench_ops_torch.py answered without seconds") }
            var result: [String: Double] = [:]
            for (name, value) in seconds { result[name] = value.numberValue }
            return (root["torch"]?.stringValue ?? "?", result)
        }
    }
}

enum BuildInfo {
    #if DEBUG
    static let configuration = "debug (numbers are not meaningful: use swift build -c release)"
    #else
    static let configuration = "release"
    #endif
}

import LVDHost

/// One benchmark case: an op at a shape, forward or backward, with its nominal FLOP count.
struct BenchCase {
    let name: String
    let op: String
    let direction: String
    let shapes: [[Int]]
    let gflop: Double
    /// The bytes the case must at least read and write (its operands and result), where that is
    /// what bounds it: copy and attention.
    var bytes: Double = 0

    var shapeText: String { shapes.map { $0.map(String.init).joined(separator: "×") }.joined(separator: ", ") }

    func torchJSON(threads: Int, minSeconds: Double) -> JSONValue {
        .object(JSONObject([
            "name": .string(name), "op": .string(op), "direction": .string(direction),
            "shapes": .array(shapes.map { .array($0.map { .number(Double($0)) }) }),
            "threads": .number(Double(threads)), "min_seconds": .number(minSeconds),
        ]))
    }

    static let all: [BenchCase] = {
        var cases: [BenchCase] = []
        // This machine's memory bandwidth in the same run: x · 1 over 64 MB (read and write), so a
        // case bound by memory (temporal attention) is judged against what the memory gives.
        cases.append(BenchCase(name: "copy 64 MB", op: "copy", direction: "forward", shapes: [[16, 1024, 1024]], gflop: 0,
                               bytes: 2 * 64 * 1_048_576))
        for n in [1024, 2048] {
            cases.append(BenchCase(name: "sgemm \(n)", op: "sgemm", direction: "forward", shapes: [[n, n], [n, n]],
                                   gflop: 2 * pow(Double(n), 3) / 1e9))
        }
        // UNet 3×3 convolutions: (images, channels, size); 8 images = half a 16-frame video.
        for (images, channels, size) in [(8, 320, 32), (8, 640, 16), (8, 1280, 16)] {
            let flop = 2.0 * Double(images * channels * size * size * channels * 9) / 1e9
            let shapes = [[images, channels, size, size], [channels, channels, 3, 3]]
            cases.append(BenchCase(name: "conv3x3 \(channels)@\(size)", op: "conv2d", direction: "forward", shapes: shapes, gflop: flop))
            cases.append(BenchCase(name: "conv3x3 \(channels)@\(size) bwd", op: "conv2d", direction: "backward", shapes: shapes, gflop: 2 * flop))
            // Guidance differentiates to the input only (frozen weights).
            cases.append(BenchCase(name: "conv3x3 \(channels)@\(size) bwd input", op: "conv2d", direction: "backward-input", shapes: shapes, gflop: flop))
        }
        // UNet3D's temporal convolution, kernel (3, 1, 1) over 16 frames of 32×32 positions, as
        // conv2d on (batch, channels, frames, positions) with kernel (3, 1).
        let temporal = [[2, 320, 16, 1024], [320, 320, 3, 1]]
        let temporalFlop = 2.0 * Double(2 * 320 * 16 * 1024 * 320 * 3) / 1e9
        cases.append(BenchCase(name: "conv temporal 320@32 16f", op: "conv2d", direction: "forward", shapes: temporal, gflop: temporalFlop))
        cases.append(BenchCase(name: "conv temporal 320@32 16f bwd", op: "conv2d", direction: "backward", shapes: temporal, gflop: 2 * temporalFlop))
        cases.append(BenchCase(name: "conv temporal 320@32 16f bwd input", op: "conv2d", direction: "backward-input", shapes: temporal, gflop: temporalFlop))
        // UNet attention: spatial self-attention at 32×32 and 16×16, cross-attention to 77 tokens.
        // Temporal attention: every (position, head) attends over 16 frames (32×32 latents, 5 heads).
        for (label, batch, lq, lk, d) in [("self 32×32", 10, 1024, 1024, 64), ("self 16×16", 20, 256, 256, 64), ("cross 32×32", 10, 1024, 77, 64),
                                          ("temporal 16f", 5120, 16, 16, 64)] {
            let flop = 4.0 * Double(batch * lq * lk * d) / 1e9
            let shapes = [[batch, lq, d], [batch, lk, d], [batch, lk, d]]
            let operands = 4.0 * Double(batch * (2 * lq + 2 * lk) * d)  // q, k, v and the output
            cases.append(BenchCase(name: "attention \(label)", op: "attention", direction: "forward", shapes: shapes, gflop: flop, bytes: operands))
            cases.append(BenchCase(name: "attention \(label) bwd", op: "attention", direction: "backward", shapes: shapes, gflop: 2 * flop))
        }
        let norm = [8, 320, 32, 32]
        let normFlop = 8.0 * Double(norm.reduce(1, *)) / 1e9
        cases.append(BenchCase(name: "group_norm 320@32", op: "group_norm", direction: "forward", shapes: [norm], gflop: normFlop))
        cases.append(BenchCase(name: "group_norm 320@32 bwd", op: "group_norm", direction: "backward", shapes: [norm], gflop: 2 * normFlop))
        return cases
    }()

    /// Best time over repeats after a warm-up, as the torch side measures.
    func time(minSeconds: Double) throws -> Double {
        var generator = SplitMix(seed: 0)
        let inputs = try shapes.map { shape in
            try Tensor((0..<shape.reduce(1, *)).map { _ in generator.nextNormal() }, shape: shape)
        }
        let body: () throws -> Void
        var prepare: (() throws -> Void)?
        // Convolutions keep their size: (3, 3) pads (1, 1), the temporal (3, 1) pads (1, 0).
        let samePadding = shapes.count > 1 && shapes[1].count == 4 ? (shapes[1][2] / 2, shapes[1][3] / 2) : (0, 0)
        switch (op, direction) {
        case ("sgemm", _):
            body = { _ = try GradMode.withoutGrad { try inputs[0].matmul(inputs[1]) } }
        case ("copy", _):
            body = { _ = try GradMode.withoutGrad { try inputs[0] * 1 } }
        case ("conv2d", "forward"):
            body = { _ = try GradMode.withoutGrad { try inputs[0].conv2d(weight: inputs[1], padding: samePadding) } }
        case ("attention", "forward"):
            body = { _ = try GradMode.withoutGrad { try Tensor.attention(query: inputs[0], key: inputs[1], value: inputs[2]) } }
        case ("group_norm", "forward"):
            body = { _ = try GradMode.withoutGrad { try inputs[0].groupNorm(groups: 32, weight: nil, bias: nil) } }
        default:
            let forward: ([Tensor]) throws -> Tensor = {
                switch op {
                case "conv2d": return { try $0[0].conv2d(weight: $0[1], padding: samePadding) }
                case "attention": return { try Tensor.attention(query: $0[0], key: $0[1], value: $0[2]).output }
                default: return { try $0[0].groupNorm(groups: 32, weight: nil, bias: nil) }
                }
            }()
            let probe = try GradMode.withoutGrad { try forward(inputs) }
            let seed = try Tensor((0..<probe.count).map { _ in generator.nextNormal() }, shape: probe.shape)
            // The forward pass is recorded untimed; only backward() is timed.
            var root = probe
            // "backward-input": only the first input (the activations) requires grad.
            let inputOnly = direction == "backward-input"
            prepare = { root = try forward(inputs.enumerated().map { $0.element.detached().requiringGrad(!inputOnly || $0.offset == 0) }) }
            body = { try root.backward(seed: seed) }
        }
        try prepare?()
        try body()
        var best = Double.infinity, total = 0.0, repeats = 0
        while repeats < 3 || (total < minSeconds && repeats < 50) {
            try prepare?()
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = Swift.min(best, elapsed)
            total += elapsed
            repeats += 1
        }
        return best
    }
}

/// Deterministic normal samples for benchmark inputs.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    mutating func nextNormal() -> Float {
        let u1 = Double(next() >> 11) / Double(1 << 53) + 1e-12, u2 = Double(next() >> 11) / Double(1 << 53)
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2))
    }
}

import LVDModels

extension Bench {
    struct Unet: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "unet",
            abstract: "UNet3D forward (batch B) and backward-to-input of captured attention maps (batch 1), random weights; with diffusers side by side.")

        @Option(help: "tiny, modelscope, or a folder with unet/config.json (or config.json).") var config: String = "tiny"
        @Option(help: "Frames.") var frames: Int = 16
        @Option(help: "Latent size HxW (the video is 8× larger).") var size: String = "32x32"
        @Option(help: "Batch of the forward pass (2 = a CFG pair).") var batch: Int = 2
        @Flag(help: "Skip the backward pass (it keeps every activation for the tape).") var skipBackward = false
        @Flag(help: "Backward with recomputation (gradient checkpointing per layer, on both sides): the memory of the layers' inputs only.")
        var recompute = false
        @Option(help: "Time the forward pass this many times on each side and report the best (the first includes one-time costs: page faults, torch's lazy initialisation).")
        var repeats: Int = 1
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Print where each pass's time goes, by op and output shape (docs/runtime-performance.md).")
        var profile = false
        @Option(help: ArgumentHelp("A Python with torch and diffusers: run the same in diffusers in this run.", valueName: "python"))
        var reference: String?

        func validate() throws {
            let parts = size.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts.allSatisfy({ $0 > 0 }) else { throw ValidationError("--size must be HxW, e.g. 32x32") }
            guard frames >= 1, batch >= 1, repeats >= 1 else { throw ValidationError("--frames, --batch and --repeats must be positive") }
        }

        func run() throws {
            InterruptHandler.install(quitAtOnce: true)
            if profile { OpProfile.enabled = true }
            let (unetConfig, json) = try resolveConfig()
            let dims = size.split(separator: "x").compactMap { Int($0) }
            let (h, w) = (dims[0], dims[1])
            let keys = captureKeys(unetConfig)
            // diffusers first, while this process holds no weights: both sides get the machine's memory.
            var torch: JSONObject?
            if let reference { torch = try runTorch(reference, json, h: h, w: w, keys: keys) }
            let unet = try UNet3DConditionModel(unetConfig)
            try unet.randomizeParameters(seed: 0)
            var results: [(String, Double, Int)] = []
            let latents = try Tensor.full([batch, unetConfig.inChannels, frames, h, w], 0.5)
            let context = try Tensor.full([batch, 77, unetConfig.crossAttentionDim], 0.1)
            var start = DispatchTime.now().uptimeNanoseconds
            var best = Double.infinity
            for _ in 0..<repeats {
                start = DispatchTime.now().uptimeNanoseconds
                OpProfile.reset()
                _ = try GradMode.withoutGrad { try unet(latents, timestep: 500, context: context) }
                best = Swift.min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            results.append(("forward", best, peakRSS()))
            if profile { FileHandle.standardError.write(Data(("forward " + OpProfile.report()).utf8)) }
            if !skipBackward {
                let x = try Tensor.full([1, unetConfig.inChannels, frames, h, w], 0.5).requiringGrad()
                start = DispatchTime.now().uptimeNanoseconds
                let out = try unet(x, timestep: 500, context: context.sliced(axis: 0, start: 0, end: 1), capture: Set(keys), recompute: recompute)
                var energy = Tensor.scalar(0)
                for map in out.attention.values { energy = try energy + (map * map).mean() }
                OpProfile.reset()
                try energy.backward()
                results.append((recompute ? "backward-to-input (recompute)" : "backward-to-input", Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, peakRSS()))
                if profile { FileHandle.standardError.write(Data(("backward " + OpProfile.report()).utf8)) }
            }
            let label = "UNet3D \(config) (\(grouped(unet.parameterCount)) parameters), \(frames) frames, latents \(h)×\(w)"
            if self.json {
                var root = JSONObject(["config": .string(config), "frames": .number(Double(frames)), "batch": .number(Double(batch))])
                root["results"] = .array(results.map { name, seconds, rss in
                    var row = JSONObject(["direction": .string(name), "seconds": .number(seconds), "peak_rss": .number(Double(rss))])
                    let prefix = name == "forward" ? "forward" : "backward"
                    if let t = torch?["\(prefix)_seconds"]?.numberValue { row["torch_seconds"] = .number(t); row["speedup_vs_torch"] = .number(t / seconds) }
                    if let r = torch?["\(prefix)_peak_rss"]?.numberValue { row["torch_peak_rss"] = .number(r) }
                    return .object(row)
                })
                if let failure = torch?["failure"] { root["torch_failure"] = failure }
                print(JSONValue.object(root).serialized(pretty: true))
                return
            }
            print("lvd bench unet — \(label); build: \(BuildInfo.configuration), threads: \(Parallel.threads)")
            var rows = [["pass", "batch", "seconds", "peak RSS", "torch s", "torch RSS", "speed-up"]]
            for (name, seconds, rss) in results {
                let prefix = name == "forward" ? "forward" : "backward"
                let t = torch?["\(prefix)_seconds"]?.numberValue, r = torch?["\(prefix)_peak_rss"]?.numberValue
                rows.append([name, name == "forward" ? "\(batch)" : "1", String(format: "%.2f", seconds), gib(rss),
                             t.map { String(format: "%.2f", $0) } ?? "-", r.map { gib(Int($0)) } ?? "-",
                             t.map { String(format: "%.2f×", $0 / seconds) } ?? "-"])
            }
            print(table(rows), terminator: "")
            print("(peak RSS is per process and cumulative: the backward row includes the forward's)")
            if let failure = torch?["failure"]?.stringValue {
                print("(diffusers stopped after the passes shown: \(failure))")
            }
            if recompute && reference != nil {
                print("(diffusers' UNet3DConditionModel has no gradient checkpointing: its backward keeps every activation)")
            }
        }

        /// The configuration and its JSON for the torch side.
        private func resolveConfig() throws -> (UNet3DConfiguration, JSONObject) {
            var config = UNet3DConfiguration()
            switch self.config {
            case "modelscope":
                break // the defaults are ModelScope's (Zeroscope is identical)
            case "tiny":
                config.blockOutChannels = [32, 64]
                config.downBlockTypes = ["CrossAttnDownBlock3D", "DownBlock3D"]
                config.upBlockTypes = ["UpBlock3D", "CrossAttnUpBlock3D"]
                config.layersPerBlock = 1
                config.attentionHeadDim = 8
                config.crossAttentionDim = 32
                config.normNumGroups = 8
            default:
                let folder = FileManager.default.fileExists(atPath: self.config + "/unet/config.json") ? self.config + "/unet" : self.config
                config = try ModelFolder.configuration(UNet3DConfiguration.self, in: folder)
                config.attentionType = "default" // GLIGEN modules are not benchmarked
            }
            let data = try JSONEncoder().encode(config)
            var object = try JSONValue.parse(bytes: [UInt8](data)).objectValue!
            object["attention_type"] = nil
            return (config, object)
        }

        /// LVD's keys where the model has them (METHODS.md §4.5), else every spatial cross-attention.
        private func captureKeys(_ config: UNet3DConfiguration) -> [AttentionKey] {
            if config.blockOutChannels.count == 4 {
                return [AttentionKey(.down, 1, 0), AttentionKey(.down, 2, 0), AttentionKey(.down, 2, 1),
                        AttentionKey(.up, 1, 0), AttentionKey(.up, 1, 1), AttentionKey(.up, 2, 2)]
            }
            var keys: [AttentionKey] = []
            for (i, type) in config.downBlockTypes.enumerated() where type.hasPrefix("CrossAttn") {
                keys += (0..<config.layersPerBlock).map { AttentionKey(.down, i, $0) }
            }
            for (i, type) in config.upBlockTypes.enumerated() where type.hasPrefix("CrossAttn") {
                keys += (0...config.layersPerBlock).map { AttentionKey(.up, i, $0) }
            }
            return keys
        }

        private func runTorch(_ python: String, _ config: JSONObject, h: Int, w: Int, keys: [AttentionKey]) throws -> JSONObject {
            var job = JSONObject()
            job["config"] = .object(config)
            job["batch"] = .number(Double(batch))
            job["frames"] = .number(Double(frames))
            job["repeats"] = .number(Double(repeats))
            job["height"] = .number(Double(h))
            job["width"] = .number(Double(w))
            job["threads"] = .number(Double(Parallel.threads))
            job["backward"] = .bool(!skipBackward)
            job["recompute"] = .bool(recompute)
            job["keys"] = .array(keys.map { .array([.string($0.part.rawValue), .number(Double($0.block)), .number(Double($0.layer))]) })
            return try runReference(python, script: "bench_unet_torch.py", input: .object(job), partial: true)
        }

        private func peakRSS() -> Int { ProcessMemory.peakResidentBytes }

        private func gib(_ bytes: Int) -> String { String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }

        private func grouped(_ n: Int) -> String {
            let digits = String(n)
            return digits.enumerated().map { (i, c) in (i > 0 && (digits.count - i) % 3 == 0 ? "," : "") + String(c) }.joined()
        }
    }
}

/// Runs `Scripts/<script>` of the source tree with `python`, JSON in on stdin, a JSON object out:
/// the reference side of the benchmarks. With `partial`, a script that fails after printing an
/// object gives that object with "failure" saying why (the passes it finished still count).
func runReference(_ python: String, script name: String, input: JSONValue, partial: Bool = false) throws -> JSONObject {
    guard let script = HostPaths.sourceTree(from: HostPaths.executableDirectory).map({ $0 + "/Scripts/" + name }),
          FileManager.default.fileExists(atPath: script) else {
        throw CLIError("--reference needs Scripts/\(name) from the source tree")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [script]
    let stdin = Pipe(), stdout = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    do { try process.run() } catch { throw CLIError("cannot run \(python): \(error.localizedDescription)") }
    InterruptHandler.track(child: process.processIdentifier, signal: SIGTERM)
    defer { InterruptHandler.untrack(child: process.processIdentifier) }
    stdin.fileHandleForWriting.write(Data(input.serialized().utf8))
    try? stdin.fileHandleForWriting.close()
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    // The script's answer: its last line that is a JSON object (a script may print one per pass).
    let answer = String(decoding: output, as: UTF8.self).split(separator: "\n").reversed()
        .lazy.compactMap { try? JSONValue.parse(bytes: Array($0.utf8)).objectValue }.first
    let failed = process.terminationStatus != 0
    let why = process.terminationReason == .uncaughtSignal
        ? "killed by signal \(process.terminationStatus)\(process.terminationStatus == 9 ? ", out of memory?" : "")"
        : "exit \(process.terminationStatus)"
    if failed, partial, var answer {
        answer["failure"] = .string(why)
        return answer
    }
    guard !failed, let answer else {
        throw CLIError("\(python) \(script) failed (\(why)); are torch and diffusers installed there?")
    }
    return answer
}
