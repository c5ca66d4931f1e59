import Foundation
import LVDFormats
import LVDRuntime
import XCTest

/// Seeded noise against torch.randn (Fixtures/randn.json, made by Scripts/make_noise_fixtures.py):
/// within 2e-6 absolute on every compared value (torch's AVX2 path uses SLEEF's log/sin/cos).
final class NoiseTests: XCTestCase {
    func testMatchesTorchRandn() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/randn.json")
        let root = try JSONValue.parse(bytes: [UInt8](try Data(contentsOf: url))).objectValue!
        for entry in root["cases"]!.arrayValue!.compactMap(\.objectValue) {
            let seed = UInt64(entry["seed"]!.numberValue!), shape = entry["shape"]!.arrayValue!.compactMap(\.intValue)
            let values = try Noise.randn(shape, seed: seed).toArray()
            let head = entry["head"]!.arrayValue!.compactMap { $0.numberValue.map(Float.init) }
            let tail = entry["tail"]!.arrayValue!.compactMap { $0.numberValue.map(Float.init) }
            for (ours, theirs) in zip(values.prefix(head.count), head) { XCTAssertEqual(ours, theirs, accuracy: 2e-6, "seed \(seed) \(shape)") }
            for (ours, theirs) in zip(values.suffix(tail.count), tail) { XCTAssertEqual(ours, theirs, accuracy: 2e-6, "seed \(seed) \(shape) tail") }
            XCTAssertEqual(values.reduce(0.0) { $0 + Double($1) }, entry["sum"]!.numberValue!, accuracy: 1e-3, "seed \(seed) sum")
        }
    }

    func testSameSeedSameNoiseOtherSeedOtherNoise() throws {
        XCTAssertEqual(try Noise.randn([64], seed: 7).toArray(), try Noise.randn([64], seed: 7).toArray())
        XCTAssertNotEqual(try Noise.randn([64], seed: 7).toArray(), try Noise.randn([64], seed: 8).toArray())
    }
}
