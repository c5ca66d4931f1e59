import Foundation
import LVDFormats

/// A diffusers pipeline folder: model_index.json naming components, one folder each with its
/// config and weights (`*.safetensors`, or shards listed by `*.safetensors.index.json`).
public struct ModelFolder {
    /// What a component is, from its class name (the registry is keyed by the file's own type string).
    public enum Kind: String, Sendable {
        case unet3d, clipText, vae, tokenizer, scheduler

        static let registry: [String: Kind] = [
            "UNet3DConditionModel": .unet3d, "GroundedUNet3DConditionModel": .unet3d,
            "CLIPTextModel": .clipText, "AutoencoderKL": .vae,
            "CLIPTokenizer": .tokenizer, "CLIPTokenizerFast": .tokenizer,
            "DDIMScheduler": .scheduler, "DPMSolverMultistepScheduler": .scheduler,
        ]
    }

    public struct Component: Sendable {
        public var name: String
        public var library: String
        public var className: String
        public var kind: Kind
        public var folder: String
        /// Weight files, resolved (shards in index order); empty when the folder has none.
        public var weightFiles: [String]
    }

    public let path: String
    public let pipelineClass: String
    public let components: [Component]

    public subscript(kind: Kind) -> Component? { components.first { $0.kind == kind } }

    public init(path: String) throws(ModelError) {
        self.path = path
        let indexPath = path + "/model_index.json"
        let index = try ModelFolder.readJSON(indexPath)
        guard let object = index.objectValue else { throw ModelError(file: indexPath, reason: "must be a JSON object") }
        // "_class_name" is a string, or [module, class] for custom pipelines.
        switch object["_class_name"] {
        case .string(let name): pipelineClass = name
        case .array(let parts) where parts.last?.stringValue != nil: pipelineClass = parts.last!.stringValue!
        default: throw ModelError(file: indexPath, reason: "_class_name: missing or not a string")
        }
        var components: [Component] = []
        for (name, value) in object where !name.hasPrefix("_") {
            guard let pair = value.arrayValue, pair.count == 2, let library = pair[0].stringValue, let className = pair[1].stringValue else {
                if value == .null || value.arrayValue?.first == .null { continue } // an optional component left out
                throw ModelError(file: indexPath, reason: "\(name): must be [library, class], got \(value.serialized())")
            }
            guard let kind = Kind.registry[className] else {
                throw ModelError(file: indexPath, reason: "\(name): unknown class '\(className)' (known: \(Kind.registry.keys.sorted().joined(separator: ", ")))")
            }
            let folder = path + "/" + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ModelError(file: folder, reason: "component folder '\(name)' named by model_index.json is missing")
            }
            components.append(Component(name: name, library: library, className: className, kind: kind, folder: folder,
                                        weightFiles: try ModelFolder.weightFiles(in: folder)))
        }
        self.components = components
    }

    /// The weights of a component folder: a sharded index if there is one, else every
    /// `.safetensors` file.
    static func weightFiles(in folder: String) throws(ModelError) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        if let index = names.sorted().first(where: { $0.hasSuffix(".safetensors.index.json") }) {
            let indexPath = folder + "/" + index
            guard let map = try readJSON(indexPath).objectValue?["weight_map"]?.objectValue else {
                throw ModelError(file: indexPath, reason: "weight_map: missing or not an object")
            }
            var files: [String] = []
            for (key, file) in map {
                guard let name = file.stringValue, !name.contains("/") else {
                    throw ModelError(file: indexPath, reason: "weight_map.\(key): must be a file name in this folder")
                }
                if !files.contains(name) { files.append(name) }
            }
            for file in files where !FileManager.default.fileExists(atPath: folder + "/" + file) {
                throw ModelError(file: indexPath, reason: "shard '\(file)' is missing")
            }
            return files.map { folder + "/" + $0 }
        }
        return names.filter { $0.hasSuffix(".safetensors") }.sorted().map { folder + "/" + $0 }
    }

    static func readJSON(_ path: String) throws(ModelError) -> JSONValue {
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError(file: path, reason: "cannot read (missing?)") }
        do { return try JSONValue.parse(bytes: [UInt8](data)) } catch { throw ModelError(file: path, reason: "not valid JSON: \(error)") }
    }

    /// Decodes a component's config.json, with the file named in errors.
    public static func configuration<T: Decodable>(_ type: T.Type, in folder: String, file: String = "config.json") throws(ModelError) -> T {
        let path = folder + "/" + file
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError(file: path, reason: "cannot read (missing?)") }
        do { return try JSONDecoder().decode(T.self, from: data) } catch let DecodingError.typeMismatch(_, context) {
            throw ModelError(file: path, reason: "\(context.codingPath.map(\.stringValue).joined(separator: ".")): wrong type")
        } catch {
            throw ModelError(file: path, reason: "not a valid \(T.self): \(error)")
        }
    }

    /// A model of a component folder: its config.json decoded, the model built from it, the
    /// folder's safetensors loaded strictly (through `sanitize`, the model's one place for
    /// checkpoint quirks).
    public static func loadModel<Configuration: Decodable, Model: Module>(
        folder: String, _ configuration: Configuration.Type, sanitize: (String) -> String? = { $0 },
        build: (Configuration) throws(ConfigurationError) -> Model) throws(ModelError) -> Model {
        let config = try Self.configuration(configuration, in: folder)
        let model: Model
        do { model = try build(config) } catch { throw ModelError(file: folder + "/config.json", reason: error.description) }
        let files = try weightFiles(in: folder)
        guard !files.isEmpty else { throw ModelError(file: folder, reason: "no .safetensors weights") }
        try model.load(from: files.map { path throws(ModelError) in try SafetensorsFile(path: path) }, sanitize: sanitize)
        return model
    }

    /// Parameter count, tensor count and dtypes of a model component: from the weight headers
    /// when there are weights, from the architecture its config describes otherwise.
    public struct Summary: Sendable {
        public var parameters: Int
        public var tensors: Int
        public var dtypes: [String: Int]
        public var fromWeights: Bool
    }

    public func summary(_ component: Component) throws(ModelError) -> Summary? {
        if !component.weightFiles.isEmpty {
            var parameters = 0, tensors = 0
            var dtypes: [String: Int] = [:]
            for path in component.weightFiles {
                let file = try SafetensorsFile(path: path)
                for entry in file.entries.values {
                    tensors += 1
                    parameters += entry.shape.reduce(1, *)
                    dtypes[entry.dtype, default: 0] += 1
                }
            }
            return Summary(parameters: parameters, tensors: tensors, dtypes: dtypes, fromWeights: true)
        }
        let module: Module
        do {
            switch component.kind {
            case .unet3d: module = try UNet3DConditionModel(try Self.configuration(UNet3DConfiguration.self, in: component.folder))
            case .clipText: module = try CLIPTextModel(try Self.configuration(CLIPTextConfiguration.self, in: component.folder))
            case .vae: module = try AutoencoderKL(try Self.configuration(AutoencoderKLConfiguration.self, in: component.folder))
            case .tokenizer, .scheduler: return nil
            }
        } catch let error as ConfigurationError {
            throw ModelError(file: component.folder + "/config.json", reason: error.description)
        } catch let error as ModelError {
            throw error
        } catch {
            throw ModelError(file: component.folder, reason: "\(error)")
        }
        let all = module.namedParameters()
        return Summary(parameters: all.reduce(0) { $0 + $1.parameter.count }, tensors: all.count, dtypes: [:], fromWeights: false)
    }
}
