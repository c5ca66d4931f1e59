import ArgumentParser
import Foundation
import LVDFormats
import LVDModels

struct Model: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect diffusers-format model folders.",
        subcommands: [Info.self])

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pipeline class, components, each component's class, parameter count and dtype (from the configs when there are no weights).")

        @Argument(help: "A diffusers pipeline folder (with model_index.json).") var folder: String
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let model = try ModelFolder(path: folder)
            var rows = [["COMPONENT", "CLASS", "PARAMETERS", "TENSORS", "DTYPE", "SOURCE"]]
            var objects: [JSONValue] = []
            for component in model.components {
                let summary = try model.summary(component)
                let dtype = summary.map { $0.fromWeights ? $0.dtypes.keys.sorted().joined(separator: "+") : "-" } ?? "-"
                let source = summary?.fromWeights == true ? "weights (\(component.weightFiles.count) file(s))" : "config"
                rows.append([component.name, component.className, summary.map { grouped($0.parameters) } ?? "-",
                             summary.map { String($0.tensors) } ?? "-", dtype, source])
                var object = JSONObject()
                object["name"] = .string(component.name)
                object["library"] = .string(component.library)
                object["class"] = .string(component.className)
                if let summary {
                    object["parameters"] = .number(Double(summary.parameters))
                    object["tensors"] = .number(Double(summary.tensors))
                    object["dtypes"] = .array(summary.dtypes.keys.sorted().map(JSONValue.string))
                    object["from_weights"] = .bool(summary.fromWeights)
                }
                objects.append(.object(object))
            }
            if json {
                print(JSONValue.object(JSONObject(["folder": .string(folder), "pipeline": .string(model.pipelineClass),
                                                   "components": .array(objects)])).serialized(pretty: true))
                return
            }
            print("\(folder): \(model.pipelineClass)")
            print(table(rows), terminator: "")
        }

        private func grouped(_ n: Int) -> String {
            let digits = String(n)
            var result = ""
            for (i, c) in digits.enumerated() {
                if i > 0 && (digits.count - i) % 3 == 0 { result += "," }
                result.append(c)
            }
            return result
        }
    }
}
