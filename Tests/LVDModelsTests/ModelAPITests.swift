import Foundation
import LVDFormats
import LVDModels
import LVDRuntime
import LVDSDK
import XCTest

/// The `lvd.model/1` C table on the tiny fixture pipeline: every call through the table's
/// function pointers, results against diffusers' recorded outputs or the Swift models, and every
/// bad call answered with a status and a message that names the problem.
final class ModelAPITests: XCTestCase {
    static let fixtures = TinyFixtures.folder
    static let pipelinePath = fixtures.appendingPathComponent("tiny-pipeline").path
    let api = ModelAPI.table.pointee

    struct CallError: Error {
        var status: lvd_status
        var message: String
    }

    /// Runs one table call; throws its status and message on failure.
    func check(_ body: (UnsafeMutablePointer<lvd_error>) -> lvd_status) throws {
        var error = lvd_error()
        lvd_error_init(&error)
        let status = body(&error)
        guard status == LVD_OK else {
            throw CallError(status: status, message: withUnsafeBytes(of: error.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
        }
    }

    /// Asserts that a call fails with `status` and a message containing `needle`.
    func assertFails(_ status: Int32, _ needle: String, file: StaticString = #filePath, line: UInt = #line,
                     _ body: (UnsafeMutablePointer<lvd_error>) -> lvd_status) {
        do {
            try check(body)
            XCTFail("succeeded; expected \(needle)", file: file, line: line)
        } catch let error as CallError {
            XCTAssertEqual(error.status, status, error.message, file: file, line: line)
            XCTAssertTrue(error.message.contains(needle), "message \"\(error.message)\" lacks \"\(needle)\"", file: file, line: line)
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
    }

    func load() throws -> OpaquePointer {
        var pipeline: OpaquePointer?
        try check { api.pipeline_load(Self.pipelinePath, &pipeline, $0) }
        return try XCTUnwrap(pipeline)
    }

    func reference(_ part: String) throws -> JSONObject { try TinyFixtures.outputs(part) }
    func floats(_ value: JSONValue) -> [Float] { TinyFixtures.floats(value) }
    func tensor(_ value: JSONValue) throws -> Tensor { try TinyFixtures.tensor(value) }

    func string(_ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, UnsafeMutablePointer<lvd_error>) -> lvd_status) throws -> String {
        var text: UnsafeMutablePointer<CChar>?
        try check { body(&text, $0) }
        defer { api.free_string(text) }
        return String(cString: try XCTUnwrap(text))
    }

    func testUNetThroughTheTableMatchesDiffusersWithCaptureAndGradient() throws {
        let handlesBefore = TensorAPI.handles.count
        let pipeline = try load()
        let reference = try reference("unet")
        let latents = try tensor(reference["latents"]!).requiringGrad()
        let latentsHandle = TensorAPI.handles.insert(latents), contextHandle = TensorAPI.handles.insert(try tensor(reference["context"]!))
        // Both key spellings are accepted; results come back in the order asked.
        let names = ["(up,1,0,0)", "down,0,0"], fixtureNames = ["up.1.0", "down.0.0"]
        var noise: OpaquePointer?
        var captured = [OpaquePointer?](repeating: nil, count: 2)
        try names.map { strdup($0) }.withUnsafeBufferPointer { copies in
            defer { copies.forEach { free($0) } }
            let pointers = copies.map { UnsafePointer<CChar>($0) }
            try pointers.withUnsafeBufferPointer { keys in
                var call = lvd_unet_call(struct_size: UInt32(MemoryLayout<lvd_unet_call>.size), latents: latentsHandle,
                                         timestep: reference["timestep"]!.numberValue!, context: contextHandle,
                                         capture: keys.baseAddress, capture_count: 2, flags: UInt32(LVD_UNET_RECOMPUTE),
                                         grounding_boxes: nil, grounding_masks: nil, grounding_embeddings: nil)
                try check { api.unet(pipeline, &call, &noise, &captured, $0) }
            }
        }
        let sample = try TensorAPI.handles.resolve(noise)
        assertMatchesDiffusers(sample.toArray(), floats(reference["sample"]!.objectValue!["values"]!), "noise prediction through lvd.model/1")
        var energy = Tensor.scalar(0)
        for (index, name) in fixtureNames.enumerated() {
            let maps = try TensorAPI.handles.resolve(captured[index])
            let expected = reference["probabilities"]!.objectValue![name]!.objectValue!
            XCTAssertEqual(maps.shape, expected["shape"]!.arrayValue!.compactMap(\.intValue), name)
            assertMatchesDiffusers(maps.toArray(), floats(expected["values"]!), "attention \(name)")
            energy = try energy + (maps * Tensor(floats(reference["projections"]!.objectValue![name]!), shape: maps.shape)).sum()
        }
        try energy.backward()
        assertMatchesDiffusers(try XCTUnwrap(latents.grad).toArray(), floats(reference["latents_grad"]!), "gradient through captured maps")

        for handle in [noise, latentsHandle, contextHandle] + captured { try TensorAPI.handles.release(handle) }
        try check { api.pipeline_release(pipeline, $0) }
        XCTAssertEqual(TensorAPI.handles.count, handlesBefore, "no tensor handle leaked")
        assertFails(LVD_ERR_RELEASED_HANDLE, "pipeline handle") { error in
            var info: UnsafeMutablePointer<CChar>?
            return api.pipeline_info(pipeline, &info, error)
        }
    }

    func testInfoTokensAndTextEncoding() throws {
        let pipeline = try load()
        defer { _ = api.pipeline_release(pipeline, nil) }
        let info = try JSONValue.parse(string { api.pipeline_info(pipeline, $0, $1) }).objectValue!
        XCTAssertEqual(info["latent_channels"], .number(4))
        XCTAssertEqual(info["vae_scale_factor"], .number(2), "two VAE levels")
        XCTAssertEqual(info["latent_multiple"], .number(2), "two UNet levels")
        XCTAssertEqual(info["context_dim"], .number(32))
        XCTAssertEqual(info["gligen"], .bool(false))
        XCTAssertEqual(info["scheduler"], .string("DDIMScheduler"))
        // CrossAttnDownBlock3D (1 layer), the mid block, CrossAttnUpBlock3D (2 layers).
        let keys = info["attention_keys"]!.arrayValue!.map { $0.objectValue! }
        XCTAssertEqual(keys.map { $0["key"]!.stringValue! }, ["down,0,0", "mid,0,0", "up,1,0", "up,1,1"])
        XCTAssertEqual(keys.map { $0["downsample"]!.intValue! }, [1, 2, 1, 1])
        XCTAssertEqual(keys.map { $0["heads"]!.intValue! }, [2, 4, 2, 2], "channels / attention_head_dim 8")

        let text = try reference("text_encoder")
        let prompts = text["prompts"]!.arrayValue!.map { $0.stringValue! }
        let ids = text["ids"]!.arrayValue!.map { $0.arrayValue!.compactMap(\.intValue) }
        let tokens = try JSONValue.parse(string { api.tokenize(pipeline, prompts[0], $0, $1) }).objectValue!
        let tokenIDs = tokens["ids"]!.arrayValue!.compactMap(\.intValue), strings = tokens["tokens"]!.arrayValue!.compactMap(\.stringValue)
        XCTAssertEqual(tokenIDs, Array(ids[0].prefix(tokenIDs.count)), "ids as transformers gave them, without padding")
        XCTAssertEqual(strings.first, "<|startoftext|>")
        XCTAssertEqual(strings.last, "<|endoftext|>")
        XCTAssertTrue(strings.contains("ball</w>"), "\(strings)")

        var hidden: OpaquePointer?, pooled: OpaquePointer?
        let copies = prompts.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        try copies.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer { texts in
            try check { api.encode_text(pipeline, texts.baseAddress, 2, &hidden, &pooled, $0) }
        }
        assertMatchesDiffusers(try TensorAPI.handles.resolve(hidden).toArray(), floats(text["last_hidden_state"]!.objectValue!["values"]!), "hidden states")
        assertMatchesDiffusers(try TensorAPI.handles.resolve(pooled).toArray(), floats(text["pooled"]!.objectValue!["values"]!), "pooled outputs")
        try TensorAPI.handles.release(hidden)
        try TensorAPI.handles.release(pooled)
    }

    func testSchedulersNoiseAndVAE() throws {
        let pipeline = try load()
        defer { _ = api.pipeline_release(pipeline, nil) }
        // DPM-Solver++ from the DDIM configuration, as the reference samples (METHODS.md §3.2).
        var scheduler: OpaquePointer?
        try check { api.scheduler_create(pipeline, "DPMSolverMultistepScheduler", 40, &scheduler, $0) }
        defer { api.scheduler_destroy(scheduler) }
        var count: UInt32 = 0
        try check { api.scheduler_timesteps(scheduler, nil, 0, &count, $0) }
        XCTAssertEqual(count, 40)
        var timesteps = [Int64](repeating: 0, count: 40)
        try check { api.scheduler_timesteps(scheduler, &timesteps, 40, &count, $0) }
        XCTAssertEqual(Array(timesteps.prefix(3)), [999, 974, 949])
        XCTAssertEqual(timesteps[20], 500, "499.5 rounds to even")
        XCTAssertEqual(timesteps.last, 25)
        var alpha = 0.0
        try check { api.scheduler_alpha_cumprod(scheduler, 999, &alpha, $0) }
        XCTAssertEqual(alpha, 0.004660, accuracy: 5e-7)
        assertFails(LVD_ERR_INVALID_ARGUMENT, "timestep 1000 outside 0…999") { api.scheduler_alpha_cumprod(scheduler, 1000, &alpha, $0) }
        assertFails(LVD_ERR_INVALID_ARGUMENT, "capacity 3 < 40") { api.scheduler_timesteps(scheduler, &timesteps, 3, &count, $0) }

        // The folder's own class: DDIM, leading spacing with steps_offset 1.
        var ddim: OpaquePointer?
        try check { api.scheduler_create(pipeline, nil, 10, &ddim, $0) }
        defer { api.scheduler_destroy(ddim) }
        try check { api.scheduler_timesteps(ddim, &timesteps, 40, &count, $0) }
        XCTAssertEqual(Array(timesteps.prefix(Int(count))), [901, 801, 701, 601, 501, 401, 301, 201, 101, 1])

        // Seeded noise is the runtime's torch-compatible randn; steps go in order.
        var noise: OpaquePointer?
        try check { api.randn(3, 5, [1, 4, 2, 4, 4], &noise, $0) }
        let z = try TensorAPI.handles.resolve(noise)
        XCTAssertEqual(z.toArray(), try Noise.randn([1, 4, 2, 4, 4], seed: 3).toArray())
        var next: OpaquePointer?
        assertFails(LVD_ERR_INVALID_ARGUMENT, "step 1 out of order (expected 0 of 40)") { api.scheduler_step(scheduler, noise, 1, noise, &next, $0) }
        try check { api.scheduler_step(scheduler, noise, 0, noise, &next, $0) }
        let expected = try SchedulerConfiguration(json: JSONValue.parse(String(contentsOfFile: Self.pipelinePath + "/scheduler/scheduler_config.json", encoding: .utf8)).objectValue!,
                                                  className: "DPMSolverMultistepScheduler").makeScheduler(steps: 40).step(z, index: 0, sample: z)
        XCTAssertEqual(try TensorAPI.handles.resolve(next).toArray(), expected.toArray(), "the same step as the Swift scheduler")

        // VAE: (1, C, F, h, w) latents → u8 frames (F, H, W, 3), each frame as decoding it alone.
        var video: OpaquePointer?
        try check { api.vae_decode(pipeline, noise, &video, $0) }
        let frames = try TensorAPI.handles.resolve(video)
        XCTAssertEqual(frames.shape, [2, 8, 8, 3])
        XCTAssertEqual(frames.dtype, .u8)
        let vae = try AutoencoderKL.load(folder: Self.pipelinePath + "/vae")
        let second = try z.sliced(axis: 2, start: 1, end: 2).reshaped([1, 4, 4, 4])
        XCTAssertEqual(try frames.sliced(axis: 0, start: 1, end: 2).toArray(), try AutoencoderKL.frames(vae.decode(second)).toArray())

        // Encoding: the posterior mean, or a seeded sample of it.
        let images = TensorAPI.handles.insert(try Tensor((0..<(2 * 3 * 8 * 8)).map { Float($0 % 7) / 3.5 - 1 }, shape: [2, 3, 8, 8]))
        var mean: OpaquePointer?, sampled: OpaquePointer?, again: OpaquePointer?
        try check { api.vae_encode(pipeline, images, false, 0, &mean, $0) }
        try check { api.vae_encode(pipeline, images, true, 9, &sampled, $0) }
        try check { api.vae_encode(pipeline, images, true, 9, &again, $0) }
        let meanValues = try TensorAPI.handles.resolve(mean).toArray()
        XCTAssertEqual(try TensorAPI.handles.resolve(mean).shape, [2, 4, 4, 4])
        XCTAssertNotEqual(try TensorAPI.handles.resolve(sampled).toArray(), meanValues, "a sample is not the mean")
        XCTAssertEqual(try TensorAPI.handles.resolve(sampled).toArray(), try TensorAPI.handles.resolve(again).toArray(), "same seed, same sample")
        for handle in [noise, next, video, images, mean, sampled, again] { try TensorAPI.handles.release(handle) }
    }

    func testBadCallsAreClearErrors() throws {
        var pipeline: OpaquePointer?
        assertFails(LVD_ERR_NOT_FOUND, "/nonexistent: not a diffusers pipeline folder") { api.pipeline_load("/nonexistent", &pipeline, $0) }
        // A folder whose model_index names a class nobody knows.
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("lvd-model-api-\(getpid())")
        try? FileManager.default.removeItem(at: temp)
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: temp) }
        try #"{"_class_name": "X", "unet": ["diffusers", "UNet4D"]}"#.write(to: temp.appendingPathComponent("model_index.json"), atomically: true, encoding: .utf8)
        assertFails(LVD_ERR_INVALID_ARGUMENT, "unet: unknown class 'UNet4D'") { api.pipeline_load(temp.path, &pipeline, $0) }

        let loaded = try load()
        defer { _ = api.pipeline_release(loaded, nil) }
        var scheduler: OpaquePointer?
        assertFails(LVD_ERR_INVALID_ARGUMENT, "unknown scheduler 'Euler'") { api.scheduler_create(loaded, "Euler", 10, &scheduler, $0) }
        assertFails(LVD_ERR_INVALID_ARGUMENT, "steps 0 must be in 1…1000") { api.scheduler_create(loaded, nil, 0, &scheduler, $0) }

        let latents = TensorAPI.handles.insert(try Tensor.zeros([1, 4, 2, 4, 4]))
        let context = TensorAPI.handles.insert(try Tensor.zeros([1, 8, 32]))
        defer { [latents, context].forEach { try? TensorAPI.handles.release($0) } }
        var produced: [OpaquePointer?] = []
        func unet(_ keys: [String], grounding: OpaquePointer? = nil, size: Int = MemoryLayout<lvd_unet_call>.size,
                  _ error: UnsafeMutablePointer<lvd_error>) -> lvd_status {
            let copies = keys.map { strdup($0) }
            defer { copies.forEach { free($0) } }
            var noise: OpaquePointer?
            var captured = [OpaquePointer?](repeating: nil, count: keys.count)
            return copies.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer { names in
                var call = lvd_unet_call(struct_size: UInt32(size), latents: latents, timestep: 10, context: context,
                                         capture: names.baseAddress, capture_count: UInt32(keys.count), flags: 0,
                                         grounding_boxes: grounding, grounding_masks: grounding, grounding_embeddings: grounding)
                let status = api.unet(loaded, &call, &noise, &captured, error)
                produced += [noise] + captured
                return status
            }
        }
        assertFails(LVD_ERR_INVALID_ARGUMENT, "no cross-attention layer down,1,0 to capture (this UNet has down,0,0 mid,0,0 up,1,0 up,1,1)") { unet(["down,1,0"], $0) }
        assertFails(LVD_ERR_INVALID_ARGUMENT, "capture[0] \"left,0,0\" is not a key") { unet(["left,0,0"], $0) }
        assertFails(LVD_ERR_INVALID_ARGUMENT, "has no GLIGEN adapters") { unet([], grounding: latents, $0) }
        assertFails(LVD_ERR_ABI, "struct_size 8") { unet([], size: 8, $0) }
        XCTAssertTrue(produced.allSatisfy { $0 == nil }, "a failed call hands out nothing")
        produced = []
        try check { unet(["mid,0,0"], $0) }
        XCTAssertEqual(produced.count, 2)
        XCTAssertEqual(try TensorAPI.handles.resolve(produced[1]).shape, [2, 4, 4, 8], "(B·F, heads, 2×2 cells, tokens)")
        for handle in produced { try TensorAPI.handles.release(handle) }
    }
}
