import CGIF
import Foundation
import LVDFormats
import LVDHost
import LVDStage1
import XCTest

/// The offline planner from the real binary, and the boxes GIF `lvd plan` writes, read back
/// with giflib's decoder as a viewer would.
final class PlannerOutputTests: XCTestCase {
    func testOfflinePlannerReadsTheBenchmarkGrammar() throws {
        let result = try lvd(["bench", "stage1", "--planner", "offline", "--json"])
        XCTAssertEqual(result.status, 0, String(result.output.suffix(2000)))
        let root = try XCTUnwrap(try JSONValue.parse(result.stdout).objectValue)
        XCTAssertEqual(root["successes"], .number(500), "every benchmark caption planned to satisfy its predicate")
    }

    func testOfflinePlannerFreeFormAndRefusal() throws {
        let ball = try OfflinePlanner.plan("A red ball moving from the left to the right.")
        XCTAssertEqual(ball.prompt, "A red ball moving from the left to the right")
        XCTAssertEqual(ball.keyframes.count, 6)
        XCTAssertEqual(ball.keyframes[0].first?.name, "red ball")
        let (start, end) = (ball.keyframes[0][0].box[0], ball.keyframes[5][0].box[0])
        XCTAssertLessThan(start + 200, end, "moves right")

        let pair = try OfflinePlanner.plan("a cat on the left and two dogs on the right in a garden")
        XCTAssertEqual(pair.background, "garden")
        XCTAssertEqual(pair.keyframes[0].map(\.name), ["cat", "dog", "dog"])
        XCTAssertLessThan(pair.keyframes[0][0].box[0] + pair.keyframes[0][0].box[2] / 2, 256, "the cat on the left")
        XCTAssertGreaterThan(pair.keyframes[0][1].box[0], 256, "the dogs on the right")

        let appearing = try OfflinePlanner.plan("a bird appears in the sky")
        XCTAssertEqual(appearing.keyframes.map(\.count), [0, 0, 0, 1, 1, 1])
        let leaving = try OfflinePlanner.plan("a car disappears only in the first half of the video")
        XCTAssertEqual(leaving.keyframes.map(\.count), [1, 1, 1, 0, 0, 0])

        let refused = try lvd(["plan", "a spaceship docks with a comet", "--planner", "offline"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("cannot plan \"a spaceship docks with a comet\": it names no object the planner knows"), refused.stderr)
    }

    func testPlanWritesALoopingBoxesGIF() throws {
        let temp = try TempDir()
        let result = try lvd(["plan", "a red ball moving from the left to the right", "-o", temp.file("layout.json")])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.stderr.contains("wrote \(temp.file("layout.gif"))"), result.stderr)
        let layout = try Layout.decode(json: String(contentsOfFile: temp.file("layout.json"), encoding: .utf8), source: "layout")

        var error: Int32 = 0
        let gif = try XCTUnwrap(DGifOpenFileName(temp.file("layout.gif"), &error), "giflib opens it")
        defer { DGifCloseFile(gif, &error) }
        XCTAssertEqual(DGifSlurp(gif), GIF_OK)
        XCTAssertEqual(gif.pointee.ImageCount, 16)
        XCTAssertEqual(gif.pointee.SWidth, 256)
        // Loop forever (NETSCAPE2.0, count 0) and 8 fps (delays 13/12 hundredths).
        let first = gif.pointee.SavedImages[0]
        var delays: [Int32] = []
        var loops = false
        for i in 0..<Int(gif.pointee.ImageCount) {
            var control = GraphicsControlBlock()
            XCTAssertEqual(DGifSavedExtensionToGCB(gif, Int32(i), &control), GIF_OK)
            delays.append(control.DelayTime)
        }
        for i in 0..<Int(first.ExtensionBlockCount) {
            let block = first.ExtensionBlocks[i]
            if block.Function == APPLICATION_EXT_FUNC_CODE, block.ByteCount == 11,
               String(decoding: UnsafeBufferPointer(start: block.Bytes, count: 11), as: UTF8.self) == "NETSCAPE2.0" { loops = true }
        }
        XCTAssertTrue(loops, "a NETSCAPE2.0 loop block")
        XCTAssertEqual(delays.reduce(0, +), 200, "16 frames at 8 fps = 2 s")
        // The ball's box outline is drawn in object colour 3 at its first position.
        let condition = Condition(layout, frames: 16)
        let box = condition.boxes[0][0]
        let (x, y) = (Int((box[0] * 256).rounded()), Int(((box[1] + box[3]) / 2 * 256).rounded()))
        XCTAssertEqual(first.RasterBits[y * 256 + x], 3, "left edge of the box at (\(x), \(y))")
        XCTAssertEqual(first.RasterBits[(y) * 256 + x + 10], 0, "inside the box is background")

        let none = try lvd(["plan", "a red ball", "--no-gif", "-o", temp.file("plain.json")])
        XCTAssertEqual(none.status, 0, none.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.file("plain.gif")))
        let unwritable = try lvd(["plan", "a red ball", "--gif", "/nonexistent/dir/x.gif"])
        XCTAssertEqual(unwritable.status, 1)
        XCTAssertTrue(unwritable.stderr.contains("cannot write /nonexistent/dir/x.gif"), unwritable.stderr)
    }
}
