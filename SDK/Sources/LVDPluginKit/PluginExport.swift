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

/// The shared body of every interface's `create`: `build` makes the Swift plugin object for the
/// table (nil when the table is not one of this library's), and a retained reference to it becomes
/// the opaque instance handle.
fileprivate func createInstance(_ table: UnsafeRawPointer?, _ host: UnsafePointer<lvd_host>?, _ paramsJSON: UnsafePointer<CChar>?,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?, _ error: UnsafeMutablePointer<lvd_error>?, kind: String,
                                build: (UnsafeRawPointer, UnsafePointer<lvd_host>, JSONObject) throws -> AnyObject?) -> lvd_status {
    guard let table, let host, let out else {
        return lvd_error_set_message(error, LVD_ERR_INVALID_ARGUMENT, "create: NULL argument")
    }
    do {
        guard let instance = try build(table, host, try parseParams(paramsJSON)) else {
            return lvd_error_set_message(error, LVD_ERR_INVALID_ARGUMENT, "create: unknown \(kind) table")
        }
        out.pointee = OpaquePointer(Unmanaged.passRetained(instance).toOpaque())
        return LVD_OK
    } catch let thrown {
        let (status, message) = statusAndMessage(of: thrown)
        return lvd_error_set_message(error, status, message)
    }
}

/// The plugin object behind an instance handle made by `createInstance`.
fileprivate func instanceObject(_ instance: OpaquePointer) -> AnyObject {
    Unmanaged<AnyObject>.fromOpaque(UnsafeRawPointer(instance)).takeUnretainedValue()
}

/// The shared `destroy`: drops the reference `createInstance` handed out.
fileprivate func releaseInstance(_ instance: OpaquePointer?) {
    guard let instance else { return }
    Unmanaged<AnyObject>.fromOpaque(UnsafeRawPointer(instance)).release()
}

fileprivate let plannerTable = lvd_planner(
    struct_size: UInt32(MemoryLayout<lvd_planner>.size),
    plugin_data: nil,
    create: { table, host, paramsJSON, out, error in
        createInstance(table.map(UnsafeRawPointer.init), host, paramsJSON, out, error, kind: "planner") { table, host, params in
            guard let type = registry?.plannerTypes[table] else { return nil }
            return try type.init(host: HostContext(raw: host, source: type.info.id), params: params)
        }
    },
    plan: { instance, request, layoutJSON, error in
        guard let instance, let request, let layoutJSON, let prompt = request.pointee.prompt else {
            return lvd_error_set_message(error, LVD_ERR_INVALID_ARGUMENT, "plan: NULL argument")
        }
        // Made by createInstance from a PlannerPlugin type of this library.
        let planner = instanceObject(instance) as! any PlannerPlugin
        do {
            let layout = try planner.plan(prompt: String(cString: prompt))
            layoutJSON.pointee = strdup(layout)
            return LVD_OK
        } catch let thrown {
            let (status, message) = statusAndMessage(of: thrown)
            return lvd_error_set_message(error, status, message)
        }
    },
    free_string: { _, string in free(string) },
    destroy: { releaseInstance($0) })

fileprivate let methodTable = lvd_method(
    struct_size: UInt32(MemoryLayout<lvd_method>.size),
    plugin_data: nil,
    create: { table, host, paramsJSON, out, error in
        createInstance(table.map(UnsafeRawPointer.init), host, paramsJSON, out, error, kind: "method") { table, host, params in
            guard let type = registry?.methodTypes[table] else { return nil }
            return try type.init(host: HostContext(raw: host, source: type.info.id), params: params)
        }
    },
    generate: { instance, request, video, error in
        guard let instance, let request, let video, let prompt = request.pointee.prompt else {
            return lvd_error_set_message(error, LVD_ERR_INVALID_ARGUMENT, "generate: NULL argument")
        }
        // Made by createInstance from a MethodPlugin type of this library.
        let method = instanceObject(instance) as! any MethodPlugin
        let raw = request.pointee
        let swiftRequest = MethodRequest(
            prompt: String(cString: prompt), negativePrompt: raw.negative_prompt.map { String(cString: $0) },
            layoutJSON: raw.layout_json.map { String(cString: $0) }, seed: raw.seed, frames: Int(raw.frames),
            width: Int(raw.width), height: Int(raw.height), steps: Int(raw.steps), pipeline: raw.pipeline)
        do {
            let result = try method.generate(swiftRequest)
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
    destroy: { releaseInstance($0) })

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
