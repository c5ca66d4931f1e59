import Foundation

/// Where manifests are looked for, in order; the first manifest for an id wins.
public struct PluginSearchPath: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var directory: String
        /// "--plugin-path", "LVD_PLUGIN_PATH", "user config", "installed", "source tree".
        public var origin: String
        /// Named by the user: a missing folder is a problem worth reporting.
        public var explicit: Bool
    }

    public var entries: [Entry]

    /// The standard order: `--plugin-path` folders, `LVD_PLUGIN_PATH` (colon-separated),
    /// `$XDG_CONFIG_HOME/lvd/plugins.d` (default `~/.config`), then the plugins.d installed beside
    /// the executable (`<bin>/plugins.d`, `<bin>/../share/lvd/plugins.d`) and the source tree's.
    public static func standard(pluginPaths: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
                                executableDirectory: String = HostPaths.executableDirectory) -> PluginSearchPath {
        var entries: [Entry] = []
        for path in pluginPaths { entries.append(Entry(directory: HostPaths.absolute(path), origin: "--plugin-path", explicit: true)) }
        if let list = environment["LVD_PLUGIN_PATH"] {
            for path in list.split(separator: ":") where !path.isEmpty {
                entries.append(Entry(directory: HostPaths.absolute(String(path)), origin: "LVD_PLUGIN_PATH", explicit: true))
            }
        }
        let config = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["HOME"].map { $0 + "/.config" } ?? NSHomeDirectory() + "/.config")
        entries.append(Entry(directory: config + "/lvd/plugins.d", origin: "user config", explicit: false))
        entries.append(Entry(directory: executableDirectory + "/plugins.d", origin: "installed", explicit: false))
        entries.append(Entry(directory: HostPaths.standardize(executableDirectory + "/../share/lvd/plugins.d"), origin: "installed", explicit: false))
        if let root = HostPaths.sourceTree(from: executableDirectory) {
            entries.append(Entry(directory: root + "/plugins.d", origin: "source tree", explicit: false))
        }
        // The same folder reached twice (e.g. the source tree also given by --plugin-path) is read once.
        var seen = Set<String>()
        entries = entries.filter { seen.insert(HostPaths.standardize($0.directory)).inserted }
        return PluginSearchPath(entries: entries)
    }
}

/// Every manifest found on a search path, without loading any library.
public struct PluginCatalog: Sendable {
    /// The winning manifest per id, in search order.
    public private(set) var manifests: [PluginManifest] = []
    /// Manifests whose id an earlier one already claimed, with the winner.
    public private(set) var shadowed: [(manifest: PluginManifest, by: PluginManifest)] = []
    /// Manifests that could not be read, and search folders the user named that do not exist.
    public private(set) var problems: [PluginProblem] = []
    public let searchPath: PluginSearchPath

    public init(searchPath: PluginSearchPath) {
        self.searchPath = searchPath
        var byID: [String: PluginManifest] = [:]
        let files = FileManager.default
        for entry in searchPath.entries {
            var isDirectory: ObjCBool = false
            guard files.fileExists(atPath: entry.directory, isDirectory: &isDirectory) else {
                if entry.explicit {
                    problems.append(PluginProblem(file: entry.directory, reason: "plugin folder (from \(entry.origin)) does not exist"))
                }
                continue
            }
            guard isDirectory.boolValue else {
                problems.append(PluginProblem(file: entry.directory, reason: "plugin path (from \(entry.origin)) is not a folder"))
                continue
            }
            let names: [String]
            do { names = try files.contentsOfDirectory(atPath: entry.directory) } catch {
                problems.append(PluginProblem(file: entry.directory, reason: "cannot list the folder: \(error.localizedDescription)"))
                continue
            }
            for name in names.sorted() where name.hasSuffix(".json") {
                let path = entry.directory + "/" + name
                do {
                    let manifest = try PluginManifest.load(path: path, origin: entry.origin)
                    if let winner = byID[manifest.id] {
                        shadowed.append((manifest, winner))
                    } else {
                        byID[manifest.id] = manifest
                        manifests.append(manifest)
                    }
                } catch {
                    problems.append(error)
                }
            }
        }
    }

    public func manifest(id: String) -> PluginManifest? { manifests.first { $0.id == id } }

    public func manifests(kind: PluginKind) -> [PluginManifest] { manifests.filter { $0.kind == kind } }

    /// The manifest for `id`, or an error that lists what there is.
    public func require(id: String, kind: PluginKind? = nil) throws(PluginProblem) -> PluginManifest {
        guard let manifest = manifest(id: id), kind == nil || manifest.kind == kind else {
            let candidates = kind.map { manifests(kind: $0) } ?? manifests
            let what = kind.map { "\($0.rawValue) " } ?? "plugin "
            let broken = problems.first { $0.file.hasSuffix("/\(id).json") }
            throw PluginProblem(
                file: id,
                reason: "no \(what)with this id" + (broken.map { " (its manifest is broken: \($0.reason))" } ?? "")
                    + "; available: " + (candidates.isEmpty ? "none" : candidates.map(\.id).joined(separator: ", ")),
                pluginID: id)
        }
        return manifest
    }
}

/// Paths of the running executable and the source tree.
public enum HostPaths {
    /// The running executable, symbolic links resolved (from /proc/self/exe: `lvd` found on PATH
    /// through a link, `CommandLine.arguments[0]` is just "lvd").
    public static let executable: String = {
        absolute((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
    }()

    /// The folder of the running executable.
    public static var executableDirectory: String { (executable as NSString).deletingLastPathComponent }

    /// The checkout the executable was built in: the nearest ancestor with Package.swift and plugins.d.
    public static func sourceTree(from directory: String) -> String? {
        var current = standardize(directory)
        let files = FileManager.default
        while current != "/" && !current.isEmpty {
            if files.fileExists(atPath: current + "/Package.swift") && files.fileExists(atPath: current + "/plugins.d") {
                return current
            }
            current = (current as NSString).deletingLastPathComponent
        }
        return nil
    }

    public static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? standardize(path) : standardize(FileManager.default.currentDirectoryPath + "/" + path)
    }

    public static func standardize(_ path: String) -> String { (path as NSString).standardizingPath }
}
