import Foundation
import LVDFormats
import LVDLLMCache
import LVDPluginKit
import LVDSDK
import LVDStage1

/// Stage-1 planner that asks an LLM over an OpenAI-compatible HTTP API (OpenAI, vLLM,
/// llama.cpp server, Ollama, …) with the project's prompt template, parses the answer in the
/// reference text format, and caches answers in SQLite (n-th request for a caption in one
/// instance → n-th stored answer).
final class LLMPlanner: PlannerPlugin {
    static let info = PluginInfo(
        id: "llm", kind: .planner, name: "LLM planner", version: "1.0.0",
        description: "Plans layouts with an LLM over an OpenAI-compatible chat API, cached in SQLite",
        params: ParamsSchema(params: [
            .init("base_url", .string, default: .string("https://api.openai.com/v1"), description: "API base URL; requests go to {base_url}/chat/completions"),
            .init("model", .string, default: .string("gpt-3.5-turbo"), description: "model name sent to the server (also part of the cache key)"),
            .init("api_key_env", .string, default: .string("OPENAI_API_KEY"), description: "environment variable holding the API key (none sent when unset or empty)"),
            .init("temperature", .number, default: .number(0.25), description: "sampling temperature", minimum: 0, maximum: 2),
            .init("max_tokens", .integer, default: .number(900), description: "answer length limit", minimum: 1, maximum: 100_000),
            .init("timeout", .number, default: .number(120), description: "seconds per request", minimum: 1, maximum: 3600),
            .init("retries", .integer, default: .number(4), description: "further attempts after 429, 5xx or connection errors", minimum: 0, maximum: 20),
            .init("backoff", .number, default: .number(2), description: "seconds before the first retry; doubles each time (a Retry-After of the server is not read)", minimum: 0, maximum: 600),
            .init("parse_retries", .integer, default: .number(1), description: "re-asks, with the parse error quoted, when an answer does not parse", minimum: 0, maximum: 10),
            .init("completion", .boolean, default: .bool(false), description: "use the text-completion endpoint {base_url}/completions instead of chat"),
            .init("cache", .string, default: .string(""), description: "SQLite cache file (default: $XDG_CACHE_HOME/lvd/llm-cache.sqlite); \"off\" disables caching"),
            .init("template", .string, default: .string(PromptTemplate.version), description: "template version in the cache key; only the built-in version can query the LLM"),
        ]))

    private let host: HostContext
    private let baseURL: String
    private let model: String
    private let apiKey: String?
    /// The environment variable the key is read from (for messages).
    private let keyVariable: String
    private let temperature: Double
    private let maxTokens: Int
    private let client: HTTPClient
    private let retries: Int
    private let backoff: Double
    private let parseRetries: Int
    private let completion: Bool
    private let template: String
    private let session: LLMCache.Session?

    init(host: HostContext, params: JSONObject) throws {
        self.host = host
        baseURL = String((params["base_url"]?.stringValue ?? "").reversed().drop { $0 == "/" }.reversed())
        guard baseURL.hasPrefix("http://") || baseURL.hasPrefix("https://") else {
            throw PluginError.invalidArgument("param base_url must be an http:// or https:// URL, got '\(baseURL)'")
        }
        model = params["model"]?.stringValue ?? "gpt-3.5-turbo"
        let keyVariable = params["api_key_env"]?.stringValue ?? "OPENAI_API_KEY"
        self.keyVariable = keyVariable
        apiKey = ProcessInfo.processInfo.environment[keyVariable].flatMap { $0.isEmpty ? nil : $0 }
        temperature = params["temperature"]?.numberValue ?? 0.25
        maxTokens = params["max_tokens"]?.intValue ?? 900
        client = HTTPClient(timeout: Int(params["timeout"]?.numberValue ?? 120))
        retries = params["retries"]?.intValue ?? 4
        backoff = params["backoff"]?.numberValue ?? 2
        parseRetries = params["parse_retries"]?.intValue ?? 1
        completion = params["completion"]?.boolValue ?? false
        template = params["template"]?.stringValue ?? PromptTemplate.version
        let cachePath = params["cache"]?.stringValue ?? ""
        if cachePath == "off" {
            session = nil
        } else {
            let cache = try LLMCache(path: cachePath.isEmpty ? LLMCache.defaultPath() : cachePath)
            session = LLMCache.Session(cache: cache, model: model, template: template)
        }
    }

    func plan(prompt: String) throws -> String {
        let key = Stage1.key(prompt)
        guard !key.isEmpty else { throw PluginError.invalidArgument("the prompt is empty") }
        var layout: Layout
        if let session {
            let (answer, cached) = try session.next(key) { try self.askUntilParsed(key).answer }
            do {
                layout = try ResponseParser.parse(answer, caption: key)
            } catch {
                // A cached answer is never re-queried (§3.3): the row fails with the parse error.
                throw PluginError(LVD_ERR_PARSE, "cached answer for \"\(key)\" does not parse: \(error)")
            }
            host.log(.debug, "\(cached ? "cache hit" : "asked \(model)") for \"\(key)\"")
        } else {
            layout = try askUntilParsed(key).layout
        }
        layout.prompt = key
        return layout.json.serialized(pretty: true)
    }

    /// Asks the LLM; when the answer does not parse, asks again (up to parse_retries times)
    /// with the error quoted back.
    private func askUntilParsed(_ caption: String) throws -> (answer: String, layout: Layout) {
        guard template == PromptTemplate.version else {
            throw PluginError.invalidArgument("template '\(template)' has no cached answer for \"\(caption)\", and only \(PromptTemplate.version) can ask the LLM")
        }
        var messages = PromptTemplate.messages(for: caption)
        var lastError = ""
        for attempt in 0...parseRetries {
            try host.checkCancellation()
            let answer = try ask(messages, caption: caption)
            do {
                let layout = try ResponseParser.parse(answer, caption: caption)
                try Self.checkSizes(layout)
                return (answer, layout)
            } catch {
                lastError = "\(error)"
                host.log(.warning, "answer \(attempt + 1) for \"\(caption)\" does not parse: \(lastError)")
                messages += [("assistant", answer),
                             ("user", "That answer could not be read: \(lastError). Answer again for the same caption, in exactly the format of the examples.")]
            }
        }
        throw PluginError(LVD_ERR_PARSE, "\(model) gave no usable layout for \"\(caption)\" in \(parseRetries + 1) attempts: \(lastError)")
    }

    /// Negative widths or heights cannot be drawn or generated: refused like a parse error.
    static func checkSizes(_ layout: Layout) throws {
        for (index, keyframe) in layout.keyframes.enumerated() {
            for object in keyframe where object.box[2] < 0 || object.box[3] < 0 {
                throw ResponseParseError(reason: "Frame \(index + 1): '\(object.name)' has a negative width or height \(object.box)", line: nil)
            }
        }
    }

    /// One answer: POST with retries and exponential backoff on 429, 5xx and connection errors.
    private func ask(_ messages: [(role: String, content: String)], caption: String) throws -> String {
        let url = baseURL + (completion ? "/completions" : "/chat/completions")
        var body = JSONObject(["model": .string(model), "max_tokens": .number(Double(maxTokens)), "temperature": .number(temperature)])
        if completion {
            body["prompt"] = .string(PromptTemplate.completionPrompt(for: caption))
            body["stop"] = .string("\n\n")
        } else {
            body["messages"] = .array(messages.map { .object(JSONObject(["role": .string($0.role), "content": .string($0.content)])) })
        }
        let payload = Data(JSONValue.object(body).serialized().utf8)
        let headers = apiKey.map { ["Authorization: Bearer \($0)"] } ?? []
        if apiKey == nil && URL(string: baseURL)?.host == "api.openai.com" {
            // Without a key OpenAI answers 401 to everything: say so before the first request.
            throw PluginError(LVD_ERR_INVALID_ARGUMENT, "\(url) needs an API key: set \(keyVariable) (or name another variable with --param api_key_env=NAME)")
        }
        var delay = backoff
        for attempt in 0...retries {
            try host.checkCancellation()
            var retryReason: String
            do {
                let response = try client.post(url, json: payload, headers: headers)
                switch response.status {
                case 200:
                    return try Self.content(of: response.body, url: url, completion: completion)
                case 401, 403:
                    throw PluginError(LVD_ERR_NETWORK, "\(url): HTTP \(response.status): the server refused the API key (set the variable named by api_key_env)")
                case 404:
                    throw PluginError(LVD_ERR_NETWORK, "\(url): HTTP 404: no such endpoint or model '\(model)'\(Self.serverMessage(response.body))")
                case 429, 500...599:
                    retryReason = "HTTP \(response.status)\(Self.serverMessage(response.body))"
                default:
                    throw PluginError(LVD_ERR_NETWORK, "\(url): HTTP \(response.status)\(Self.serverMessage(response.body))")
                }
            } catch let failure as HTTPClient.Failure {
                guard failure.transient else { throw PluginError(LVD_ERR_NETWORK, failure.description) }
                retryReason = failure.reason
            }
            guard attempt < retries else {
                throw PluginError(LVD_ERR_NETWORK, "\(url): \(retryReason); gave up after \(retries + 1) attempts")
            }
            host.log(.warning, "\(url): \(retryReason); retrying in \(delay) s")
            let deadline = Date().addingTimeInterval(delay)
            while Date() < deadline {
                try host.checkCancellation()
                Thread.sleep(forTimeInterval: Swift.min(0.1, Swift.max(0, deadline.timeIntervalSinceNow)))
            }
            delay *= 2
        }
        throw PluginError(LVD_ERR_INTERNAL, "unreachable")
    }

    /// choices[0].message.content (chat) or choices[0].text (completion).
    static func content(of body: Data, url: String, completion: Bool) throws -> String {
        guard let text = String(data: body, encoding: .utf8) else { throw PluginError(LVD_ERR_NETWORK, "\(url): the answer is not UTF-8") }
        let root: JSONValue
        do { root = try JSONValue.parse(text) } catch {
            throw PluginError(LVD_ERR_NETWORK, "\(url): the answer is not JSON (\(error)): \(text.prefix(200))")
        }
        let choice = root.objectValue?["choices"]?.arrayValue?.first?.objectValue
        let content = completion ? choice?["text"]?.stringValue : choice?["message"]?.objectValue?["content"]?.stringValue
        guard let content else {
            throw PluginError(LVD_ERR_NETWORK, "\(url): the answer has no choices[0].\(completion ? "text" : "message.content"): \(text.prefix(200))")
        }
        return content // an empty answer fails to parse and is asked again
    }

    /// ": message" from an OpenAI-style error body, if there is one.
    static func serverMessage(_ body: Data) -> String {
        guard let text = String(data: body, encoding: .utf8), let root = try? JSONValue.parse(text) else { return "" }
        let message = root.objectValue?["error"]?.objectValue?["message"]?.stringValue ?? root.objectValue?["error"]?.stringValue
        return message.map { ": \($0.prefix(200))" } ?? ""
    }
}

@_cdecl("lvd_plugin_entry")
public func lvdPluginEntry() -> UnsafePointer<lvd_plugin_library> {
    PluginExport.library(planners: [LLMPlanner.self])
}
