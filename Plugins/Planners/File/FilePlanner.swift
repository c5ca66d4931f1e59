import Foundation
import LVDFormats
import LVDPluginKit
import LVDSDK

/// Stage-1 planner that reads a layout from a JSON file in the lvd layout format
/// (docs/layout-format.md) — what `lvd generate --layout FILE` uses. The prompt fills in the
/// layout's prompt when the file has none.
final class FilePlanner: PlannerPlugin {
    static let info = PluginInfo(
        id: "file", kind: .planner, name: "Layout file", version: "1.0.0",
        description: "Reads a layout from a JSON file in the lvd layout format",
        params: ParamsSchema(
            params: [.init("path", .string, description: "path of the layout JSON file (lvd.layout/1)")],
            required: ["path"]))

    private let path: String
    private let host: HostContext

    init(host: HostContext, params: JSONObject) throws {
        guard let path = params["path"]?.stringValue, !path.isEmpty else {
            throw PluginError.invalidArgument("param 'path' must name a layout file")
        }
        self.path = path
        self.host = host
    }

    func plan(prompt: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw PluginError.notFound("layout file \(path): no such file")
        }
        guard !isDirectory.boolValue else { throw PluginError.invalidArgument("layout file \(path): is a folder") }
        guard let data = FileManager.default.contents(atPath: path) else { throw PluginError.io("layout file \(path): cannot read it") }
        guard let text = String(data: data, encoding: .utf8) else { throw PluginError.invalidArgument("layout file \(path): not UTF-8") }
        var layout = try Layout.decode(json: text, source: "layout file \(path)")
        if layout.prompt.isEmpty { layout.prompt = prompt }
        host.log(.debug, "read \(layout.keyframes.count) keyframes from \(path)")
        return layout.json.serialized(pretty: true)
    }
}

@_cdecl("lvd_plugin_entry")
public func lvdPluginEntry() -> UnsafePointer<lvd_plugin_library> {
    PluginExport.library(planners: [FilePlanner.self])
}
