import Foundation
import LVDFormats
import LVDModels
import XCTest

/// Parity with the reference's CLIPTokenizer (transformers 4.29.2, pure Python, no ftfy), ids made by
///     .venv-tok/bin/python Scripts/make_tokenizer_fixtures.py ../shared/data/text-to-video-lvd-zs/tokenizer Tests/LVDModelsTests/Fixtures/tokenizer
/// Exact equality of all 77 ids per string.
final class TokenizerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/tokenizer").path

    func expected(_ name: String) throws -> [(String, [Int])] {
        let root = try JSONValue.parse(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(Self.fixtures)/\(name)")))).objectValue!
        return root.map { ($0.key, $0.value.arrayValue!.compactMap(\.intValue)) }
    }

    func assertParity(_ tokenizer: CLIPTokenizer, _ cases: [(String, [Int])], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertGreaterThanOrEqual(cases.count, 16)
        for (text, ids) in cases {
            XCTAssertEqual(tokenizer.encode(text).ids, ids, "\(text.debugDescription)", file: file, line: line)
        }
    }

    func testTinyTokenizerMatchesTheReference() throws {
        let tokenizer = try CLIPTokenizer(folder: Self.fixtures + "/tiny")
        XCTAssertEqual(tokenizer.padID, tokenizer.vocabulary["!"], "pad token from special_tokens_map.json")
        assertParity(tokenizer, try expected("tiny_ids.json"))
    }

    func testRealVocabularyMatchesTheReference() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data/text-to-video-lvd-zs/tokenizer").path
        guard FileManager.default.fileExists(atPath: folder + "/vocab.json") else { throw XCTSkip("../shared is absent") }
        let tokenizer = try CLIPTokenizer(folder: folder)
        XCTAssertEqual([tokenizer.bosID, tokenizer.eosID, tokenizer.padID], [49406, 49407, 0])
        assertParity(tokenizer, try expected("real_ids.json"))
        let encoding = tokenizer.encode("a red ball moving")
        XCTAssertEqual(Array(encoding.tokens[1...4]), ["a</w>", "red</w>", "ball</w>", "moving</w>"], "token strings, for phrase matching")
        XCTAssertEqual(encoding.eosIndex, 5)
        XCTAssertEqual(tokenizer.tokenStrings("catdogbird zzqx"), tokenizer.tokenIDs("catdogbird zzqx").map { id in
            tokenizer.vocabulary.first { $0.value == id }!.key
        })
    }

    func testTokenizerJSONGivesTheSameIDs() throws {
        // The same tiny vocabulary as a tokenizers-library file (merges as arrays, the newer form).
        let vocab = try String(contentsOfFile: Self.fixtures + "/tiny/vocab.json", encoding: .utf8)
        let merges = try String(contentsOfFile: Self.fixtures + "/tiny/merges.txt", encoding: .utf8)
            .split(separator: "\n").dropFirst().map { line -> JSONValue in
                .array(line.split(separator: " ").map { .string(String($0)) })
            }
        let json = "{\"model\": {\"type\": \"BPE\", \"vocab\": \(vocab), \"merges\": \(JSONValue.array(merges).serialized())}}"
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lvd-tok-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try json.write(to: folder.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        try #"{"pad_token": "!"}"#.write(to: folder.appendingPathComponent("special_tokens_map.json"), atomically: true, encoding: .utf8)
        assertParity(try CLIPTokenizer(folder: folder.path), try expected("tiny_ids.json"))
    }

    func testWordsOutsideTheVocabularyFallBackToPieces() throws {
        let tokenizer = try CLIPTokenizer(folder: Self.fixtures + "/tiny")
        let ids = tokenizer.tokenIDs("qwzxv frobnicated")
        XCTAssertFalse(ids.isEmpty)
        XCTAssertFalse(ids.contains(tokenizer.eosID), "every piece is in the vocabulary (bytes at worst)")
    }

    func testMissingOrBrokenTokenizerFiles() {
        XCTAssertThrowsError(try CLIPTokenizer(folder: "/nonexistent/tokenizer")) {
            XCTAssertTrue("\($0)".contains("no vocab.json + merges.txt and no tokenizer.json") || "\($0)".contains("cannot read"), "\($0)")
        }
    }
}
