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
    init(_ plugin: LoadedPlugin, _ status: lvd_status, _ error: inout lvd_error) {
        let message = withUnsafeBytes(of: &error.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        self.init(pluginID: plugin.manifest.id, kind: plugin.manifest.kind, status: status,
                  message: message.isEmpty ? "no message" : message)
    }
}

/// One instance of a planner plugin, created with resolved params; destroyed with this object.
public final class PlannerInstance {
    public let plugin: LoadedPlugin
    private let table: UnsafePointer<lvd_planner>
    private let instance: OpaquePointer

    public init(plugin: LoadedPlugin, params: JSONObject, host: HostServices = .shared) throws(PluginCallError) {
        precondition(plugin.manifest.kind == .planner, "PlannerInstance needs a planner plugin")
        self.plugin = plugin
        table = plugin.interface.assumingMemoryBound(to: lvd_planner.self)
        var error = lvd_error()
        lvd_error_init(&error)
        var created: OpaquePointer?
        let status = table.pointee.create(table, host.table, JSONValue.object(params).serialized(), &created, &error)
        guard status == LVD_OK, let created else {
            throw PluginCallError(plugin, status == LVD_OK ? LVD_ERR_INTERNAL : status, &error)
        }
        instance = created
    }

    /// The plugin's layout JSON for `prompt`, as the plugin wrote it.
    public func plan(prompt: String) throws(PluginCallError) -> String {
        var error = lvd_error()
        lvd_error_init(&error)
        var output: UnsafeMutablePointer<CChar>?
        let status = prompt.withCString { text in
            var request = lvd_plan_request(struct_size: UInt32(MemoryLayout<lvd_plan_request>.size), prompt: text)
            return table.pointee.plan(instance, &request, &output, &error)
        }
        guard status == LVD_OK, let output else {
            if status == LVD_OK { error.status = LVD_ERR_INTERNAL }
            throw PluginCallError(plugin, status == LVD_OK ? LVD_ERR_INTERNAL : status, &error)
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
