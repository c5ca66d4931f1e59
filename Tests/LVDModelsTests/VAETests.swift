import Foundation
import LVDFormats
import LVDModels
import LVDRuntime
import XCTest

/// AutoencoderKL decode and encode against diffusers on a tiny random VAE (fp16 weights), made by
///     .venv/bin/python Scripts/make_fixtures.py Tests/LVDModelsTests/Fixtures
/// Tolerance: 1e-4 absolute + 1e-4 relative; uint8 frames may differ by one level where a value
/// sits on a truncation boundary.
final class VAETests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func reference() throws -> JSONObject {
        try JSONValue.parse(bytes: [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent("tiny-outputs.json")))).objectValue!["vae"]!.objectValue!
    }

    func tensor(_ value: JSONValue) throws -> Tensor {
        let object = value.objectValue!
        return try Tensor(object["values"]!.arrayValue!.compactMap { $0.numberValue.map(Float.init) },
                          shape: object["shape"]!.arrayValue!.compactMap(\.intValue))
    }

    func assertClose(_ ours: Tensor, _ theirs: Tensor, tolerance: Float = 1e-4, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.shape, theirs.shape, label, file: file, line: line)
        let worst = zip(ours.toArray(), theirs.toArray()).map { Swift.abs($0 - $1) - tolerance * Swift.abs($1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, tolerance, label, file: file, line: line)
    }

    func testDecodeEncodeAndFramesMatchDiffusers() throws {
        let vae = try AutoencoderKL.load(folder: Self.fixtures.appendingPathComponent("tiny-pipeline/vae").path)
        let reference = try reference()
        try GradMode.withoutGrad {
            let decoded = try vae.decode(tensor(reference["latents"]!))
            assertClose(decoded, try tensor(reference["decoded"]!), "decode")
            assertClose(try vae.encode(tensor(reference["image"]!)), try tensor(reference["encoded"]!), "encode (mean × scaling factor)")
            let frames = try AutoencoderKL.frames(decoded)
            XCTAssertEqual(frames.dtype, .u8)
            XCTAssertEqual(frames.shape, [2, 16, 16, 3])
            let expected = try tensor(reference["frames"]!).toArray()
            let differences = zip(frames.toArray(), expected).map { Swift.abs($0 - $1) }
            XCTAssertLessThanOrEqual(differences.max() ?? 9, 1, "truncation boundaries at most one level apart")
            XCTAssertGreaterThan(Float(differences.filter { $0 == 0 }.count) / Float(differences.count), 0.99)
        }
    }

    func testDecodingIsDifferentiableWithRespectToLatents() throws {
        // Guidance-style use: a scalar of the decoded image, differentiated back to the latents.
        let vae = try AutoencoderKL.load(folder: Self.fixtures.appendingPathComponent("tiny-pipeline/vae").path)
        let latents = try tensor(try reference()["latents"]!).requiringGrad()
        try vae.decode(latents).mean().backward()
        let grad = try XCTUnwrap(latents.grad)
        XCTAssertEqual(grad.shape, latents.shape)
        XCTAssertTrue(grad.toArray().allSatisfy(\.isFinite))
        XCTAssertGreaterThan(grad.toArray().map { Swift.abs($0) }.max()!, 0)
    }
}
