import Foundation
import LVDFormats
import LVDModels
import LVDRuntime
import XCTest

/// UNet3DConditionModel against diffusers on a tiny random model (fp16 weights): the noise
/// prediction, the cross-attention probabilities at two keys, and the gradient of a scalar of
/// those probabilities with respect to the latents. Made by
///     .venv/bin/python Scripts/make_fixtures.py Tests/LVDModelsTests/Fixtures
/// Tolerance 1e-4 absolute + 1e-3 relative (a deep network of random weights in fp32 on both sides).
final class UNetTests: XCTestCase {
    static let fixtures = TinyFixtures.folder

    func reference() throws -> JSONObject { try TinyFixtures.outputs("unet") }
    func floats(_ value: JSONValue) -> [Float] { TinyFixtures.floats(value) }
    func tensor(_ value: JSONValue) throws -> Tensor { try TinyFixtures.tensor(value) }

    func testForwardCaptureAndBackwardMatchDiffusers() throws {
        let unet = try UNet3DConditionModel.load(folder: Self.fixtures.appendingPathComponent("tiny-pipeline/unet").path)
        let reference = try reference()
        let latents = try tensor(reference["latents"]!).requiringGrad()
        let keys: [String: AttentionKey] = ["down.0.0": AttentionKey(.down, 0, 0), "up.1.0": AttentionKey(.up, 1, 0)]
        let output = try unet(latents, timestep: Float(reference["timestep"]!.numberValue!), context: tensor(reference["context"]!),
                              capture: Set(keys.values))
        XCTAssertEqual(output.sample.shape, [1, 4, 3, 4, 4])
        assertMatchesDiffusers(output.sample.toArray(), floats(reference["sample"]!.objectValue!["values"]!), "noise prediction")

        var energy = Tensor.scalar(0)
        for (name, key) in keys {
            let expected = reference["probabilities"]!.objectValue![name]!.objectValue!
            let captured = try XCTUnwrap(output.attention[key], "\(key) captured")
            XCTAssertEqual(captured.shape, expected["shape"]!.arrayValue!.compactMap(\.intValue), "\(key) shape (F, heads, hw, tokens)")
            assertMatchesDiffusers(captured.toArray(), floats(expected["values"]!), "attention probabilities \(key)")
            energy = try energy + (captured * Tensor(floats(reference["projections"]!.objectValue![name]!), shape: captured.shape)).sum()
        }
        XCTAssertEqual(Set(output.attention.keys), Set(keys.values), "only requested keys are captured")
        try energy.backward()
        assertMatchesDiffusers(try XCTUnwrap(latents.grad).toArray(), floats(reference["latents_grad"]!), "∂(Σ A·R)/∂latents")
    }

    func testRecomputedLayersGiveTheSameGradient() throws {
        let unet = try UNet3DConditionModel.load(folder: Self.fixtures.appendingPathComponent("tiny-pipeline/unet").path)
        let reference = try reference()
        let latents = try tensor(reference["latents"]!).requiringGrad()
        let keys: [String: AttentionKey] = ["down.0.0": AttentionKey(.down, 0, 0), "up.1.0": AttentionKey(.up, 1, 0)]
        let output = try unet(latents, timestep: Float(reference["timestep"]!.numberValue!), context: tensor(reference["context"]!),
                              capture: Set(keys.values), recompute: true)
        assertMatchesDiffusers(output.sample.toArray(), floats(reference["sample"]!.objectValue!["values"]!), "noise prediction")
        var energy = Tensor.scalar(0)
        for (name, key) in keys {
            let captured = try XCTUnwrap(output.attention[key])
            energy = try energy + (captured * Tensor(floats(reference["projections"]!.objectValue![name]!), shape: captured.shape)).sum()
        }
        try energy.backward()
        assertMatchesDiffusers(try XCTUnwrap(latents.grad).toArray(), floats(reference["latents_grad"]!), "∂(Σ A·R)/∂latents with recomputation")
    }

    func testBadInputsAreErrors() throws {
        let unet = try UNet3DConditionModel.load(folder: Self.fixtures.appendingPathComponent("tiny-pipeline/unet").path)
        let context = try Tensor.zeros([1, 8, 16])
        XCTAssertThrowsError(try unet(Tensor.zeros([1, 4, 4, 4]), timestep: 1, context: context)) {
            XCTAssertTrue("\($0)".hasPrefix("unet: needs latents (B, C, F, h, w)"), "\($0)")
        }
        XCTAssertThrowsError(try unet(Tensor.zeros([1, 4, 2, 3, 3]), timestep: 1, context: context)) {
            XCTAssertEqual("\($0)", "unet: latent size 3×3 must be divisible by 2")
        }
    }
}
