/// A plugin's parameters as its descriptor declares them: a JSON-Schema subset
/// (`{"type": "object", "properties": {…}, "required": […], "additionalProperties": false}`).
public struct ParamsSchema: Equatable, Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case string, integer, number, boolean, array, object

        /// "an integer", "a string", … for messages.
        var article: String { self == .array || self == .object || self == .integer ? "an \(rawValue)" : "a \(rawValue)" }
    }

    public struct Param: Equatable, Sendable {
        public var name: String
        public var kind: Kind
        public var defaultValue: JSONValue?
        public var description: String
        public var allowed: [JSONValue]?
        public var minimum: Double?
        public var maximum: Double?

        public init(_ name: String, _ kind: Kind, default defaultValue: JSONValue? = nil, description: String = "",
                    allowed: [JSONValue]? = nil, minimum: Double? = nil, maximum: Double? = nil) {
            self.name = name
            self.kind = kind
            self.defaultValue = defaultValue
            self.description = description
            self.allowed = allowed
            self.minimum = minimum
            self.maximum = maximum
        }
    }

    public var params: [Param]
    public var required: [String]

    public init(params: [Param] = [], required: [String] = []) {
        self.params = params
        self.required = required
    }

    public subscript(name: String) -> Param? { params.first { $0.name == name } }

    // MARK: Reading and writing the schema itself

    /// Reads a descriptor's params_schema; `nil` or empty text means "no parameters".
    public static func parse(_ text: String?) throws(ParamsError) -> ParamsSchema {
        guard let text, !text.isEmpty else { return ParamsSchema() }
        let root: JSONValue
        do { root = try JSONValue.parse(text) } catch { throw ParamsError("params_schema is not JSON: \(error)") }
        guard let object = root.objectValue else { throw ParamsError("params_schema must be a JSON object") }
        if let type = object["type"], type != .string("object") {
            throw ParamsError("params_schema \"type\" must be \"object\"")
        }
        var schema = ParamsSchema()
        if let properties = object["properties"] {
            guard let properties = properties.objectValue else { throw ParamsError("params_schema \"properties\" must be an object") }
            for (name, spec) in properties {
                guard let spec = spec.objectValue else { throw ParamsError("params_schema property '\(name)' must be an object") }
                guard let kindName = spec["type"]?.stringValue, let kind = Kind(rawValue: kindName) else {
                    throw ParamsError("params_schema property '\(name)' needs \"type\" (one of \(Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                var param = Param(name, kind, description: spec["description"]?.stringValue ?? "")
                if let allowed = spec["enum"] {
                    guard let list = allowed.arrayValue, !list.isEmpty else { throw ParamsError("params_schema property '\(name)' \"enum\" must be a non-empty array") }
                    param.allowed = list
                }
                for (key, path) in [("minimum", \Param.minimum), ("maximum", \Param.maximum)] {
                    if let bound = spec[key] {
                        guard let number = bound.numberValue else { throw ParamsError("params_schema property '\(name)' \"\(key)\" must be a number") }
                        param[keyPath: path] = number
                    }
                }
                if let value = spec["default"] {
                    do { try param.check(value) } catch { throw ParamsError("params_schema default of \(error.message)") }
                    param.defaultValue = value
                }
                schema.params.append(param)
            }
        }
        if let required = object["required"] {
            guard let list = required.arrayValue?.compactMap(\.stringValue), list.count == required.arrayValue?.count else {
                throw ParamsError("params_schema \"required\" must be an array of strings")
            }
            for name in list where schema[name] == nil { throw ParamsError("params_schema requires '\(name)', which it does not declare") }
            schema.required = list
        }
        return schema
    }

    /// The schema as the JSON a descriptor carries.
    public var json: JSONValue {
        var properties = JSONObject()
        for param in params {
            var spec = JSONObject()
            spec["type"] = .string(param.kind.rawValue)
            if !param.description.isEmpty { spec["description"] = .string(param.description) }
            if let value = param.defaultValue { spec["default"] = value }
            if let allowed = param.allowed { spec["enum"] = .array(allowed) }
            if let minimum = param.minimum { spec["minimum"] = .number(minimum) }
            if let maximum = param.maximum { spec["maximum"] = .number(maximum) }
            properties[param.name] = .object(spec)
        }
        var root = JSONObject()
        root["type"] = .string("object")
        root["additionalProperties"] = .bool(false)
        root["properties"] = .object(properties)
        if !required.isEmpty { root["required"] = .array(required.map(JSONValue.string)) }
        return .object(root)
    }

    // MARK: Validating values

    /// Converts a command-line value (`--param name=text`) to the declared type.
    public func value(for name: String, fromText text: String) throws(ParamsError) -> JSONValue {
        let param = try lookup(name)
        let value: JSONValue
        switch param.kind {
        case .string:
            value = .string(text)
        case .integer:
            guard let n = Int(text.trimmingWhitespace) else {
                throw ParamsError("param '\(name)' expects an integer, got '\(text)'")
            }
            value = .number(Double(n))
        case .number:
            guard let n = Double(text.trimmingWhitespace), n.isFinite else {
                throw ParamsError("param '\(name)' expects a number, got '\(text)'")
            }
            value = .number(n)
        case .boolean:
            switch text.trimmingWhitespace.lowercased() {
            case "true", "1", "yes", "on": value = .bool(true)
            case "false", "0", "no", "off": value = .bool(false)
            default: throw ParamsError("param '\(name)' expects a boolean (true/false), got '\(text)'")
            }
        case .array, .object:
            do { value = try JSONValue.parse(text) } catch {
                throw ParamsError("param '\(name)' expects \(param.kind.article) as JSON, got '\(text)' (\(error))")
            }
        }
        try param.check(value)
        return value
    }

    /// Checks one value against its declaration.
    public func validate(_ value: JSONValue, for name: String) throws(ParamsError) {
        try lookup(name).check(value)
    }

    /// Merges layers of values over the schema's defaults, each checked, later layers winning,
    /// and checks that every required parameter has a value. `layers` name their source for
    /// messages ("manifest plugins.d/x.json", "--param").
    public func resolve(_ layers: [(source: String, values: JSONObject)]) throws(ParamsError) -> JSONObject {
        var result = JSONObject()
        for param in params { if let value = param.defaultValue { result[param.name] = value } }
        for layer in layers {
            for (name, value) in layer.values {
                do { try validate(value, for: name) } catch { throw ParamsError("\(layer.source): \(error.message)") }
                result[name] = value
            }
        }
        for name in required where result[name] == nil {
            throw ParamsError("param '\(name)' is required (give --param \(name)=…)")
        }
        return result
    }

    private func lookup(_ name: String) throws(ParamsError) -> Param {
        guard let param = self[name] else {
            let known = params.map(\.name)
            throw ParamsError("unknown param '\(name)' (\(known.isEmpty ? "this plugin takes no params" : "known: " + known.joined(separator: ", ")))")
        }
        return param
    }
}

extension ParamsSchema.Param {
    func check(_ value: JSONValue) throws(ParamsError) {
        let matches: Bool
        switch kind {
        case .string: matches = value.stringValue != nil
        case .integer: matches = value.intValue != nil
        case .number: matches = value.numberValue != nil
        case .boolean: matches = value.boolValue != nil
        case .array: matches = value.arrayValue != nil
        case .object: matches = value.objectValue != nil
        }
        guard matches else {
            throw ParamsError("param '\(name)' expects \(kind.article), got \(value.typeName) \(value.serialized())")
        }
        if let allowed, !allowed.contains(value) {
            throw ParamsError("param '\(name)' = \(value.serialized()) is not one of: \(allowed.map { $0.serialized() }.joined(separator: ", "))")
        }
        if let n = value.numberValue {
            if let minimum, n < minimum { throw ParamsError("param '\(name)' = \(value.serialized()) is below the minimum \(JSONValue.format(minimum))") }
            if let maximum, n > maximum { throw ParamsError("param '\(name)' = \(value.serialized()) is above the maximum \(JSONValue.format(maximum))") }
        }
    }
}

public struct ParamsError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension String {
    var trimmingWhitespace: Substring {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return Substring(scalars[first...last])
    }
}
