import ArgumentParser
import Foundation
import LVDFormats
import LVDHost

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stage 1: plan a layout for a prompt with a planner plugin and print it as JSON.")

    @OptionGroup var host: HostOptions
    @Argument(help: "The prompt.") var prompt: String
    @Option(help: "Planner plugin id (default: offline).") var planner: String = "offline"
    @Option(name: .customLong("param"), help: ArgumentHelp("A planner parameter (repeatable; see `lvd plugins info ID`).", valueName: "key=value"))
    var params: [String] = []
    @Option(name: [.short, .customLong("output")], help: "Write the layout JSON to this file instead of standard output.")
    var output: String?

    func validate() throws {
        if prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw ValidationError("the prompt is empty") }
    }

    func run() throws {
        let catalog = host.catalog()
        let loader = PluginLoader()
        defer { loader.shutdown() }
        let plugin = try loader.load(catalog.require(id: planner, kind: .planner))
        let instance = try PlannerInstance(plugin: plugin, params: try plugin.resolveParams(params))
        let layout = try instance.planLayout(prompt: prompt)
        let text = layout.json.serialized(pretty: true) + "\n"
        if let output {
            try writeAtomically(text, to: output)
        } else {
            print(text, terminator: "")
        }
    }
}
