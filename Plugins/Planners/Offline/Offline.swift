import LVDFormats
import LVDPluginKit
import LVDSDK
import LVDStage1

/// Stage-1 planner without a network (LVDStage1.OfflinePlanner): the benchmark's caption
/// grammar and simple free-form prompts; refuses what it cannot read. The default planner.
final class Offline: PlannerPlugin {
    static let info = PluginInfo(
        id: "offline", kind: .planner, name: "Offline planner", version: "1.0.0",
        description: "Deterministic layouts from the prompt's words (objects, counts, colours, sides, motion, appearance); no network")

    init(host: HostContext, params: JSONObject) throws {}

    func plan(prompt: String) throws -> String {
        do { return try OfflinePlanner.plan(prompt).json.serialized(pretty: true) } catch {
            throw PluginError(LVD_ERR_UNSUPPORTED, error.description)
        }
    }
}

@_cdecl("lvd_plugin_entry")
public func lvdPluginEntry() -> UnsafePointer<lvd_plugin_library> {
    PluginExport.library(planners: [Offline.self])
}
