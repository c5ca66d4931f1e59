import Foundation
import LVDFormats
import LVDSDK

/// Plugin kinds and the interface each serves.
public enum PluginKind: String, CaseIterable, Sendable {
    case planner, method

    public var interfaceID: String {
        switch self {
        case .planner: return LVD_PLANNER_INTERFACE_ID
        case .method: return LVD_METHOD_INTERFACE_ID
        }
    }

    /// Bytes of the interface table that ABI 1.0 defines; a smaller table is refused.
    var interfaceSize: Int {
        switch self {
        case .planner: return MemoryLayout<lvd_planner>.size
        case .method: return MemoryLayout<lvd_method>.size
        }
    }
}

/// `plugins.d/<id>.json`: what the host knows of a plugin without loading it.
///
///     {"id": "file", "kind": "planner", "library": "libLVDPlannerFile.so", "abi": "1.0",
///      "version": "1.0.0", "description": "…", "defaults": {…}, "sha256": "…"}
public struct PluginManifest: Equatable, Sendable {
    public var id: String
    public var kind: PluginKind
    /// As written: absolute, or relative to the manifest's folder or the executable's folder.
    public var library: String
    public var abiMajor: Int
    public var abiMinor: Int
    public var version: String?
    public var description: String?
    public var defaults: JSONObject
    public var sha256: String?
    /// The manifest file.
    public var path: String
    /// Which search-path entry it came from ("--plugin-path", "LVD_PLUGIN_PATH", …).
    public var origin: String

    public var directory: String { (path as NSString).deletingLastPathComponent }
}

/// A problem with one manifest or plugin: the file it concerns and the reason, one line.
public struct PluginProblem: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var reason: String
    /// The plugin id, when known.
    public var pluginID: String?

    public init(file: String, reason: String, pluginID: String? = nil) {
        self.file = file
        self.reason = reason
        self.pluginID = pluginID
    }

    public var description: String { "\(file): \(reason)" }
}

extension PluginManifest {
    /// Plugin ids: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit.
    public static func isValidID(_ id: String) -> Bool {
        guard let first = id.unicodeScalars.first, id.utf8.count <= 64 else { return false }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789._-".unicodeScalars)
        return (CharacterSet.lowercaseLetters.contains(first) || CharacterSet.decimalDigits.contains(first))
            && first.isASCII && id.unicodeScalars.allSatisfy(allowed.contains)
    }

    /// Reads and checks a manifest file.
    public static func load(path: String, origin: String) throws(PluginProblem) -> PluginManifest {
        func problem(_ reason: String) -> PluginProblem { PluginProblem(file: path, reason: reason) }
        guard let data = FileManager.default.contents(atPath: path) else { throw problem("cannot read the manifest") }
        guard let text = String(data: data, encoding: .utf8) else { throw problem("manifest is not UTF-8") }
        let root: JSONValue
        do { root = try JSONValue.parse(text) } catch { throw problem("manifest is not valid JSON: \(error)") }
        guard let object = root.objectValue else { throw problem("manifest must be a JSON object, got \(root.typeName)") }

        func field(_ key: String, required: Bool = true) throws(PluginProblem) -> String? {
            guard let value = object[key] else {
                if required { throw problem("missing field '\(key)'") }
                return nil
            }
            guard let string = value.stringValue else {
                throw problem("field '\(key)' must be a string, got \(value.typeName) \(value.serialized())")
            }
            return string
        }

        let id = try field("id")!
        guard isValidID(id) else { throw problem("field 'id' \"\(id)\" is not a valid plugin id (lower-case letters, digits, '.', '_', '-')") }
        let kindName = try field("kind")!
        guard let kind = PluginKind(rawValue: kindName) else {
            throw problem("field 'kind' \"\(kindName)\" is not one of: \(PluginKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let library = try field("library")!
        guard !library.isEmpty else { throw problem("field 'library' is empty") }
        let abi = try field("abi")!
        let parts = abi.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let major = Int(parts[0]), let minor = Int(parts[1]), major >= 0, minor >= 0 else {
            throw problem("field 'abi' \"\(abi)\" must be \"MAJOR.MINOR\", e.g. \"\(LVD_ABI_MAJOR).\(LVD_ABI_MINOR)\"")
        }
        var defaults = JSONObject()
        if let value = object["defaults"] {
            guard let values = value.objectValue else { throw problem("field 'defaults' must be an object, got \(value.typeName)") }
            defaults = values
        }
        let sha256 = try field("sha256", required: false)?.lowercased()
        if let sha256, sha256.count != 64 || !sha256.allSatisfy(\.isHexDigit) {
            throw problem("field 'sha256' must be 64 hexadecimal digits")
        }
        return PluginManifest(
            id: id, kind: kind, library: library, abiMajor: major, abiMinor: minor,
            version: try field("version", required: false), description: try field("description", required: false),
            defaults: defaults, sha256: sha256, path: path, origin: origin)
    }
}
