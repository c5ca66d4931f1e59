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
    }
}
