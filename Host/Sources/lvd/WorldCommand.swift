import ArgumentParser
import Foundation
import LVDFormats
import LVDHost
import LVDWorld

/// `lvd world`: the synthetic world the bundled model is trained on.
struct WorldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "world", abstract: "The tiny world: render clips of the benchmark's classes with their exact boxes.",
        subcommands: [Render.self, Dataset.self, Detect.self])

    struct Dataset: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export rendered clips with captions and boxes for training: shards of videos-NNNNN.npy (n, F, H, W, 3) and meta-NNNNN.json.")
        @Option(help: "Clips.") var count: Int = 1000
        @Option(help: "Frames per clip.") var frames: Int = 8
        @Option(help: "Width and height in pixels.") var size: Int = 64
        @Option(help: "Clips per shard.") var shardSize: Int = 256
        @Option(help: "Objects per clip at most.") var maxObjects: Int = 4
        @Option(help: "Sprite height in pixels, smallest (cars and birds are 1.3 times flatter).") var minSprite: Double = 16
        @Option(help: "Sprite height in pixels, largest.") var maxSprite: Double = 26
        @Option(help: "Seed of the first clip (clip i uses seed + i).") var seed: UInt64 = 0
        @Option(name: [.short, .customLong("output")], help: "Output folder; shards already there are kept (the export resumes).")
        var output: String = "world-dataset"

        func validate() throws {
            guard count >= 1, shardSize >= 1, (1...256).contains(frames), (16...1024).contains(size), (0...10).contains(maxObjects),
                  minSprite >= 2, maxSprite >= minSprite, maxSprite <= Double(size) else {
                throw ValidationError("need --count ≥ 1, --shard-size ≥ 1, --frames 1…256, --size 16…1024, --max-objects 0…10, 2 ≤ --min-sprite ≤ --max-sprite ≤ --size")
            }
        }

        func run() throws {
            InterruptHandler.install()
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            let shards = (count + shardSize - 1) / shardSize
            let manifest = JSONObject(["format": .string("lvd.world-dataset/1"), "count": .number(Double(count)), "frames": .number(Double(frames)),
                                       "size": .number(Double(size)), "shard_size": .number(Double(shardSize)), "seed": .number(Double(seed)),
                                       "max_objects": .number(Double(maxObjects)), "shards": .number(Double(shards)),
                                       "min_sprite": .number(minSprite), "max_sprite": .number(maxSprite)])
            let manifestPath = output + "/dataset.json"
            if let existing = try? JSONValue.parse(String(contentsOfFile: manifestPath, encoding: .utf8)).objectValue, existing != manifest {
                throw CLIError("\(manifestPath) describes another export (\(JSONValue.object(existing).serialized())); use another -o folder")
            }
            try writeAtomically(JSONValue.object(manifest).serialized(pretty: true) + "\n", to: manifestPath)
            for shard in 0..<shards {
                let name = String(format: "%05d", shard)
                let metaPath = output + "/meta-\(name).json"
                // The meta file is written last: its presence marks a finished shard.
                if FileManager.default.fileExists(atPath: metaPath) { continue }
                var bytes: [UInt8] = [], rows: [JSONValue] = []
                let first = shard * shardSize, last = Swift.min(count, first + shardSize)
                for index in first..<last {
                    if HostServices.shared.isCancelled { throw CLIError("interrupted: shards before \(name) are complete") }
                    let clipSeed = seed &+ UInt64(index)
                    let scene = World.randomScene(seed: clipSeed, size: size, frames: frames, maxObjects: maxObjects,
                                                      minSprite: minSprite, maxSprite: maxSprite)
                    let clip = WorldRenderer.render(scene)
                    bytes += clip.pixels
                    var row = Render.describe(scene, clip, seed: clipSeed)
                    row["caption"] = .string(Captions.caption(scene, seed: clipSeed))
                    rows.append(.object(row))
                }
                do {
                    try writeUInt8NPY(bytes, shape: [last - first, frames, size, size, 3], to: output + "/videos-\(name).npy")
                    try writeAtomically(JSONValue.array(rows).serialized() + "\n", to: metaPath)
                } catch { throw CLIError("\(error)") }
                FileHandle.standardError.write(Data("shard \(shard + 1)/\(shards): clips \(first)…\(last - 1)\n".utf8))
            }
            print("wrote \(count) clips in \(shards) shards to \(output)")
        }
    }

    struct Detect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Find the world's objects in a video (.npy or .gif): class, colour, box and score per frame.")
        @Argument(help: "video.npy (uint8 frames × height × width × 3) or an animated GIF.") var video: String
        @Flag(help: "Print JSON: a list per frame of {class, colour, box (normalised xyxy), score}.") var json = false

        func run() throws {
            let frames: VideoFrames
            do { frames = video.lowercased().hasSuffix(".gif") ? try VideoFrames.readGIF(video) : try VideoFrames.readNPY(video) } catch { throw CLIError("\(error)") }
            let found = WorldDetector().detect(frames: frames.rgb, count: frames.frames, width: frames.width, height: frames.height)
            if json {
                print(JSONValue.array(found.map { detections in .array(detections.map { d in
                    .object(JSONObject(["class": .string(d.kind.rawValue), "colour": .string(d.colour),
                                        "box": .array(d.box.map(JSONValue.number)), "score": .number(d.score)]))
                }) }).serialized(pretty: true))
                return
            }
            for (f, detections) in found.enumerated() {
                let list = detections.map { d in String(format: "%@ %@ [%.2f %.2f %.2f %.2f] %.2f", d.colour, d.kind.rawValue, d.box[0], d.box[1], d.box[2], d.box[3], d.score) }
                print("frame \(f): " + (list.isEmpty ? "nothing" : list.joined(separator: "; ")))
            }
        }
    }

    struct Render: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Render one random clip: video.gif, video.npy and boxes.json.")
        @Option(help: "Seed (the same seed, the same clip).") var seed: UInt64 = 0
        @Option(help: "Frames.") var frames: Int = 8
        @Option(help: "Width and height in pixels.") var size: Int = 64
        @Option(help: "Number of objects (default: random, 0…4).") var objects: Int?
        @Option(name: [.short, .customLong("output")], help: "Output folder.") var output: String = "world"

        func validate() throws {
            guard (1...256).contains(frames) else { throw ValidationError("--frames must be in 1…256") }
            guard (16...1024).contains(size) else { throw ValidationError("--size must be in 16…1024") }
            if let objects, !(0...10).contains(objects) { throw ValidationError("--objects must be in 0…10") }
        }

        func run() throws {
            let scene = World.randomScene(seed: seed, size: size, frames: frames, objectCount: objects)
            let clip = WorldRenderer.render(scene)
            let video = VideoFrames(frames: frames, height: size, width: size, rgb: clip.pixels)
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            do {
                try video.writeNPY(to: output + "/video.npy")
                try video.writeGIF(to: output + "/video.gif")
                try writeAtomically(JSONValue.object(Self.describe(scene, clip, seed: seed)).serialized(pretty: true) + "\n", to: output + "/boxes.json")
            } catch { throw CLIError("\(error)") }
            print("wrote \(output)/video.gif, video.npy, boxes.json: \(scene.background.rawValue); "
                  + (scene.objects.isEmpty ? "no objects" : scene.objects.map { "\($0.colourName) \($0.kind.rawValue)" }.joined(separator: ", ")))
        }

        /// Background, and per object its class, colour and visible box per frame (null when off the canvas).
        static func describe(_ scene: World.Scene, _ clip: WorldRenderer.Clip, seed: UInt64) -> JSONObject {
            JSONObject([
                "seed": .number(Double(seed)), "size": .number(Double(scene.size)), "frames": .number(Double(scene.frames)),
                "background": .string(scene.background.rawValue),
                "objects": .array(scene.objects.indices.map { o in
                    .object(JSONObject([
                        "class": .string(scene.objects[o].kind.rawValue), "colour": .string(scene.objects[o].colourName),
                        "boxes": .array((0..<scene.frames).map { f in clip.boxes[o][f].map { .array($0.map(JSONValue.number)) } ?? .null }),
                    ]))
                }),
            ])
        }
    }
}
