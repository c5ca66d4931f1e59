import ArgumentParser
import LVDHost
import Logging

@main
struct LVD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lvd",
        abstract: "LLM-grounded video diffusion: prompt → layout → video, with pluggable planners and methods.",
        version: HostServices.hostVersion,
        subcommands: [Plugins.self, Plan.self, Generate.self, Compare.self, Cache.self, Model.self, WorldCommand.self, Bench.self])
}

/// Options every command that loads plugins takes.
struct HostOptions: ParsableArguments {
    @Option(name: .customLong("plugin-path"),
            help: ArgumentHelp("A folder of plugin manifests, searched first (repeatable).", valueName: "dir"))
    var pluginPaths: [String] = []

    @Option(name: .customLong("log-level"),
            help: "trace, debug, info, warning or error (default: $LVD_LOG_LEVEL or warning).")
    var logLevel: String?

    func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level '\(logLevel)' is not one of: trace, debug, info, warning, error")
        }
    }

    /// Starts logging and reads the plugin manifests.
    func catalog() -> PluginCatalog {
        LogSetup.bootstrapOnce(level: logLevel)
        InterruptHandler.install()
        ParentWatch.install()
        return PluginCatalog(searchPath: .standard(pluginPaths: pluginPaths))
    }
}

enum LogSetup {
    nonisolated(unsafe) private static var bootstrapped = false

    static func bootstrapOnce(level: String?) {
        guard !bootstrapped else { return }
        bootstrapped = true
        let name = level ?? ProcessInfo.processInfo.environment["LVD_LOG_LEVEL"] ?? "warning"
        let chosen = Logger.Level(rawValue: name) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = chosen
            return handler
        }
    }
}

import Foundation

/// Writes `text` to `path` so that a reader never sees a partial file: a temporary file in the
/// same folder, then rename.
func writeAtomically(_ text: String, to path: String) throws {
    do { try writeAtomically(Data(text.utf8), to: path) } catch { throw CLIError("\(error)") }
}

/// An error the CLI reports as one line.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
