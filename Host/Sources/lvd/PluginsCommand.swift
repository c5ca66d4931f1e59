import ArgumentParser
import Foundation
import LVDFormats
import LVDHost

struct Plugins: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "List, describe and check the installed plugins.",
        subcommands: [List.self, Info.self, Check.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List plugins from their manifests (loads no library).")

        @OptionGroup var host: HostOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let catalog = host.catalog()
            if json {
                var root = JSONObject()
                root["plugins"] = .array(catalog.manifests.map(manifestJSON))
                root["shadowed"] = .array(catalog.shadowed.map { entry in
                    var object = manifestJSON(entry.manifest).objectValue!
                    object["shadowed_by"] = .string(entry.by.path)
                    return .object(object)
                })
                root["problems"] = .array(catalog.problems.map(problemJSON))
                root["search_path"] = .array(catalog.searchPath.entries.map {
                    .object(JSONObject(["directory": .string($0.directory), "origin": .string($0.origin)]))
                })
                print(JSONValue.object(root).serialized(pretty: true))
                return
            }
            var rows = [["ID", "KIND", "VERSION", "ABI", "LIBRARY", "SOURCE"]]
            for manifest in catalog.manifests {
                rows.append([manifest.id, manifest.kind.rawValue, manifest.version ?? "-", "\(manifest.abiMajor).\(manifest.abiMinor)",
                             manifest.library, "\(manifest.directory) (\(manifest.origin))"])
            }
            print(table(rows), terminator: "")
            if catalog.manifests.isEmpty { print("(no plugins found)") }
            for entry in catalog.shadowed {
                print("shadowed: \(entry.manifest.id) in \(entry.manifest.path) (\(entry.manifest.origin)) — \(entry.by.path) wins")
            }
            for problem in catalog.problems { warn(problem.description) }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Describe one plugin: descriptor and parameters (loads it).")

        @OptionGroup var host: HostOptions
        @Argument(help: "The plugin id.") var id: String
        @Option(name: .customLong("param"),
                help: ArgumentHelp("Check a parameter setting and show the values create() would get (repeatable).", valueName: "key=value"))
        var params: [String] = []
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let catalog = host.catalog()
            let loader = PluginLoader()
            defer { loader.shutdown() }
            let plugin = try loader.load(catalog.require(id: id))
            let resolved = params.isEmpty ? plugin.defaultParams : try plugin.resolveParams(params)
            if json {
                var root = manifestJSON(plugin.manifest).objectValue!
                root["name"] = .string(plugin.name)
                root["version"] = .string(plugin.version)
                root["description"] = .string(plugin.description)
                root["library_path"] = .string(plugin.libraryPath)
                root["abi"] = .string("\(plugin.abi.major).\(plugin.abi.minor)")
                root["params_schema"] = plugin.paramsSchema.json
                root["params"] = .object(resolved)
                print(JSONValue.object(root).serialized(pretty: true))
                return
            }
            print("\(plugin.manifest.id) — \(plugin.name) \(plugin.version) (\(plugin.manifest.kind.rawValue))")
            if !plugin.description.isEmpty { print(plugin.description) }
            print("manifest: \(plugin.manifest.path) (\(plugin.manifest.origin))")
            print("library:  \(plugin.libraryPath) (built for ABI \(plugin.abi.major).\(plugin.abi.minor))")
            if plugin.paramsSchema.params.isEmpty {
                print("params:   none")
                return
            }
            print("params:")
            var rows = [["  NAME", "TYPE", "DEFAULT", "DESCRIPTION"]]
            for param in plugin.paramsSchema.params {
                let value = resolved[param.name].map { $0.serialized() }
                    ?? (plugin.paramsSchema.required.contains(param.name) ? "(required)" : "-")
                var text = param.description
                if let allowed = param.allowed { text += " [one of: \(allowed.map { $0.serialized() }.joined(separator: ", "))]" }
                if let minimum = param.minimum { text += " [min \(JSONValue.number(minimum).serialized())]" }
                if let maximum = param.maximum { text += " [max \(JSONValue.number(maximum).serialized())]" }
                rows.append(["  " + param.name, param.kind.rawValue, value, text])
            }
            print(table(rows), terminator: "")
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load each plugin and verify symbol, ABI, descriptors and setup; exit 1 if any fails.")

        @OptionGroup var host: HostOptions
        @Argument(help: "Plugin ids to check (default: all, and every manifest problem counts).") var ids: [String] = []
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let catalog = host.catalog()
            let loader = PluginLoader()
            defer { loader.shutdown() }
            var results: [(id: String, problem: String?, plugin: LoadedPlugin?)] = []
            var problems: [PluginProblem] = ids.isEmpty ? catalog.problems : []
            if ids.isEmpty {
                for manifest in catalog.manifests {
                    do { results.append((manifest.id, nil, try loader.load(manifest))) } catch {
                        results.append((manifest.id, error.description, nil))
                    }
                }
            } else {
                for id in ids {
                    do { results.append((id, nil, try loader.load(catalog.require(id: id)))) } catch {
                        results.append((id, error.description, nil))
                    }
                }
            }
            for entry in catalog.shadowed where ids.isEmpty || ids.contains(entry.manifest.id) {
                if entry.manifest.directory == entry.by.directory {
                    problems.append(PluginProblem(file: entry.manifest.path, reason: "duplicate id '\(entry.manifest.id)': \(entry.by.path) in the same folder already declares it"))
                }
            }
            let failures = results.filter { $0.problem != nil }.count + problems.count
            if json {
                var root = JSONObject()
                root["plugins"] = .array(results.map { result in
                    var object = JSONObject()
                    object["id"] = .string(result.id)
                    object["ok"] = .bool(result.problem == nil)
                    if let problem = result.problem { object["error"] = .string(problem) }
                    if let plugin = result.plugin {
                        object["kind"] = .string(plugin.manifest.kind.rawValue)
                        object["library_path"] = .string(plugin.libraryPath)
                        object["abi"] = .string("\(plugin.abi.major).\(plugin.abi.minor)")
                    }
                    return .object(object)
                })
                root["problems"] = .array(problems.map(problemJSON))
                root["failures"] = .number(Double(failures))
                print(JSONValue.object(root).serialized(pretty: true))
            } else {
                for result in results {
                    if let problem = result.problem {
                        print("FAIL  \(result.id): \(problem)")
                    } else if let plugin = result.plugin {
                        print("ok    \(result.id) (\(plugin.manifest.kind.rawValue) \(plugin.version), ABI \(plugin.abi.major).\(plugin.abi.minor), \(plugin.libraryPath))")
                    }
                }
                for problem in problems { print("FAIL  \(problem)") }
                print("\(results.count - results.filter { $0.problem != nil }.count) ok, \(failures) failed")
            }
            if failures > 0 { throw ExitCode(1) }
        }
    }
}

func manifestJSON(_ manifest: PluginManifest) -> JSONValue {
    var object = JSONObject()
    object["id"] = .string(manifest.id)
    object["kind"] = .string(manifest.kind.rawValue)
    object["version"] = manifest.version.map(JSONValue.string) ?? .null
    object["abi"] = .string("\(manifest.abiMajor).\(manifest.abiMinor)")
    object["library"] = .string(manifest.library)
    object["manifest"] = .string(manifest.path)
    object["directory"] = .string(manifest.directory)
    object["origin"] = .string(manifest.origin)
    object["description"] = manifest.description.map(JSONValue.string) ?? .null
    return .object(object)
}

func problemJSON(_ problem: PluginProblem) -> JSONValue {
    .object(JSONObject(["file": .string(problem.file), "reason": .string(problem.reason)]))
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
func table(_ rows: [[String]]) -> String {
    guard let columns = rows.map(\.count).max() else { return "" }
    var widths = [Int](repeating: 0, count: columns)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    return rows.map { row in
        row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n") + "\n"
}

/// One line on standard error: "lvd: warning: …".
func warn(_ message: String) {
    FileHandle.standardError.write(Data("lvd: warning: \(message)\n".utf8))
}
