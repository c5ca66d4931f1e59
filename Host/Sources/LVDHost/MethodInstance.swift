import LVDFormats
import LVDRuntime
import LVDSDK

/// What to generate; mirrors `lvd_method_request`.
public struct MethodRequest {
    public var prompt: String
    public var negativePrompt: String?
    public var layoutJSON: String?
    public var seed: UInt64
    public var frames: Int
    public var width: Int
    public var height: Int
    public var steps: Int
    public var pipeline: OpaquePointer?

    public init(prompt: String, negativePrompt: String? = nil, layoutJSON: String? = nil, seed: UInt64,
                frames: Int, width: Int, height: Int, steps: Int, pipeline: OpaquePointer? = nil) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.layoutJSON = layoutJSON
        self.seed = seed
        self.frames = frames
        self.width = width
        self.height = height
        self.steps = steps
        self.pipeline = pipeline
    }
}

/// One instance of a method plugin, created with resolved params; destroyed with this object.
public final class MethodInstance {
    public let plugin: LoadedPlugin
    private let table: UnsafePointer<lvd_method>
    private let instance: OpaquePointer

    public init(plugin: LoadedPlugin, params: JSONObject, host: HostServices = .shared) throws(PluginCallError) {
        precondition(plugin.manifest.kind == .method, "MethodInstance needs a method plugin")
        self.plugin = plugin
        let table = plugin.interface.assumingMemoryBound(to: lvd_method.self)
        self.table = table
        instance = try createInstance(plugin, params: params) { table.pointee.create(table, host.table, $0, $1, $2) }
    }

    /// Generates a video: a u8 tensor of shape (frames, height, width, 3), checked.
    public func generate(_ request: MethodRequest) throws(PluginCallError) -> Tensor {
        var error = lvd_error.make()
        var video: OpaquePointer?
        let status = request.prompt.withCString { prompt in
            withOptionalCString(request.negativePrompt) { negative in
                withOptionalCString(request.layoutJSON) { layout in
                    var raw = lvd_method_request(
                        struct_size: UInt32(MemoryLayout<lvd_method_request>.size), prompt: prompt,
                        negative_prompt: negative, layout_json: layout, seed: request.seed,
                        frames: UInt32(request.frames), width: UInt32(request.width), height: UInt32(request.height),
                        steps: UInt32(request.steps), pipeline: request.pipeline)
                    return table.pointee.generate(instance, &raw, &video, &error)
                }
            }
        }
        guard status == LVD_OK else { throw PluginCallError(plugin, status, error) }
        func broken(_ message: String) -> PluginCallError {
            PluginCallError(pluginID: plugin.manifest.id, kind: .method, status: LVD_ERR_INTERNAL, message: message)
        }
        let tensor: Tensor
        do { tensor = try TensorAPI.handles.resolve(video) } catch { throw broken("returned no valid video tensor: \(error)") }
        defer { try? TensorAPI.handles.release(video) }
        let expected = [request.frames, request.height, request.width, 3]
        guard tensor.dtype == .u8, tensor.shape == expected else {
            throw broken("returned a \(tensor.dtype) tensor of shape \(tensor.shape), expected u8 \(expected)")
        }
        return tensor
    }

    deinit { table.pointee.destroy(instance) }
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}
