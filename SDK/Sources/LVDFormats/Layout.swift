/// A Dynamic Scene Layout in the lvd layout format ("lvd.layout/1", docs/layout-format.md):
/// keyframes of objects with boxes `[x, y, w, h]` in canvas pixels (top-left origin), as the
/// LLM writes them (STAGE1.md §2), plus the prompt, the reasoning and the background.
public struct Layout: Equatable, Sendable {
    public static let formatID = "lvd.layout/1"
    /// Keyframes a layout may hold; more is an error (the LLM format has 6).
    public static let maxKeyframes = 64
    /// Objects a keyframe may hold.
    public static let maxObjectsPerKeyframe = 64

    public struct Object: Equatable, Sendable {
        /// Identity across keyframes (the same id is the same object).
        public var id: Int
        /// Short noun phrase, e.g. "red ball".
        public var name: String
        /// `[x, y, w, h]` in canvas pixels. Never clipped (STAGE1.md §2.2): values may lie
        /// outside the canvas; width and height are not negative (a zero-size box is kept as the
        /// LLM wrote it: the benchmark predicates count it as present).
        public var box: [Double]

        public init(id: Int, name: String, box: [Double]) {
            self.id = id
            self.name = name
            self.box = box
        }
    }

    public var prompt: String
    public var reasoning: String?
    public var canvasWidth: Int
    public var canvasHeight: Int
    public var keyframes: [[Object]]
    public var background: String

    public init(prompt: String, reasoning: String? = nil, canvasWidth: Int = 512, canvasHeight: Int = 512,
                keyframes: [[Object]], background: String = "") {
        self.prompt = prompt
        self.reasoning = reasoning
        self.canvasWidth = canvasWidth
        self.canvasHeight = canvasHeight
        self.keyframes = keyframes
        self.background = background
    }
}

/// A layout that cannot be read: where (`source`, a JSON `path` like `keyframes[2][0].box`) and why.
public struct LayoutError: Error, CustomStringConvertible, Equatable {
    public var source: String
    public var path: String
    public var reason: String

    public var description: String {
        path.isEmpty ? "\(source): \(reason)" : "\(source): \(path): \(reason)"
    }
}

extension Layout {
    /// Reads a layout from JSON text; `source` names it in errors (a file path, "planner 'llm'").
    public static func decode(json text: String, source: String) throws(LayoutError) -> Layout {
        let root: JSONValue
        do { root = try JSONValue.parse(text) } catch {
            throw LayoutError(source: source, path: "", reason: "not JSON: \(error)")
        }
        return try decode(root, source: source)
    }

    public static func decode(_ root: JSONValue, source: String) throws(LayoutError) -> Layout {
        func fail(_ path: String, _ reason: String) -> LayoutError { LayoutError(source: source, path: path, reason: reason) }
        guard let object = root.objectValue else { throw fail("", "a layout must be a JSON object, got \(root.typeName)") }
        let known: Set = ["format", "prompt", "reasoning", "canvas", "keyframes", "background"]
        for key in object.keys where !known.contains(key) {
            throw fail(key, "unknown field (known: \(known.sorted().joined(separator: ", ")))")
        }
        if let format = object["format"], format != .string(formatID) {
            throw fail("format", "expected \"\(formatID)\", got \(format.serialized())")
        }
        func string(_ key: String, required: Bool) throws(LayoutError) -> String? {
            guard let value = object[key], value != .null else {
                if required { throw fail(key, "missing") }
                return nil
            }
            guard let text = value.stringValue else { throw fail(key, "must be a string, got \(value.typeName)") }
            return text
        }
        let prompt = try string("prompt", required: false) ?? ""
        let reasoning = try string("reasoning", required: false)
        let background = try string("background", required: false) ?? ""

        var width = 512, height = 512
        if let canvas = object["canvas"] {
            guard let canvas = canvas.objectValue else { throw fail("canvas", "must be an object {\"width\", \"height\"}") }
            for (key, target) in [("width", 0), ("height", 1)] {
                guard let value = canvas[key] else { throw fail("canvas.\(key)", "missing") }
                guard let n = value.intValue, (1...16384).contains(n) else {
                    throw fail("canvas.\(key)", "must be an integer in 1...16384, got \(value.serialized())")
                }
                if target == 0 { width = n } else { height = n }
            }
        }

        guard let frames = object["keyframes"] else { throw fail("keyframes", "missing") }
        guard let frameList = frames.arrayValue else { throw fail("keyframes", "must be an array of keyframes, got \(frames.typeName)") }
        guard !frameList.isEmpty else { throw fail("keyframes", "must hold at least one keyframe") }
        guard frameList.count <= maxKeyframes else { throw fail("keyframes", "\(frameList.count) keyframes, at most \(maxKeyframes)") }
        var keyframes: [[Object]] = []
        for (f, frame) in frameList.enumerated() {
            let framePath = "keyframes[\(f)]"
            guard let items = frame.arrayValue else { throw fail(framePath, "must be an array of objects, got \(frame.typeName)") }
            guard items.count <= maxObjectsPerKeyframe else { throw fail(framePath, "\(items.count) objects, at most \(maxObjectsPerKeyframe)") }
            var objects: [Object] = []
            for (i, item) in items.enumerated() {
                let path = "\(framePath)[\(i)]"
                guard let fields = item.objectValue else { throw fail(path, "must be an object {id, name, box}, got \(item.typeName)") }
                for key in fields.keys where !["id", "name", "box"].contains(key) {
                    throw fail("\(path).\(key)", "unknown field (known: box, id, name)")
                }
                guard let idValue = fields["id"] else { throw fail("\(path).id", "missing") }
                guard let id = idValue.intValue, id >= 0 else { throw fail("\(path).id", "must be a non-negative integer, got \(idValue.serialized())") }
                guard let nameValue = fields["name"] else { throw fail("\(path).name", "missing") }
                guard let name = nameValue.stringValue, !name.trimmingWhitespace.isEmpty else {
                    throw fail("\(path).name", "must be a non-empty string, got \(nameValue.serialized())")
                }
                guard let boxValue = fields["box"] else { throw fail("\(path).box", "missing") }
                guard let box = boxValue.arrayValue?.compactMap(\.numberValue), box.count == 4, boxValue.arrayValue?.count == 4 else {
                    throw fail("\(path).box", "must be [x, y, w, h] (4 numbers), got \(boxValue.serialized())")
                }
                guard box[2] >= 0, box[3] >= 0, box.allSatisfy(\.isFinite) else {
                    throw fail("\(path).box", "width and height must not be negative, got \(boxValue.serialized())")
                }
                objects.append(Object(id: id, name: name, box: box))
            }
            keyframes.append(objects)
        }
        return Layout(prompt: prompt, reasoning: reasoning, canvasWidth: width, canvasHeight: height,
                      keyframes: keyframes, background: background)
    }

    /// The layout as JSON in the lvd layout format.
    public var json: JSONValue {
        var root = JSONObject()
        root["format"] = .string(Layout.formatID)
        root["prompt"] = .string(prompt)
        if let reasoning { root["reasoning"] = .string(reasoning) }
        root["canvas"] = .object(JSONObject(["width": .number(Double(canvasWidth)), "height": .number(Double(canvasHeight))]))
        root["keyframes"] = .array(keyframes.map { frame in
            .array(frame.map { object in
                .object(JSONObject(["id": .number(Double(object.id)), "name": .string(object.name),
                                    "box": .array(object.box.map(JSONValue.number))]))
            })
        })
        root["background"] = .string(background)
        return .object(root)
    }
}
