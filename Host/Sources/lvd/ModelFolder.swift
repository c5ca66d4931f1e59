import Foundation
import LVDFormats
import LVDHost

/// What a model folder's `lvd.json` says, all of it optional:
///
///     {"frames": 8, "steps": 20, "negative_prompt": "", "params": {"guidance_scale": 7.5},
///      "methods": {"lvd-gligen": {"model": "../tiny-gligen"},
///                  "lvd": {"params": {"loss_threshold": 0}}}}
///
/// Generation defaults for the folder (the bundled tiny model is trained on 8-frame clips,
/// samples in 20 steps, and learnt its unconditional branch from the empty caption); parameter
/// defaults for every method that takes them (a guidance scale suits a model, not one method);
/// and per method a folder to use instead of this one (the same model with that method's
/// adapters, relative to this folder; that folder's own lvd.json then applies) or parameter
/// defaults that suit this model. Parameters resolve in the order: the plugin's defaults, this
/// folder's `params`, its `methods.ID.params`, `--param`. A folder without lvd.json has none of these.
struct FolderSettings: Equatable {
    var frames: Int?
    var steps: Int?
    var negativePrompt: String?
    /// Parameter defaults for every method that declares the parameter.
    var sharedParams = JSONObject()
    /// Method id → the folder that method uses in place of this one (as written, relative to it).
    var variants: [String: String] = [:]
    /// Method id → parameter defaults on this model.
    var params: [String: JSONObject] = [:]

    /// The settings of `folder`; a malformed lvd.json is an error that names the file and field.
    static func read(_ folder: String) throws -> FolderSettings {
        let path = folder + "/lvd.json"
        guard FileManager.default.fileExists(atPath: path) else { return FolderSettings() }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CLIError("\(path): cannot read it") }
        let object: JSONObject
        do {
            guard let parsed = try JSONValue.parse(text).objectValue else { throw CLIError("\(path): not a JSON object") }
            object = parsed
        } catch let error as CLIError { throw error } catch { throw CLIError("\(path): \(error)") }
        var settings = FolderSettings()
        func field<T>(_ name: String, _ value: (JSONValue) -> T?, _ what: String) throws -> T? {
            guard let raw = object[name], raw != .null else { return nil }
            guard let typed = value(raw) else { throw CLIError("\(path): \"\(name)\" must be \(what)") }
            return typed
        }
        settings.frames = try field("frames", { $0.intValue.flatMap { $0 > 0 ? $0 : nil } }, "a positive integer")
        settings.steps = try field("steps", { $0.intValue.flatMap { $0 > 0 ? $0 : nil } }, "a positive integer")
        settings.negativePrompt = try field("negative_prompt", \.stringValue, "a string")
        settings.sharedParams = try field("params", \.objectValue, "an object of parameter defaults") ?? JSONObject()
        for (method, entry) in try field("methods", \.objectValue, "an object of method ids") ?? JSONObject() {
            guard let entry = entry.objectValue else { throw CLIError("\(path): \"methods.\(method)\" must be an object") }
            for (key, value) in entry {
                switch key {
                case "model":
                    guard let folder = value.stringValue, !folder.isEmpty else { throw CLIError("\(path): \"methods.\(method).model\" must be a folder name") }
                    settings.variants[method] = folder
                case "params":
                    guard let params = value.objectValue else { throw CLIError("\(path): \"methods.\(method).params\" must be an object") }
                    settings.params[method] = params
                default:
                    throw CLIError("\(path): \"methods.\(method).\(key)\" is not a known field (model, params)")
                }
            }
            // The method then runs on the other folder, whose own lvd.json gives its parameters:
            // these would be ignored.
            if let variant = settings.variants[method], settings.params[method] != nil {
                throw CLIError("\(path): \"methods.\(method).params\" would be ignored, since the method runs on '\(variant)': put them in that folder's lvd.json")
            }
        }
        return settings
    }

    /// This folder's parameter defaults for `method`, as layers for `resolveParams`: the shared
    /// `params` the method `takes` (the others are returned as `skipped`), then its own.
    func paramsLayers(_ method: String, folder: String, takes: (String) -> Bool)
        -> (layers: [(source: String, values: JSONObject)], skipped: [String]) {
        var shared = JSONObject(), skipped: [String] = []
        for (name, value) in sharedParams {
            if takes(name) { shared[name] = value } else { skipped.append(name) }
        }
        var layers: [(source: String, values: JSONObject)] = []
        if !shared.isEmpty { layers.append(("\(folder)/lvd.json params", shared)) }
        if let own = params[method] { layers.append(("\(folder)/lvd.json methods.\(method).params", own)) }
        return (layers, skipped)
    }
}

extension Generate {
    /// The folder a method runs on: --model, else $LVD_MODEL, else the bundled Models/tiny beside
    /// the executable (`../share/lvd/models`) or in the source tree — then, when that folder's
    /// lvd.json names a variant for the method (the bundled one sends `lvd-gligen` to
    /// Models/tiny-gligen, the same model with GLIGEN adapters), that folder instead.
    static func modelFolder(_ explicit: String?, method: String? = nil,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let base: String
        if let explicit {
            base = explicit
        } else if let variable = environment["LVD_MODEL"], !variable.isEmpty {
            base = variable
        } else {
            let executable = URL(fileURLWithPath: HostPaths.executableDirectory, isDirectory: true)
            var candidates = [executable.appendingPathComponent("../share/lvd/models/tiny").standardized.path]
            var folder = executable
            for _ in 0..<6 {
                candidates.append(folder.appendingPathComponent("Models/tiny").path)
                folder.deleteLastPathComponent()
            }
            guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
                throw CLIError("no model: the bundled Models/tiny was not found beside the executable or in the source tree; pass --model DIR (a diffusers text-to-video folder) or set LVD_MODEL")
            }
            base = found
        }
        guard let method, let variant = try FolderSettings.read(base).variants[method] else { return base }
        let from = base.hasPrefix("/") ? base : FileManager.default.currentDirectoryPath + "/" + base
        let path = URL(fileURLWithPath: variant.hasPrefix("/") ? variant : from + "/" + variant).standardized.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIError("\(base)/lvd.json: methods.\(method).model '\(variant)' is not a folder (\(path))")
        }
        return path
    }
}
