import Foundation
import LVDFormats
import LVDWorld
import XCTest

/// The tiny world's renderer: deterministic, boxes that match the pixels, backgrounds that keep
/// clear of every object colour.
final class WorldTests: XCTestCase {
    func testSameSeedSameClipAndScenesVary() {
        let a = World.randomScene(seed: 42), b = World.randomScene(seed: 42), c = World.randomScene(seed: 43)
        XCTAssertEqual(a, b)
        XCTAssertEqual(WorldRenderer.render(a).pixels, WorldRenderer.render(b).pixels)
        XCTAssertNotEqual(a, c)
        let scenes = (0..<200).map { World.randomScene(seed: UInt64($0)) }
        XCTAssertEqual(Set(scenes.map(\.objects.count)), [0, 1, 2, 3, 4], "0–4 objects")
        XCTAssertEqual(Set(scenes.flatMap { $0.objects.map(\.kind) }), Set(World.Kind.allCases))
        XCTAssertEqual(Set(scenes.flatMap { $0.objects.map(\.colour) }).count, 11)
        XCTAssertEqual(Set(scenes.map(\.background)), Set(World.Background.allCases))
    }

    /// Each object drawn alone: the pixels that differ from the background span exactly its
    /// reported box, on every frame, for every kind (also when partly off the canvas).
    func testBoxesMatchThePixels() {
        for seed in 0..<40 {
            var scene = World.randomScene(seed: UInt64(seed), objectCount: 1)
            let empty = World.Scene(size: scene.size, frames: scene.frames, background: scene.background, objects: [])
            let background = WorldRenderer.render(empty).pixels, clip = WorldRenderer.render(scene), pixels = clip.pixels
            let s = scene.size
            for f in 0..<scene.frames {
                var minX = s, minY = s, maxX = -1, maxY = -1
                for y in 0..<s {
                    for x in 0..<s {
                        let o = ((f * s + y) * s + x) * 3
                        if (0..<3).contains(where: { pixels[o + $0] != background[o + $0] }) {
                            minX = Swift.min(minX, x); maxX = Swift.max(maxX, x); minY = Swift.min(minY, y); maxY = Swift.max(maxY, y)
                        }
                    }
                }
                guard let box = clip.boxes[0][f] else {
                    XCTAssertEqual(maxX, -1, "seed \(seed) frame \(f): off the canvas, nothing drawn")
                    continue
                }
                let drawn = [Double(minX), Double(minY), Double(maxX + 1), Double(maxY + 1)].map { $0 / Double(s) }
                for c in 0..<4 {
                    XCTAssertEqual(drawn[c], box[c], "seed \(seed) \(scene.objects[0].kind) frame \(f) coordinate \(c)")
                }
            }
            scene.objects.removeAll()
        }
    }

    func testBackgroundsStayClearOfObjectColours() {
        for background in World.Background.allCases {
            let pixels = WorldRenderer.render(World.Scene(size: 64, frames: 1, background: background, objects: [])).pixels
            var nearest = Double.infinity
            for p in 0..<(64 * 64) {
                for (_, rgb) in World.colours {
                    let d = (pow(Double(pixels[3 * p]) - Double(rgb.0), 2) + pow(Double(pixels[3 * p + 1]) - Double(rgb.1), 2)
                             + pow(Double(pixels[3 * p + 2]) - Double(rgb.2), 2)).squareRoot()
                    nearest = Swift.min(nearest, d)
                }
            }
            XCTAssertGreaterThan(nearest, 35, "\(background): a background pixel is \(nearest) from an object colour")
        }
    }

    func testRenderCommandWritesTheClipAndItsBoxes() throws {
        let temp = try TempDir()
        let result = try lvd(["world", "render", "--seed", "7", "--objects", "2", "-o", temp.file("w")])
        XCTAssertEqual(result.status, 0, result.output)
        let boxes = try XCTUnwrap(try JSONValue.parse(String(contentsOfFile: temp.file("w/boxes.json"), encoding: .utf8)).objectValue)
        XCTAssertEqual(boxes["objects"]?.arrayValue?.count, 2)
        XCTAssertEqual(boxes["objects"]?.arrayValue?.first?.objectValue?["boxes"]?.arrayValue?.count, 8)
        let npy = try Data(contentsOf: URL(fileURLWithPath: temp.file("w/video.npy")))
        XCTAssertEqual(npy.count, 128 + 8 * 64 * 64 * 3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: temp.file("w/video.gif")))

        // detect reads the clip back from either file and finds the objects' colours.
        let colours = Set(boxes["objects"]!.arrayValue!.compactMap { $0.objectValue?["colour"]?.stringValue })
        for file in ["w/video.npy", "w/video.gif"] {
            let detect = try lvd(["world", "detect", temp.file(file), "--json"])
            XCTAssertEqual(detect.status, 0, detect.output)
            let frames = try XCTUnwrap(try JSONValue.parse(detect.stdout).arrayValue)
            XCTAssertEqual(frames.count, 8)
            let seen = Set(frames.flatMap { $0.arrayValue ?? [] }.compactMap { $0.objectValue?["colour"]?.stringValue })
            XCTAssertTrue(colours.isSubset(of: seen), "\(file): rendered \(colours), detected \(seen)")
        }
        let bad = try lvd(["world", "detect", temp.file("w/boxes.json")])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("boxes.json: not a .npy file"), bad.stderr)
    }
}

/// The detector against the renderer's own boxes (STAGE1 §8's detector contract, for this world).
final class WorldDetectorTests: XCTestCase {
    /// Share of visible objects (at least 8 × 8 px on the canvas, at least 60 % of their pixels not
    /// hidden by another object) found with the right class and colour at IoU ≥ 0.5, over
    /// `scenes` random clips, after `degrade`.
    func recall(scenes: Int, degrade: (inout [UInt8], Int, Int) -> Void) -> (rate: Double, misses: [String]) {
        let detector = WorldDetector()
        var found = 0, total = 0
        var misses: [String] = []
        for seed in 0..<scenes {
            let scene = World.randomScene(seed: UInt64(1000 + seed), frames: 4)
            let clip = WorldRenderer.render(scene)
            var pixels = clip.pixels
            degrade(&pixels, scene.size, scene.frames)
            let frameBytes = scene.size * scene.size * 3
            for f in 0..<scene.frames {
                let detections = detector.detect(pixels[(f * frameBytes)..<((f + 1) * frameBytes)], width: scene.size, height: scene.size)
                for (o, object) in scene.objects.enumerated() {
                    guard let box = clip.boxes[o][f], (box[2] - box[0]) * Double(scene.size) >= 8, (box[3] - box[1]) * Double(scene.size) >= 8,
                          clip.visible[o][f] >= 0.6 else { continue }
                    total += 1
                    if detections.contains(where: { $0.kind == object.kind && $0.colour == object.colourName && WorldDetector.iou($0.box, box) >= 0.5 }) {
                        found += 1
                    } else if misses.count < 12 {
                        misses.append("seed \(1000 + seed) frame \(f): \(object.colourName) \(object.kind) at \(box.map { Int($0 * 64) }) — saw \(detections.map { "\($0.colour) \($0.kind) \($0.box.map { Int($0 * 64) })" })")
                    }
                }
            }
        }
        return (Double(found) / Double(Swift.max(total, 1)), misses)
    }

    /// A region in an object's colour that fills most of the frame (a generated sky in the blue
    /// of the blue sprites) is background, not a giant ball; a sprite on it is still found.
    func testFrameFillingColourIsNoObject() throws {
        let blue = try XCTUnwrap(World.colours.first { $0.name == "blue" }).rgb
        let ball = World.Object(kind: .ball, colour: World.colours.firstIndex { $0.name == "red" }!, width: 20, height: 20,
                                path: [(x: 30, y: 30)], facingLeft: false)
        var pixels = WorldRenderer.render(World.Scene(size: 64, frames: 1, background: .scene, objects: [ball])).pixels
        for y in 0..<64 {
            for x in 0..<64 where y < 56 && !(x >= 28 && x < 52 && y >= 28 && y < 52) {
                pixels[(y * 64 + x) * 3] = blue.0; pixels[(y * 64 + x) * 3 + 1] = blue.1; pixels[(y * 64 + x) * 3 + 2] = blue.2
            }
        }
        let found = WorldDetector().detect(pixels[...], width: 64, height: 64)
        XCTAssertFalse(found.contains { $0.colour == "blue" }, "\(found)")
        XCTAssertTrue(found.contains { $0.colour == "red" && $0.kind == .ball }, "\(found)")
    }

    func testCleanRenders() {
        let (rate, misses) = recall(scenes: 150) { _, _, _ in }
        // Issue 7's target. Measured 0.984 here (0.985 on the unseen scenes 7000–7149); what is
        // left: sprites cut by the frame edge taken for another kind, heavy overlaps.
        XCTAssertGreaterThanOrEqual(rate, 0.98, "recall \(rate); misses: \(misses.joined(separator: "\n"))")
    }

    /// Blur (1-2-1 in both directions) and noise (±12 per channel), about as soft and grainy as
    /// decoded frames of the tiny model.
    func testBlurredNoisyRenders() {
        var state: UInt64 = 99
        let (rate, misses) = recall(scenes: 150) { pixels, size, frames in
            var blurred = pixels
            for f in 0..<frames {
                for y in 0..<size {
                    for x in 0..<size {
                        for c in 0..<3 {
                            var sum = 0, weight = 0
                            for dy in -1...1 {
                                for dx in -1...1 {
                                    let (nx, ny) = (x + dx, y + dy)
                                    guard nx >= 0, ny >= 0, nx < size, ny < size else { continue }
                                    let w = (dx == 0 ? 2 : 1) * (dy == 0 ? 2 : 1)
                                    sum += w * Int(pixels[((f * size + ny) * size + nx) * 3 + c]); weight += w
                                }
                            }
                            state = state &* 6364136223846793005 &+ 1442695040888963407
                            let noise = Int((state >> 33) % 25) - 12
                            blurred[((f * size + y) * size + x) * 3 + c] = UInt8(Swift.max(0, Swift.min(255, sum / weight + noise)))
                        }
                    }
                }
            }
            pixels = blurred
        }
        // Issue 7's target. Measured 0.902 here (0.924 on the unseen scenes 7000–7149); blur still
        // takes off thin parts (wheels, tails, ears) and merges touching sprites.
        XCTAssertGreaterThanOrEqual(rate, 0.90, "recall \(rate); misses: \(misses.joined(separator: "\n"))")
    }
}

final class WorldDatasetTests: XCTestCase {
    /// Captions name every object's class (and, unless counted, colour) and never say where
    /// things are or which way they move.
    func testCaptionScoreTellsOneObjectFromClutter() {
        typealias D = WorldDetector.Detection
        let box = [0.1, 0.1, 0.4, 0.4]
        let dog = D(kind: .dog, colour: "red", box: box, score: 1)
        let clean: [[D]] = [[dog], [dog], [], [dog]]
        XCTAssertEqual(WorldDetector.captionScore(clean, kind: .dog, colour: "red"),
                       .init(classFound: true, colourFound: true, alone: true, perFrame: 0.75))
        // Blobs of every class and colour: the named class and colour are found, the dog alone is not.
        let clutter: [[D]] = (0..<4).map { _ in [dog, D(kind: .cat, colour: "blue", box: box, score: 1), D(kind: .ball, colour: "green", box: box, score: 1)] }
        XCTAssertEqual(WorldDetector.captionScore(clutter, kind: .dog, colour: "red"),
                       .init(classFound: true, colourFound: true, alone: false, perFrame: 3))
        // One object of the wrong colour in every frame: the class, not the colour, not alone.
        let wrong: [[D]] = (0..<3).map { _ in [D(kind: .dog, colour: "blue", box: box, score: 1)] }
        XCTAssertEqual(WorldDetector.captionScore(wrong, kind: .dog, colour: "red"),
                       .init(classFound: true, colourFound: false, alone: false, perFrame: 1))
        // At least half the frames (2 of 3) is enough; fewer (1 of 3) is not.
        XCTAssertTrue(WorldDetector.captionScore([[dog], [dog], []], kind: .dog, colour: "red").alone)
        XCTAssertFalse(WorldDetector.captionScore([[dog], [], []], kind: .dog, colour: "red").classFound)
    }

    func testCaptionsNameObjectsWithoutSpatialWords() {
        var templates = Set<String>()
        for seed in 0..<400 {
            let scene = World.randomScene(seed: UInt64(seed))
            let caption = Captions.caption(scene, seed: UInt64(seed))
            XCTAssertEqual(caption, Captions.caption(scene, seed: UInt64(seed)), "deterministic")
            let lower = " " + caption.lowercased() + " "
            for word in Captions.forbidden { XCTAssertFalse(lower.contains(word), "\"\(caption)\" contains \"\(word)\"") }
            for object in scene.objects { XCTAssertTrue(lower.contains(object.kind.rawValue), "\"\(caption)\" names no \(object.kind)") }
            templates.insert(String(caption.prefix(12)))
        }
        XCTAssertGreaterThan(templates.count, 6, "several phrasings, the benchmark's among them")
        XCTAssertTrue(templates.contains("A realistic "))
    }

    func testDatasetExportIsShardedAndResumes() throws {
        let temp = try TempDir()
        let arguments = ["world", "dataset", "--count", "5", "--shard-size", "2", "--frames", "3", "--size", "32", "-o", temp.file("d")]
        let first = try lvd(arguments)
        XCTAssertEqual(first.status, 0, first.output)
        for shard in ["00000", "00001", "00002"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: temp.file("d/videos-\(shard).npy")))
        }
        let last = try Data(contentsOf: URL(fileURLWithPath: temp.file("d/videos-00002.npy")))
        XCTAssertEqual(last.count, 128 + 1 * 3 * 32 * 32 * 3, "the last shard holds the one remaining clip")
        let meta = try XCTUnwrap(try JSONValue.parse(String(contentsOfFile: temp.file("d/meta-00001.json"), encoding: .utf8)).arrayValue)
        XCTAssertEqual(meta.count, 2)
        XCTAssertEqual(meta[0].objectValue?["seed"], .number(2))
        XCTAssertNotNil(meta[0].objectValue?["caption"]?.stringValue)
        // A rerun keeps finished shards; a deleted one is made again, identical.
        let original = try Data(contentsOf: URL(fileURLWithPath: temp.file("d/videos-00001.npy")))
        try FileManager.default.removeItem(atPath: temp.file("d/meta-00001.json"))
        let before = try FileManager.default.attributesOfItem(atPath: temp.file("d/videos-00000.npy"))[.modificationDate] as? Date
        XCTAssertEqual(try lvd(arguments).status, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: temp.file("d/videos-00001.npy"))), original)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: temp.file("d/videos-00000.npy"))[.modificationDate] as? Date, before)
        // Another export into the same folder is refused.
        let other = try lvd(["world", "dataset", "--count", "9", "-o", temp.file("d")])
        XCTAssertEqual(other.status, 1)
        XCTAssertTrue(other.stderr.contains("describes another export"), other.stderr)
    }

    func testDatasetSpriteSizes() throws {
        let temp = try TempDir()
        /// Heights in pixels of the boxes not cut by the top or bottom edge.
        func heights(_ range: (Int, Int)) throws -> [Double] {
            let folder = temp.file("d\(range.0)")
            let result = try lvd(["world", "dataset", "--count", "40", "--max-objects", "1", "--min-sprite", String(range.0),
                                  "--max-sprite", String(range.1), "-o", folder])
            XCTAssertEqual(result.status, 0, result.output)
            let meta = try XCTUnwrap(try JSONValue.parse(String(contentsOfFile: folder + "/meta-00000.json", encoding: .utf8)).arrayValue)
            return meta.flatMap { row in (row.objectValue?["objects"]?.arrayValue ?? []).flatMap { object in
                (object.objectValue?["boxes"]?.arrayValue ?? []).compactMap { box -> Double? in
                    guard let b = box.arrayValue?.compactMap(\.numberValue), b.count == 4, b[1] > 0, b[3] < 1 else { return nil }
                    return (b[3] - b[1]) * 64
                }
            } }
        }
        // The same seeds draw the same scenes, only the sprites' sizes differ.
        let large = try heights((20, 28)), small = try heights((10, 12))
        XCTAssertFalse(large.isEmpty || small.isEmpty)
        let mean = { (v: [Double]) in v.reduce(0, +) / Double(v.count) }
        XCTAssertGreaterThan(mean(large), 1.8 * mean(small), "\(mean(large)) vs \(mean(small))")
        XCTAssertLessThanOrEqual(large.max()!, 28 + 1.5)
        XCTAssertLessThanOrEqual(small.max()!, 12 + 1.5)
        let bad = try lvd(["world", "dataset", "--count", "1", "--min-sprite", "30", "--max-sprite", "20", "-o", temp.file("e")])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--min-sprite"), bad.stderr)
    }
}
