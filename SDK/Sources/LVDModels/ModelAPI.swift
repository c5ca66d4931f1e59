import Foundation
import LVDFormats
import LVDRuntime
import LVDSDK

/// The `lvd.model/1` service table (SDK/include/lvd/model.h), backed by this runtime: pipelines
/// and schedulers behind opaque handles, tensors through `lvd.tensor/1`'s handle table.
public enum ModelAPI {
    public static let pipelines = HandleTable<Pipeline>(kind: "pipeline")
    static let schedulers = HandleTable<SchedulerRun>(kind: "scheduler")

    /// A scheduler and where its run stands (steps must come in order).
    final class SchedulerRun {
        let scheduler: Scheduler
        let alphasCumprod: [Double]
        var nextIndex = 0
        let lock = NSLock()
        init(_ scheduler: Scheduler, alphasCumprod: [Double]) {
            self.scheduler = scheduler
            self.alphasCumprod = alphasCumprod
        }
    }

    public static let table: UnsafePointer<lvd_model_api> = {
        let table = UnsafeMutablePointer<lvd_model_api>.allocate(capacity: 1)
        table.initialize(to: lvd_model_api(
            struct_size: UInt32(MemoryLayout<lvd_model_api>.size),
            pipeline_load: { folder, out, err in
                guard let folder, let out else { return report(err, LVD_ERR_INVALID_ARGUMENT, "pipeline_load: NULL folder or out") }
                let path = String(cString: folder)
                guard FileManager.default.fileExists(atPath: path + "/model_index.json") else {
                    return report(err, LVD_ERR_NOT_FOUND, "\(path): not a diffusers pipeline folder (no model_index.json)")
                }
                do {
                    out.pointee = pipelines.insert(try Pipeline(path: path))
                    return LVD_OK
                } catch {
                    return report(err, LVD_ERR_INVALID_ARGUMENT, "\(error)")
                }
            },
            pipeline_retain: { pipeline, err in
                do { try pipelines.retain(pipeline); return LVD_OK }
                catch { return report(err, LVD_ERR_RELEASED_HANDLE, "pipeline_retain: \(error)") }
            },
            pipeline_release: { pipeline, err in
                do { try pipelines.release(pipeline); return LVD_OK }
                catch { return report(err, LVD_ERR_RELEASED_HANDLE, "pipeline_release: \(error)") }
            },
            pipeline_info: { pipeline, out, err in
                guard let out else { return report(err, LVD_ERR_INVALID_ARGUMENT, "pipeline_info: out is NULL") }
                return call(err, "pipeline_info") { () throws -> lvd_status in
                    out.pointee = strdup(JSONValue.object(try pipelines.resolve(pipeline).info).serialized())
                    return LVD_OK
                }
            },
            free_string: { free($0) },
            tokenize: { pipeline, text, out, err in
                guard let text, let out else { return report(err, LVD_ERR_INVALID_ARGUMENT, "tokenize: NULL text or out") }
                return call(err, "tokenize") { () throws -> lvd_status in
                    let model = try pipelines.resolve(pipeline)
                    let (ids, strings) = model.tokens(try utf8(text, "text"))
                    let object = JSONObject([
                        "ids": .array(ids.map { .number(Double($0)) }),
                        "tokens": .array(strings.map { .string($0) }),
                    ])
                    out.pointee = strdup(JSONValue.object(object).serialized())
                    return LVD_OK
                }
            },
            encode_text: { pipeline, texts, count, hidden, pooled, err in
                guard count > 0, let texts else { return report(err, LVD_ERR_INVALID_ARGUMENT, "encode_text: needs at least one text") }
                return call(err, "encode_text") { () throws -> lvd_status in
                    let model = try pipelines.resolve(pipeline)
                    var strings: [String] = []
                    for index in 0..<Int(count) {
                        guard let text = texts[index] else { throw ABIFailure(LVD_ERR_INVALID_ARGUMENT, "texts[\(index)] is NULL") }
                        strings.append(try utf8(text, "texts[\(index)]"))
                    }
                    let output = try model.encode(strings)
                    hidden?.pointee = TensorAPI.handles.insert(output.lastHiddenState)
                    pooled?.pointee = TensorAPI.handles.insert(output.pooled)
                    return LVD_OK
                }
            },
            unet: { pipeline, request, noise, captured, err in
                guard let request, let noise else { return report(err, LVD_ERR_INVALID_ARGUMENT, "unet: NULL call or noise") }
                guard request.pointee.struct_size >= UInt32(MemoryLayout<lvd_unet_call>.size) else {
                    return report(err, LVD_ERR_ABI, "unet: lvd_unet_call.struct_size \(request.pointee.struct_size) < \(MemoryLayout<lvd_unet_call>.size)")
                }
                return call(err, "unet") { () throws -> lvd_status in
                    let model = try pipelines.resolve(pipeline)
                    let call = request.pointee
                    let latents = try TensorAPI.handles.resolve(call.latents)
                    let context = try TensorAPI.handles.resolve(call.context)
                    var keys: [AttentionKey] = []
                    if call.capture_count > 0 {
                        guard let names = call.capture, captured != nil else {
                            throw ABIFailure(LVD_ERR_INVALID_ARGUMENT, "capture_count \(call.capture_count) with a NULL capture list or captured array")
                        }
                        for index in 0..<Int(call.capture_count) {
                            let name = names[index].map { String(cString: $0) } ?? ""
                            guard let key = AttentionKey(name: name) else {
                                throw ABIFailure(LVD_ERR_INVALID_ARGUMENT, "capture[\(index)] \"\(name)\" is not a key like \"down,1,0\"")
                            }
                            keys.append(key)
                        }
                    }
                    let groundingHandles = [call.grounding_boxes, call.grounding_masks, call.grounding_embeddings]
                    var grounding: Grounding?
                    if groundingHandles.contains(where: { $0 != nil }) {
                        guard groundingHandles.allSatisfy({ $0 != nil }) else {
                            throw ABIFailure(LVD_ERR_INVALID_ARGUMENT, "grounding needs boxes, masks and embeddings together")
                        }
                        guard model.hasGLIGEN else {
                            throw ABIFailure(LVD_ERR_INVALID_ARGUMENT, "\(model.folder.path) has no GLIGEN adapters (its UNet's attention_type is not \"gated\"); grounding refused")
                        }
                        grounding = Grounding(boxes: try TensorAPI.handles.resolve(call.grounding_boxes),
                                              masks: try TensorAPI.handles.resolve(call.grounding_masks),
                                              embeddings: try TensorAPI.handles.resolve(call.grounding_embeddings))
                    }
                    let output = try model.unet(latents, timestep: Float(call.timestep), context: context,
                                                capture: Set(keys), grounding: grounding,
                                                recompute: call.flags & UInt32(LVD_UNET_RECOMPUTE) != 0)
                    noise.pointee = TensorAPI.handles.insert(output.sample)
                    for (index, key) in keys.enumerated() { captured![index] = TensorAPI.handles.insert(output.attention[key]!) }
                    return LVD_OK
                }
            },
            vae_decode: { pipeline, latents, video, err in
                guard let video else { return report(err, LVD_ERR_INVALID_ARGUMENT, "vae_decode: video is NULL") }
                return call(err, "vae_decode") { () throws -> lvd_status in
                    let model = try pipelines.resolve(pipeline)
                    video.pointee = TensorAPI.handles.insert(try model.decodeVideo(TensorAPI.handles.resolve(latents)))
                    return LVD_OK
                }
            },
            vae_encode: { pipeline, images, sample, seed, out, err in
                guard let out else { return report(err, LVD_ERR_INVALID_ARGUMENT, "vae_encode: out is NULL") }
                return call(err, "vae_encode") { () throws -> lvd_status in
                    let model = try pipelines.resolve(pipeline)
                    let pixels = try TensorAPI.handles.resolve(images)
                    let factor = model.vaeScaleFactor
                    guard pixels.rank == 4, pixels.shape[1] == 3, pixels.shape[2] % factor == 0, pixels.shape[3] % factor == 0 else {
                        throw ABIFailure(LVD_ERR_INVALID_ARGUMENT, "needs images (N, 3, H, W) with H and W multiples of \(factor), got \(pixels.shape)")
                    }
                    let shape = [pixels.shape[0], model.vae.configuration.latentChannels, pixels.shape[2] / factor, pixels.shape[3] / factor]
                    let noise = sample ? try Noise.randn(shape, seed: seed) : nil
                    out.pointee = TensorAPI.handles.insert(try model.vae.encode(pixels, noise: noise))
                    return LVD_OK
                }
            },
            scheduler_create: { pipeline, className, steps, out, err in
                guard let out else { return report(err, LVD_ERR_INVALID_ARGUMENT, "scheduler_create: out is NULL") }
                return call(err, "scheduler_create") { () throws -> lvd_status in
                    let configuration = try pipelines.resolve(pipeline).schedulerConfiguration(className: className.map { String(cString: $0) })
                    let scheduler = try configuration.makeScheduler(steps: Int(steps))
                    out.pointee = schedulers.insert(SchedulerRun(scheduler, alphasCumprod: configuration.alphasCumprod))
                    return LVD_OK
                }
            },
            scheduler_timesteps: { scheduler, timesteps, capacity, count, err in
                call(err, "scheduler_timesteps") { () throws -> lvd_status in
                    let values = try schedulers.resolve(scheduler).scheduler.timesteps
                    count?.pointee = UInt32(values.count)
                    guard capacity > 0 else { return LVD_OK }
                    guard let timesteps, Int(capacity) >= values.count else {
                        throw ABIFailure(LVD_ERR_INVALID_ARGUMENT, "capacity \(capacity) < \(values.count) timesteps")
                    }
                    for (index, value) in values.enumerated() { timesteps[index] = Int64(value) }
                    return LVD_OK
                }
            },
            scheduler_alpha_cumprod: { scheduler, timestep, out, err in
                call(err, "scheduler_alpha_cumprod") { () throws -> lvd_status in
                    let alphas = try schedulers.resolve(scheduler).alphasCumprod
                    guard timestep >= 0, Int(timestep) < alphas.count else {
                        throw ABIFailure(LVD_ERR_INVALID_ARGUMENT, "timestep \(timestep) outside 0…\(alphas.count - 1)")
                    }
                    out?.pointee = alphas[Int(timestep)]
                    return LVD_OK
                }
            },
            scheduler_step: { scheduler, output, index, sample, out, err in
                guard let out else { return report(err, LVD_ERR_INVALID_ARGUMENT, "scheduler_step: out is NULL") }
                return call(err, "scheduler_step") { () throws -> lvd_status in
                    let run = try schedulers.resolve(scheduler)
                    let prediction = try TensorAPI.handles.resolve(output), current = try TensorAPI.handles.resolve(sample)
                    run.lock.lock()
                    defer { run.lock.unlock() }
                    guard Int(index) == run.nextIndex, Int(index) < run.scheduler.timesteps.count else {
                        throw ABIFailure(LVD_ERR_INVALID_ARGUMENT, "step \(index) out of order (expected \(run.nextIndex) of \(run.scheduler.timesteps.count))")
                    }
                    guard prediction.shape == current.shape else {
                        throw ABIFailure(LVD_ERR_INVALID_ARGUMENT, "model output \(prediction.shape) and sample \(current.shape) differ in shape")
                    }
                    let next = try GradMode.withoutGrad { () throws(TensorError) in try run.scheduler.step(prediction, index: Int(index), sample: current) }
                    run.nextIndex += 1
                    out.pointee = TensorAPI.handles.insert(next)
                    return LVD_OK
                }
            },
            scheduler_destroy: { scheduler in
                guard let scheduler else { return }
                try? schedulers.release(scheduler)
            },
            randn: { seed, rank, shape, out, err in
                guard let out else { return report(err, LVD_ERR_INVALID_ARGUMENT, "randn: out is NULL") }
                guard rank <= UInt32(Tensor.maxRank), rank == 0 || shape != nil else {
                    return report(err, LVD_ERR_INVALID_ARGUMENT, "randn: rank \(rank) needs a shape of at most \(Tensor.maxRank) extents")
                }
                return call(err, "randn") { () throws -> lvd_status in
                    let extents = (0..<Int(rank)).map { Int(shape![$0]) }
                    guard extents.allSatisfy({ $0 >= 0 }) else { throw ABIFailure(LVD_ERR_INVALID_ARGUMENT, "negative extent in \(extents)") }
                    out.pointee = TensorAPI.handles.insert(try Noise.randn(extents, seed: seed))
                    return LVD_OK
                }
            }
        ))
        return UnsafePointer(table)
    }()
}

/// A failure with the ABI status it maps to.
struct ABIFailure: Error, CustomStringConvertible {
    let status: lvd_status
    let description: String
    init(_ status: Int32, _ description: String) {
        self.status = status
        self.description = description
    }
}

/// Runs `body`, turning whatever it throws into a status and a message prefixed by `what`.
private func call(_ destination: UnsafeMutablePointer<lvd_error>?, _ what: String, _ body: () throws -> lvd_status) -> lvd_status {
    do {
        return try body()
    } catch let failure as ABIFailure {
        return report(destination, failure.status, "\(what): \(failure.description)")
    } catch let failure as HandleError {
        return report(destination, LVD_ERR_RELEASED_HANDLE, "\(what): \(failure)")
    } catch TensorError.outOfMemory {
        return report(destination, LVD_ERR_OUT_OF_MEMORY, "\(what): out of memory")
    } catch {
        return report(destination, LVD_ERR_INVALID_ARGUMENT, "\(what): \(error)")
    }
}

private func utf8(_ text: UnsafePointer<CChar>, _ name: String) throws -> String {
    guard let string = String(validatingCString: text) else { throw ABIFailure(LVD_ERR_INVALID_ARGUMENT, "\(name) is not valid UTF-8") }
    return string
}

@discardableResult
private func report(_ error: UnsafeMutablePointer<lvd_error>?, _ status: Int32, _ message: String) -> lvd_status {
    lvd_error_set_message(error, status, message)
}
