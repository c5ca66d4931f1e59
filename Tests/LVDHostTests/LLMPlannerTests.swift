import Foundation
import LVDFormats
import LVDHost
import XCTest

/// The llm planner against a real HTTP server on loopback that replays recorded answers, the
/// way users start it: from the plugin library, in process and through the `lvd` binary.
final class LLMPlannerTests: XCTestCase {
    static let answer = """
        Reasoning: The dog runs from left to right.
        Frame 1: [{'id': 0, 'name': 'dog', 'box': [0, 300, 100, 80]}]
        Frame 2: [{'id': 0, 'name': 'dog', 'box': [80, 300, 100, 80]}]
        Frame 3: [{'id': 0, 'name': 'dog', 'box': [160, 300, 100, 80]}]
        Frame 4: [{'id': 0, 'name': 'dog', 'box': [240, 300, 100, 80]}]
        Frame 5: [{'id': 0, 'name': 'dog', 'box': [320, 300, 100, 80]}]
        Frame 6: [{'id': 0, 'name': 'dog', 'box': [400, 300, 100, 80]}]
        Background keyword: park
        """

    static func answer(x: Int) -> String { answer.replacingOccurrences(of: "[0, 300", with: "[\(x), 300") }

    func planner(_ server: ReplayServer, _ params: [String]) throws -> PlannerInstance {
        let catalog = PluginCatalog(searchPath: .standard(pluginPaths: [TestPaths.repoRoot + "/plugins.d"], environment: ["HOME": TestConfigHome.path]))
        let plugin = try PluginLoader().load(catalog.require(id: "llm", kind: .planner))
        return try PlannerInstance(plugin: plugin, params: try plugin.resolveParams(["base_url=\(server.baseURL)", "backoff=0"] + params))
    }

    func testCacheGivesTheNthAnswerPerInstanceAndSparesTheServer() throws {
        let temp = try TempDir()
        let server = try ReplayServer(answers: ["a dog runs": [Self.answer(x: 1), Self.answer(x: 2)]])
        defer { server.stop() }
        let params = ["cache=\(temp.file("cache.sqlite"))"]
        let first = try planner(server, params)
        XCTAssertEqual(try first.planLayout(prompt: " a dog runs. ").keyframes[0][0].box[0], 1, "key(): stripped, trailing dot removed")
        XCTAssertEqual(try first.planLayout(prompt: "a dog runs").keyframes[0][0].box[0], 2, "the second request gets the second answer")
        XCTAssertEqual(server.requests.count, 2)
        // A new instance (a new pass) reads both from the cache, in order, without asking.
        let second = try planner(server, params)
        XCTAssertEqual(try second.planLayout(prompt: "a dog runs").keyframes[0][0].box[0], 1)
        XCTAssertEqual(try second.planLayout(prompt: "a dog runs").keyframes[0][0].box[0], 2)
        XCTAssertEqual(server.requests.count, 2, "cache hits never reach the server")
        // Another model is another key.
        server.enqueue(.answer(Self.answer(x: 7)))
        XCTAssertEqual(try planner(server, params + ["model=other"]).planLayout(prompt: "a dog runs").keyframes[0][0].box[0], 7)
        let stats = try lvd(["cache", "stats", "--cache", temp.file("cache.sqlite")])
        XCTAssertTrue(stats.stdout.contains("gpt-3.5-turbo  lvd-v1  1 prompts, 2 answers"), stats.output)
        XCTAssertTrue(stats.stdout.contains("other  lvd-v1  1 prompts, 1 answers"), stats.output)
    }

    func testRequestCarriesTheTemplateAndKeyButNeverLogsIt() throws {
        let server = try ReplayServer(answers: ["a dog runs": [Self.answer]])
        defer { server.stop() }
        let result = try lvd(["plan", "a dog runs", "--planner", "llm", "--param", "base_url=\(server.baseURL)", "--param", "cache=off",
                              "--param", "api_key_env=LVD_TEST_KEY", "--log-level", "trace"], environment: ["LVD_TEST_KEY": "sk-very-secret"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertFalse(result.output.contains("sk-very-secret"), "the key is never printed or logged")
        let request = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(request.path, "/v1/chat/completions")
        XCTAssertEqual(request.headers["authorization"], "Bearer sk-very-secret")
        let body = try XCTUnwrap(request.json)
        XCTAssertEqual(body["model"], .string("gpt-3.5-turbo"))
        XCTAssertEqual(body["temperature"], .number(0.25))
        XCTAssertEqual(body["max_tokens"], .number(900))
        let messages = try XCTUnwrap(body["messages"]?.arrayValue?.compactMap(\.objectValue))
        XCTAssertEqual(messages.count, 1 + 2 * 4 + 1, "system, four examples, the query")
        XCTAssertEqual(messages.first?["role"], .string("system"))
        XCTAssertEqual(messages.last?["content"], .string("Caption: a dog runs"))
        let layout = try Layout.decode(json: result.stdout, source: "stdout")
        XCTAssertEqual(layout.background, "park")
        XCTAssertEqual(layout.keyframes.count, 6)
    }

    func testServerFailuresAreRetriedOrNamed() throws {
        let server = try ReplayServer(answers: ["a dog runs": Array(repeating: Self.answer, count: 10)])
        defer { server.stop() }
        func plan(_ params: [String] = []) throws -> Layout { try planner(server, ["cache=off", "retries=2"] + params).planLayout(prompt: "a dog runs") }
        func failure(_ params: [String] = []) -> String {
            do { _ = try plan(params); return "" } catch { return "\(error)" }
        }
        server.enqueue(.status(500, #"{"error": {"message": "overloaded"}}"#), .status(429, "{}"))
        XCTAssertEqual(try plan().keyframes.count, 6, "500 and 429 are retried")
        server.enqueue(.drop)
        XCTAssertEqual(try plan().keyframes.count, 6, "a dropped connection is retried")
        server.enqueue(.status(503, "{}"), .status(503, "{}"), .status(503, #"{"error": {"message": "down for maintenance"}}"#))
        let gaveUp = failure()
        XCTAssertTrue(gaveUp.contains("\(server.baseURL)/chat/completions: HTTP 503: down for maintenance; gave up after 3 attempts"), gaveUp)
        server.enqueue(.status(401, "{}"))
        XCTAssertTrue(failure().contains("\(server.baseURL)/chat/completions: HTTP 401: the server refused the API key"))
        server.enqueue(.status(404, #"{"error": {"message": "model not found"}}"#))
        XCTAssertTrue(failure().contains("HTTP 404: no such endpoint or model 'gpt-3.5-turbo': model not found"))
        server.enqueue(.body("<html>oops</html>"))
        XCTAssertTrue(failure().contains("the answer is not JSON"))
        server.enqueue(.bytes([0x7B, 0xFF, 0xFE, 0x7D]))
        XCTAssertTrue(failure().contains("the answer is not UTF-8"))
        server.enqueue(.bytes(Array(repeating: 0x20, count: 65 << 20)))
        XCTAssertTrue(failure().contains("answer larger than 64 MiB"), "a huge answer is refused, not buffered")
        server.enqueue(.delay(3))
        let slow = failure(["timeout=1", "retries=0"])
        XCTAssertTrue(slow.contains(server.baseURL) && slow.lowercased().contains("timeout"), slow)
        // An unparseable answer is asked again with the error quoted back.
        let before = server.requests.count
        server.enqueue(.answer("Frame 1: [{'id': 0, 'name': 'dog', 'box': [0, 0, 1]}]"))
        XCTAssertEqual(try plan().keyframes.count, 6)
        let reask = server.requests[before + 1].json?["messages"]?.arrayValue?.last?.objectValue?["content"]?.stringValue ?? ""
        XCTAssertTrue(reask.contains("That answer could not be read: \"Frame 2:\" is missing"), reask)
        server.enqueue(.answer("no layout"), .answer(""))
        let unusable = failure()
        XCTAssertTrue(unusable.contains("gave no usable layout for \"a dog runs\" in 2 attempts"), unusable)
        // Nothing listens: a connection error names the URL.
        let closed = try ReplayServer()
        let url = closed.baseURL
        closed.stop()
        XCTAssertThrowsError(try planner(closed, ["cache=off", "retries=1"]).planLayout(prompt: "x")) {
            XCTAssertEqual("\($0)".components(separatedBy: url).count, 2, "the URL named once: \($0)")
            XCTAssertTrue("\($0)".contains("gave up after 2 attempts"), "\($0)")
        }
        // OpenAI itself without a key: said before any request (a local server needs none).
        let catalog = PluginCatalog(searchPath: .standard(pluginPaths: [TestPaths.repoRoot + "/plugins.d"], environment: ["HOME": TestConfigHome.path]))
        let plugin = try PluginLoader().load(catalog.require(id: "llm", kind: .planner))
        let openAI = try PlannerInstance(plugin: plugin, params: try plugin.resolveParams(["cache=off", "api_key_env=LVD_TEST_UNSET_KEY"]))
        XCTAssertThrowsError(try openAI.planLayout(prompt: "x")) {
            XCTAssertTrue("\($0)".contains("https://api.openai.com/v1/chat/completions needs an API key: set LVD_TEST_UNSET_KEY"), "\($0)")
        }
    }

    func testCompletionEndpointUsesTheFlattenedPrompt() throws {
        let server = try ReplayServer(answers: ["a dog runs": [Self.answer]])
        defer { server.stop() }
        let layout = try planner(server, ["cache=off", "completion=true"]).planLayout(prompt: "a dog runs")
        XCTAssertEqual(layout.keyframes.count, 6)
        let request = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(request.path, "/v1/completions")
        XCTAssertEqual(request.json?["stop"], .string("\n\n"))
        XCTAssertTrue(request.json?["prompt"]?.stringValue?.hasSuffix("\n\nCaption: a dog runs\nReasoning:") == true)
    }

    /// The reference GPT-3.5 answers replayed over HTTP give the published stage-1 table.
    func testStage1ThroughTheLLMPlannerReproducesTheTable() throws {
        guard let shared = TestPaths.shared else { throw XCTSkip("../shared is not beside the checkout") }
        let file = shared + "/data/lvd-benchmark/cache_lvd_v0.1_gpt-3.5-turbo.json"
        let object = try XCTUnwrap(try JSONValue.parse(String(contentsOfFile: file, encoding: .utf8)).objectValue)
        var answers: [String: [String]] = [:]
        for key in object.keys { answers[key] = object[key]?.arrayValue?.compactMap(\.stringValue) }
        let server = try ReplayServer(answers: answers)
        defer { server.stop() }
        let result = try lvd(["bench", "stage1", "--planner", "llm", "--param", "base_url=\(server.baseURL)", "--param", "cache=off", "--json"])
        XCTAssertEqual(result.status, 0, String(result.output.suffix(2000)))
        let root = try XCTUnwrap(try JSONValue.parse(result.stdout).objectValue)
        XCTAssertEqual(root["tasks"]?.objectValue?["numeracy"], .number(100))
        XCTAssertEqual(root["tasks"]?.objectValue?["dynamics"], .number(73))
        XCTAssertEqual(root["tasks"]?.objectValue?["sequential"], .number(15))
        XCTAssertEqual(root["successes"], .number(388))
        XCTAssertEqual(server.requests.count, 500)
    }

    /// The README's path: import the reference answers under their template, replay them through
    /// the llm planner with nothing listening at its URL.
    func testImportedReferenceAnswersReplayWithoutTheNetwork() throws {
        guard let shared = TestPaths.shared else { throw XCTSkip("../shared is not beside the checkout") }
        let temp = try TempDir()
        let file = shared + "/data/lvd-benchmark/cache_lvd_v0.1_gpt-3.5-turbo.json"
        let cache = temp.file("c.sqlite")
        XCTAssertEqual(try lvd(["cache", "import", file, "--model", "gpt-3.5-turbo", "--template", "v0.1", "--cache", cache]).status, 0)
        let result = try lvd(["bench", "stage1", "--planner", "llm", "--param", "template=v0.1", "--param", "cache=\(cache)",
                              "--param", "base_url=http://127.0.0.1:9/v1", "--json"])
        XCTAssertEqual(result.status, 0, String(result.output.suffix(2000)))
        XCTAssertEqual(try JSONValue.parse(result.stdout).objectValue?["successes"], .number(388))
        // A prompt the cache lacks is refused for that template, not sent anywhere.
        let miss = try lvd(["plan", "a dog", "--planner", "llm", "--param", "template=v0.1", "--param", "cache=\(cache)",
                            "--param", "base_url=http://127.0.0.1:9/v1"])
        XCTAssertEqual(miss.status, 1)
        XCTAssertTrue(miss.stderr.contains("template 'v0.1' has no cached answer for \"a dog\""), miss.stderr)
    }

    func testTwoProcessesWritingOneCacheLoseNothing() throws {
        guard let shared = TestPaths.shared else { throw XCTSkip("../shared is not beside the checkout") }
        let temp = try TempDir()
        let file = shared + "/data/lvd-benchmark/cache_lvd_v0.1_gpt-3.5-turbo.json"
        let runs = (0..<2).map { _ in
            Thread.detachNewThreadWithResult {
                try? lvd(["cache", "import", file, "--model", "m", "--template", "v0.1", "--cache", temp.file("c.sqlite")])
            }
        }
        for run in runs { XCTAssertEqual(run.wait()?.status, 0, run.wait()?.output ?? "") }
        let stats = try lvd(["cache", "stats", "--cache", temp.file("c.sqlite"), "--json"])
        XCTAssertEqual(try JSONValue.parse(stats.stdout).arrayValue?.first?.objectValue?["answers"], .number(1000), stats.output)
        // Export after one import of the same file is byte-identical to the reference (STAGE1.md §6.2).
        XCTAssertEqual(try lvd(["cache", "import", file, "--model", "one", "--template", "v0.1", "--cache", temp.file("c.sqlite")]).status, 0)
        let export = try lvd(["cache", "export", "--model", "one", "--template", "v0.1", "--cache", temp.file("c.sqlite"), "-o", temp.file("out.json")])
        XCTAssertEqual(export.status, 0, export.output)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: temp.file("out.json"))), try Data(contentsOf: URL(fileURLWithPath: file)))
        let bad = try lvd(["cache", "import", temp.file("out.json") + ".missing", "--model", "m", "--template", "t", "--cache", temp.file("c.sqlite")])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("out.json.missing: cannot read the cache file"), bad.stderr)
        try temp.write("junk.sqlite", "not a database at all, just text that is long enough to be a header")
        let junk = try lvd(["cache", "stats", "--cache", temp.file("junk.sqlite")])
        XCTAssertEqual(junk.status, 1)
        XCTAssertTrue(junk.stderr.contains("junk.sqlite"), junk.stderr)
    }
}
