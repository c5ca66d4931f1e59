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
    @Option(name: [.short, .customLong("output")], help: "Write the layout JSON to this file instead of standard output (and its boxes GIF beside it).")
    var output: String?
    @Option(help: ArgumentHelp("Write the layout's boxes as an animated GIF here (default with -o: the same name ending in .gif).", valueName: "file"))
    var gif: String?
    @Flag(help: "Write no GIF.") var noGif = false
    @Option(help: "Frames of the GIF (the keyframes interpolated as generation sees them).") var frames = 16

    func validate() throws {
        if prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw ValidationError("the prompt is empty") }
        guard (1...512).contains(frames) else { throw ValidationError("--frames must be in 1…512") }
    }

    /// Where the GIF goes: --gif, else beside -o, else nowhere.
    var gifPath: String? {
        if noGif { return nil }
        if let gif { return gif }
        guard let output else { return nil }
        return ((output as NSString).deletingPathExtension) + ".gif"
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
        if let path = gifPath {
            do { try LayoutGIF.write(layout, to: path, frames: frames) } catch { throw CLIError("\(error)") }
            FileHandle.standardError.write(Data("wrote \(path)\n".utf8))
        }
    }
}
