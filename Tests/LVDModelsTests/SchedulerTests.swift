import Foundation
import LVDFormats
import LVDModels
import LVDRuntime
import XCTest

/// Parity with diffusers' DDIMScheduler and DPMSolverMultistepScheduler built by from_config from
/// the real scheduler_config.json (Fixtures/schedulers.json, made by
///     .venv/bin/python Scripts/make_scheduler_fixtures.py Tests/LVDModelsTests/Fixtures/configs/lvd-zs/scheduler/scheduler_config.json Tests/LVDModelsTests/Fixtures/schedulers.json)
/// Timesteps equal; every step's sample within 1e-5 (relative, plus 1e-5 absolute).
final class SchedulerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func load() throws -> (config: JSONObject, fixture: JSONObject) {
        let config = try JSONValue.parse(bytes: [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent("configs/lvd-zs/scheduler/scheduler_config.json")))).objectValue!
        let fixture = try JSONValue.parse(bytes: [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent("schedulers.json")))).objectValue!
        return (config, fixture)
    }

    func testStepsMatchDiffusers() throws {
        let (base, fixture) = try load()
        let cases = fixture["cases"]!.arrayValue!.compactMap(\.objectValue)
        XCTAssertEqual(cases.count, 14)
        for entry in cases {
            var json = base
            for (key, value) in entry["overrides"]!.objectValue! { json[key] = value }
            let className = entry["class"]!.stringValue!
            let steps = entry["steps"]!.intValue!
            let label = "\(className) \(entry["overrides"]!.serialized()) \(steps) steps"
            let scheduler = try SchedulerConfiguration(json: json, className: className).makeScheduler(steps: steps)
            XCTAssertEqual(scheduler.timesteps, entry["timesteps"]!.arrayValue!.compactMap(\.intValue), label)
            func floats(_ value: JSONValue) -> [Float] { value.arrayValue!.compactMap { $0.numberValue.map(Float.init) } }
            var sample = try Tensor(floats(entry["start"]!), shape: [1, 2, 3])
            let outputs = entry["model_outputs"]!.arrayValue!, expected = entry["samples"]!.arrayValue!
            for index in scheduler.timesteps.indices {
                sample = try scheduler.step(Tensor(floats(outputs[index]), shape: [1, 2, 3]), index: index, sample: sample)
                for (ours, theirs) in zip(sample.toArray(), floats(expected[index])) {
                    XCTAssertLessThanOrEqual(Swift.abs(ours - theirs), 1e-5 + 1e-5 * Swift.abs(theirs), "\(label), step \(index)")
                }
            }
        }
    }

    func testNoiseScheduleMatchesTheSpecAndDiffusers() throws {
        let (base, fixture) = try load()
        let alphas = try SchedulerConfiguration(json: base).alphasCumprod
        for (key, value) in fixture["alphas_cumprod"]!.objectValue! {
            XCTAssertEqual(alphas[Int(key)!], value.numberValue!, accuracy: 2e-6, "ᾱ_\(key)")
        }
        // METHODS.md §3.1 reference values.
        XCTAssertEqual(alphas[999], 0.004660, accuracy: 5e-7)
        XCTAssertEqual(((1 - alphas[999]) / alphas[999]).squareRoot(), 14.614655, accuracy: 5e-5)
        XCTAssertEqual(alphas[774], 0.046106, accuracy: 5e-7)
        // §3.2: DPM-Solver++ built from the DDIM config, 40 steps.
        let dpm = try SchedulerConfiguration(json: base, className: "DPMSolverMultistepScheduler").makeScheduler(steps: 40)
        XCTAssertEqual(dpm.timesteps, [999, 974, 949, 924, 899, 874, 849, 824, 799, 774, 749, 724, 699, 674, 649, 624, 599, 574, 549, 524,
                                       500, 475, 450, 425, 400, 375, 350, 325, 300, 275, 250, 225, 200, 175, 150, 125, 100, 75, 50, 25])
    }

    func testBadConfigurationsNameTheKey() throws {
        let (base, _) = try load()
        func error(_ change: (inout JSONObject) -> Void, className: String? = nil) -> String {
            var json = base
            change(&json)
            do { _ = try SchedulerConfiguration(json: json, className: className); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(error { $0["_class_name"] = .string("EulerScheduler") },
                       "scheduler_config.json: _class_name: unknown scheduler 'EulerScheduler' (known: DDIMScheduler, DPMSolverMultistepScheduler)")
        XCTAssertEqual(error { $0["beta_schedule"] = .string("cubic") },
                       "scheduler_config.json: beta_schedule: must be one of linear, scaled_linear, squaredcos_cap_v2, got \"cubic\"")
        XCTAssertEqual(error { $0["thresholding"] = .bool(true) }, "scheduler_config.json: thresholding: dynamic thresholding is not supported")
        XCTAssertEqual(error { $0["beta_end"] = .number(0.0001) }, "scheduler_config.json: beta_start: needs 0 < beta_start (0.00085) < beta_end (0.0001) < 1")
        XCTAssertEqual(error({ $0["solver_order"] = .number(3) }, className: "DPMSolverMultistepScheduler"),
                       "scheduler_config.json: solver_order: must be 1 or 2, got 3.0")
        XCTAssertThrowsError(try SchedulerConfiguration(json: base).makeScheduler(steps: 0)) {
            XCTAssertEqual("\($0)", "scheduler: steps 0 must be in 1…1000")
        }
    }
}
