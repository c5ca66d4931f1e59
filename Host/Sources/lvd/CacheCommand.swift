import ArgumentParser
import Foundation
import LVDFormats
import LVDLLMCache
import LVDStage1

/// `lvd cache`: the LLM answer cache the llm planner reads and fills (SQLite, WAL).
struct Cache: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The LLM answer cache: import a reference JSON cache, export one, show what is stored.",
        subcommands: [Import.self, Export.self, Stats.self])

    struct Location: ParsableArguments {
        @Option(help: ArgumentHelp("The SQLite cache file (default: $XDG_CACHE_HOME/lvd/llm-cache.sqlite, as the llm planner's).", valueName: "file"))
        var cache: String?

        func open() throws -> LLMCache {
            do { return try LLMCache(path: cache ?? LLMCache.defaultPath()) } catch { throw CLIError("\(error)") }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add the answers of a reference JSON cache (caption → [answers]) under a model and template.")
        @Argument(help: "The JSON file, e.g. cache_lvd_v0.1_gpt-3.5-turbo.json.") var file: String
        @Option(help: "Model the answers came from (part of the cache key).") var model: String
        @Option(help: "Template version that produced them (the reference's is v0.1).") var template: String
        @OptionGroup var location: Location

        func run() throws {
            let entries = try readReferenceCache(file)
            let cache = try location.open()
            let count: Int
            do { count = try cache.importReference(entries, model: model, template: template) } catch { throw CLIError("\(error)") }
            print("imported \(count) answers for \(entries.count) prompts into \(cache.path) (model \(model), template \(template))")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write the answers of a model and template as a reference JSON cache.")
        @Option(help: "Model.") var model: String
        @Option(help: "Template version.") var template: String
        @Option(name: [.short, .customLong("output")], help: "Output file (default: standard output).") var output: String?
        @OptionGroup var location: Location

        func run() throws {
            let entries: [(prompt: String, answers: [String])]
            do { entries = try location.open().entries(model: model, template: template) } catch let error as CLIError { throw error } catch { throw CLIError("\(error)") }
            let text = ReferenceCacheFormat.serialize(entries)
            if let output { try writeAtomically(text, to: output) } else { print(text) }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Prompts and answers stored per model and template.")
        @OptionGroup var location: Location
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let cache = try location.open()
            let rows: [(model: String, template: String, keys: Int, answers: Int)]
            do { rows = try cache.stats() } catch { throw CLIError("\(error)") }
            if json {
                print(JSONValue.array(rows.map { .object(JSONObject(["model": .string($0.model), "template": .string($0.template),
                                                                      "prompts": .number(Double($0.keys)), "answers": .number(Double($0.answers))])) }).serialized(pretty: true))
                return
            }
            print("\(cache.path)")
            if rows.isEmpty { print("  (empty)") }
            for row in rows { print("  \(row.model)  \(row.template)  \(row.keys) prompts, \(row.answers) answers") }
        }
    }
}

/// A reference JSON cache file: caption → [answers], in file order.
func readReferenceCache(_ path: String) throws -> [(prompt: String, answers: [String])] {
    guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("\(path): cannot read the cache file") }
    let root: JSONValue
    do { root = try JSONValue.parse(bytes: [UInt8](data)) } catch { throw CLIError("\(path): not JSON: \(error)") }
    guard let object = root.objectValue else { throw CLIError("\(path): a cache is a JSON object of caption → [answers]") }
    return try object.keys.map { key in
        guard let list = object[key]?.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else {
            throw CLIError("\(path): \"\(key)\": must be a list of answer strings")
        }
        return (key, list.compactMap(\.stringValue))
    }
}
