import LVDFormats
import LVDSDK

/// What a plugin says about itself; becomes its `lvd_plugin_descriptor`.
public struct PluginInfo: Sendable {
    public enum Kind: String, Sendable { case planner, method }

    public var id: String
    public var kind: Kind
    public var name: String
    public var version: String
    public var description: String
    public var params: ParamsSchema

    public init(id: String, kind: Kind, name: String, version: String, description: String, params: ParamsSchema = ParamsSchema()) {
        self.id = id
        self.kind = kind
        self.name = name
        self.version = version
        self.description = description
        self.params = params
    }
}

/// A stage-1 planner written in Swift. One instance is used by one thread at a time.
public protocol PlannerPlugin: AnyObject {
    static var info: PluginInfo { get }
    /// `params` are validated against `info.params` with defaults filled in by the host.
    init(host: HostContext, params: JSONObject) throws
    /// Returns the layout for `prompt` as JSON in the lvd layout format.
    func plan(prompt: String) throws -> String
}

/// What a method is asked to generate (`lvd_method_request`).
public struct MethodRequest {
    public var prompt: String
    public var negativePrompt: String?
    public var layoutJSON: String?
    public var seed: UInt64
    public var frames: Int
    public var width: Int
    public var height: Int
    public var steps: Int
    /// The host's loaded pipeline (`lvd.model/1`), if any.
    public var pipeline: OpaquePointer?
}

/// A stage-2 method written in Swift. One instance is used by one thread at a time.
public protocol MethodPlugin: AnyObject {
    static var info: PluginInfo { get }
    init(host: HostContext, params: JSONObject) throws
    /// The video as a u8 tensor of shape (frames, height, width, 3).
    func generate(_ request: MethodRequest) throws -> Tensor
}

/// Builds the C tables of a plugin library from Swift types. A plugin library calls it from
/// its one exported function:
///
///     @_cdecl("lvd_plugin_entry")
///     public func lvdPluginEntry() -> UnsafePointer<lvd_plugin_library> {
///         PluginExport.library(planners: [MyPlanner.self])
///     }
public enum PluginExport {
    /// The library table; built on the first call, the same pointer afterwards.
    public static func library(planners: [any PlannerPlugin.Type] = [], methods: [any MethodPlugin.Type] = []) -> UnsafePointer<lvd_plugin_library> {
        libraryLock.lock()
        defer { libraryLock.unlock() }
        if let built = registry { return built.table }
        let built = Registry(planners: planners, methods: methods)
        registry = built
        return built.table
    }
}

// Per-library state. fileprivate: each plugin library has its own copy, and no other image
// can interpose these symbols.
fileprivate nonisolated(unsafe) var registry: Registry?
fileprivate let libraryLock = SimpleLock()
fileprivate nonisolated(unsafe) var hostPointer: UnsafePointer<lvd_host>?

fileprivate final class Registry {
    struct Entry {
        let info: PluginInfo
        let descriptor: UnsafeMutablePointer<lvd_plugin_descriptor>
        let interfaceID: String
        let interface: UnsafeRawPointer
    }

    let table: UnsafePointer<lvd_plugin_library>
    var entries: [Entry] = []
    /// Interface table address → the Swift type it creates.
    var plannerTypes: [UnsafeRawPointer: any PlannerPlugin.Type] = [:]
    var methodTypes: [UnsafeRawPointer: any MethodPlugin.Type] = [:]

    init(planners: [any PlannerPlugin.Type], methods: [any MethodPlugin.Type]) {
        let library = UnsafeMutablePointer<lvd_plugin_library>.allocate(capacity: 1)
        library.initialize(to: lvd_plugin_library(
            struct_size: UInt32(MemoryLayout<lvd_plugin_library>.size),
            abi_major: UInt32(LVD_ABI_MAJOR),
            abi_minor: UInt32(LVD_ABI_MINOR),
            setup: { host, error in
                guard let host else { return lvd_error_set_message(error, LVD_ERR_INVALID_ARGUMENT, "setup: host is NULL") }
                guard host.pointee.abi_major == UInt32(LVD_ABI_MAJOR) else {
                    return lvd_error_set_message(error, LVD_ERR_ABI,
                        "host implements ABI \(host.pointee.abi_major).\(host.pointee.abi_minor), this plugin needs \(LVD_ABI_MAJOR).x")
                }
                hostPointer = host
                return LVD_OK
            },
            teardown: { hostPointer = nil },
            plugin_count: { UInt32(registry?.entries.count ?? 0) },
            plugin_descriptor: { index in
                guard let entries = registry?.entries, Int(index) < entries.count else { return nil }
                return UnsafePointer(entries[Int(index)].descriptor)
            },
            get_interface: { pluginID, interfaceID in
                guard let pluginID, let interfaceID, let entries = registry?.entries else { return nil }
                let id = String(cString: pluginID), interface = String(cString: interfaceID)
                return entries.first { $0.info.id == id && $0.interfaceID == interface }?.interface
            }
        ))
        table = UnsafePointer(library)
        for type in planners {
            let planner = UnsafeMutablePointer<lvd_planner>.allocate(capacity: 1)
            planner.initialize(to: plannerTable)
            plannerTypes[UnsafeRawPointer(planner)] = type
            entries.append(Entry(info: type.info, descriptor: Registry.descriptor(type.info),
                                 interfaceID: LVD_PLANNER_INTERFACE_ID, interface: UnsafeRawPointer(planner)))
        }
        for type in methods {
            let method = UnsafeMutablePointer<lvd_method>.allocate(capacity: 1)
            method.initialize(to: methodTable)
            methodTypes[UnsafeRawPointer(method)] = type
            entries.append(Entry(info: type.info, descriptor: Registry.descriptor(type.info),
                                 interfaceID: LVD_METHOD_INTERFACE_ID, interface: UnsafeRawPointer(method)))
        }
    }

    /// A descriptor whose strings live as long as the process (the library is never unloaded).
    static func descriptor(_ info: PluginInfo) -> UnsafeMutablePointer<lvd_plugin_descriptor> {
        let pointer = UnsafeMutablePointer<lvd_plugin_descriptor>.allocate(capacity: 1)
        pointer.initialize(to: lvd_plugin_descriptor(
            struct_size: UInt32(MemoryLayout<lvd_plugin_descriptor>.size),
            id: permanentCString(info.id),
            kind: permanentCString(info.kind.rawValue),
            name: permanentCString(info.name),
            version: permanentCString(info.version),
            description: permanentCString(info.description),
            params_schema: permanentCString(info.params.json.serialized())))
        return pointer
    }
}

fileprivate func permanentCString(_ string: String) -> UnsafePointer<CChar> { UnsafePointer(strdup(string)!) }

/// Boxes a Swift instance behind an opaque C handle.
fileprivate final class PlannerBox {
    let planner: any PlannerPlugin
    init(_ planner: any PlannerPlugin) { self.planner = planner }
}

fileprivate let plannerTable = lvd_planner(
    struct_size: UInt32(MemoryLayout<lvd_planner>.size),
    plugin_data: nil,
    create: { table, host, paramsJSON, out, error in
        guard let table, let host, let out else {
            return lvd_error_set_message(error, LVD_ERR_INVALID_ARGUMENT, "create: NULL argument")
        }
        guard let type = registry?.plannerTypes[UnsafeRawPointer(table)] else {
            return lvd_error_set_message(error, LVD_ERR_INVALID_ARGUMENT, "create: unknown planner table")
        }
        do {
            let params = try parseParams(paramsJSON)
            let context = HostContext(raw: host, source: type.info.id)
            let box = PlannerBox(try type.init(host: context, params: params))
            out.pointee = OpaquePointer(Unmanaged.passRetained(box).toOpaque())
            return LVD_OK
        } catch let thrown {
            let (status, message) = statusAndMessage(of: thrown)
            return lvd_error_set_message(error, status, message)
        }
    },
    plan: { instance, request, layoutJSON, error in
        guard let instance, let request, let layoutJSON, let prompt = request.pointee.prompt else {
            return lvd_error_set_message(error, LVD_ERR_INVALID_ARGUMENT, "plan: NULL argument")
        }
        let box = Unmanaged<PlannerBox>.fromOpaque(UnsafeRawPointer(instance)).takeUnretainedValue()
        do {
            let layout = try box.planner.plan(prompt: String(cString: prompt))
            layoutJSON.pointee = strdup(layout)
            return LVD_OK
        } catch let thrown {
            let (status, message) = statusAndMessage(of: thrown)
            return lvd_error_set_message(error, status, message)
        }
    },
    free_string: { _, string in free(string) },
    destroy: { instance in
        guard let instance else { return }
        Unmanaged<PlannerBox>.fromOpaque(UnsafeRawPointer(instance)).release()
    })

fileprivate final class MethodBox {
    let method: any MethodPlugin
    init(_ method: any MethodPlugin) { self.method = method }
}

fileprivate let methodTable = lvd_method(
    struct_size: UInt32(MemoryLayout<lvd_method>.size),
    plugin_data: nil,
    create: { table, host, paramsJSON, out, error in
        guard let table, let host, let out else {
            return lvd_error_set_message(error, LVD_ERR_INVALID_ARGUMENT, "create: NULL argument")
        }
        guard let type = registry?.methodTypes[UnsafeRawPointer(table)] else {
            return lvd_error_set_message(error, LVD_ERR_INVALID_ARGUMENT, "create: unknown method table")
        }
        do {
            let params = try parseParams(paramsJSON)
            let box = MethodBox(try type.init(host: HostContext(raw: host, source: type.info.id), params: params))
            out.pointee = OpaquePointer(Unmanaged.passRetained(box).toOpaque())
            return LVD_OK
        } catch let thrown {
            let (status, message) = statusAndMessage(of: thrown)
            return lvd_error_set_message(error, status, message)
        }
    },
    generate: { instance, request, video, error in
        guard let instance, let request, let video, let prompt = request.pointee.prompt else {
            return lvd_error_set_message(error, LVD_ERR_INVALID_ARGUMENT, "generate: NULL argument")
        }
        let box = Unmanaged<MethodBox>.fromOpaque(UnsafeRawPointer(instance)).takeUnretainedValue()
        let raw = request.pointee
        let swiftRequest = MethodRequest(
            prompt: String(cString: prompt), negativePrompt: raw.negative_prompt.map { String(cString: $0) },
            layoutJSON: raw.layout_json.map { String(cString: $0) }, seed: raw.seed, frames: Int(raw.frames),
            width: Int(raw.width), height: Int(raw.height), steps: Int(raw.steps), pipeline: raw.pipeline)
        do {
            let result = try box.method.generate(swiftRequest)
            // The caller receives its own reference; the Swift value releases ours.
            let status = result.runtime.api.pointee.retain(result.handle.raw, error)
            guard status == LVD_OK else { return status }
            video.pointee = result.handle.raw
            return LVD_OK
        } catch let thrown {
            let (status, message) = statusAndMessage(of: thrown)
            return lvd_error_set_message(error, status, message)
        }
    },
    destroy: { instance in
        guard let instance else { return }
        Unmanaged<MethodBox>.fromOpaque(UnsafeRawPointer(instance)).release()
    })

fileprivate func parseParams(_ text: UnsafePointer<CChar>?) throws -> JSONObject {
    guard let text else { return JSONObject() }
    let value: JSONValue
    do { value = try JSONValue.parse(String(cString: text)) } catch {
        throw PluginError.invalidArgument("params are not JSON: \(error)")
    }
    guard let object = value.objectValue else { throw PluginError.invalidArgument("params must be a JSON object") }
    return object
}

#if canImport(Glibc)
import Glibc
#endif

/// A mutex for the one-time library build (no Foundation in the kit).
fileprivate final class SimpleLock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func lock() { pthread_mutex_lock(&mutex) }
    func unlock() { pthread_mutex_unlock(&mutex) }
}
