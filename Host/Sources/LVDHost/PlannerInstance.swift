import LVDFormats
import LVDSDK

/// A failed call into a plugin: which plugin, the status and the plugin's own message.
public struct PluginCallError: Error, CustomStringConvertible, Sendable {
    public var pluginID: String
    public var kind: PluginKind
    public var status: lvd_status
    public var message: String

    public var statusName: String { String(cString: lvd_status_name(status)) }
    public var description: String { "\(kind.rawValue) '\(pluginID)' failed (\(statusName)): \(message)" }
}

extension PluginCallError {
    init(_ plugin: LoadedPlugin, _ status: lvd_status, _ error: lvd_error) {
        let message = error.text
        self.init(pluginID: plugin.manifest.id, kind: plugin.manifest.kind, status: status,
                  message: message.isEmpty ? "no message" : message)
    }
}

extension lvd_error {
    /// A fresh record for one call.
    static func make() -> lvd_error {
        var error = lvd_error()
        lvd_error_init(&error)
        return error
    }

    /// The message the callee wrote (up to the first NUL).
    public var text: String {
        withUnsafeBytes(of: message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}

/// Runs an interface's `create` with the plugin's resolved params and returns the new instance,
/// or the plugin's status and message. A create that says OK but returns nothing is a bug in
/// the plugin, reported as internal.
func createInstance(_ plugin: LoadedPlugin, params: JSONObject,
                    _ create: (UnsafePointer<CChar>, UnsafeMutablePointer<OpaquePointer?>, UnsafeMutablePointer<lvd_error>) -> lvd_status)
    throws(PluginCallError) -> OpaquePointer {
    var error = lvd_error.make()
    var created: OpaquePointer?
    let status = JSONValue.object(params).serialized().withCString { create($0, &created, &error) }
    guard status == LVD_OK, let created else {
        throw PluginCallError(plugin, status == LVD_OK ? LVD_ERR_INTERNAL : status, error)
    }
    return created
}

/// One instance of a planner plugin, created with resolved params; destroyed with this object.
public final class PlannerInstance {
    public let plugin: LoadedPlugin
    private let table: UnsafePointer<lvd_planner>
    private let instance: OpaquePointer

    public init(plugin: LoadedPlugin, params: JSONObject, host: HostServices = .shared) throws(PluginCallError) {
        precondition(plugin.manifest.kind == .planner, "PlannerInstance needs a planner plugin")
        self.plugin = plugin
        let table = plugin.interface.assumingMemoryBound(to: lvd_planner.self)
        self.table = table
        instance = try createInstance(plugin, params: params) { table.pointee.create(table, host.table, $0, $1, $2) }
    }

    /// The plugin's layout JSON for `prompt`, as the plugin wrote it.
    public func plan(prompt: String) throws(PluginCallError) -> String {
        var error = lvd_error.make()
        var output: UnsafeMutablePointer<CChar>?
        let status = prompt.withCString { text in
            var request = lvd_plan_request(struct_size: UInt32(MemoryLayout<lvd_plan_request>.size), prompt: text)
            return table.pointee.plan(instance, &request, &output, &error)
        }
        guard status == LVD_OK, let output else {
            throw PluginCallError(plugin, status == LVD_OK ? LVD_ERR_INTERNAL : status, error)
        }
        defer { table.pointee.free_string(instance, output) }
        return String(cString: output)
    }

    /// Plans `prompt` and reads the result as a layout, checked strictly.
    public func planLayout(prompt: String) throws -> Layout {
        let text = try plan(prompt: prompt)
        return try Layout.decode(json: text, source: "layout from planner '\(plugin.manifest.id)'")
    }

    deinit { table.pointee.destroy(instance) }
}
