import LVDFormats
import LVDStage1
import LVDWorld

/// The stage-2 evaluation of one video (STAGE1.md §8): six sampled frames, the tiny world's
/// detector in place of OWL-ViT answering the row's query texts, score filter and class-aware
/// NMS, one box per class where the row says so, the detections turned into a layout, and the
/// stage-1 predicate on it.
public enum Stage2 {
    /// The benchmark protocol's settings (§8.4).
    public static let scoreThreshold = 0.1
    public static let nmsThreshold = 0.1

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// `round_half_even(linspace(0, F − 1, 6))`; videos whose six indices are not distinct
    /// (fewer than 6 frames) are rejected (§8.2).
    public static func evalFrames(_ count: Int) throws(Failure) -> [Int] {
        let indices = Condition.linspace(0, Double(count - 1), 6).map { Int($0.rounded(.toNearestOrEven)) }
        guard count >= 6, Set(indices).count == 6 else {
            throw Failure("a \(count)-frame video cannot be evaluated: the protocol samples 6 distinct frames")
        }
        return indices
    }

    /// A detector query ("a photo of a blue cat"): the class it names (its last word) and the
    /// colour before it, if that is one of the world's colours.
    public struct Query: Equatable, Sendable {
        public var text: String
        public var kind: World.Kind
        public var colour: String?

        public init?(_ text: String) {
            let words = text.lowercased().split(separator: " ").map(String.init)
            guard let last = words.last, let kind = World.Kind(rawValue: last) else { return nil }
            self.text = text
            self.kind = kind
            let before = words.count >= 2 ? words[words.count - 2] : ""
            colour = World.colours.contains { $0.name == before } ? before : nil
        }

        func matches(_ detection: WorldDetector.Detection) -> Bool {
            detection.kind == kind && (colour == nil || detection.colour == colour)
        }
    }

    /// A detection that answers a query: normalised xyxy box, score, the query's index.
    public struct Candidate: Equatable, Sendable {
        public var box: [Double]
        public var score: Double
        public var label: Int

        public init(box: [Double], score: Double, label: Int) {
            self.box = box
            self.score = score
            self.label = label
        }
    }

    /// The row's query texts as queries; a text naming no class of the world is an error.
    public static func queries(_ texts: [String]) throws(Failure) -> [Query] {
        var queries: [Query] = []
        for text in texts {
            guard let query = Query(text) else { throw Failure("detector query '\(text)' names none of the world's classes (\(World.Kind.allCases.map(\.rawValue).joined(separator: ", ")))") }
            queries.append(query)
        }
        return queries
    }

    /// Each detection labelled with the first query it answers (class, and colour when the
    /// query names one); detections answering none are dropped.
    public static func candidates(_ detections: [WorldDetector.Detection], queries: [Query]) -> [Candidate] {
        detections.compactMap { detection in
            queries.firstIndex { $0.matches(detection) }.map { Candidate(box: detection.box, score: detection.score, label: $0) }
        }
    }

    /// Greedy NMS (§8.4 step 3): highest score first (stable on ties), dropping candidates with
    /// IoU ≥ `threshold` against a kept one; IoU without the +1 pixel convention.
    public static func nms(_ candidates: [Candidate], threshold: Double) -> [Candidate] {
        var remaining = candidates.enumerated().sorted { $0.element.score != $1.element.score ? $0.element.score > $1.element.score : $0.offset < $1.offset }.map(\.element)
        var kept: [Candidate] = []
        while let best = remaining.first {
            kept.append(best)
            remaining = remaining.dropFirst().filter { WorldDetector.iou($0.box, best.box) < threshold }
        }
        return kept
    }

    /// §8.4: score filter, class-aware NMS (labels ascending), and with `oneBoxPerClass` the
    /// best box of each label.
    public static func filter(_ candidates: [Candidate], labels: Int, oneBoxPerClass: Bool) -> [Candidate] {
        let scored = candidates.filter { $0.score >= scoreThreshold }
        var kept: [Candidate] = []
        for label in 0..<labels {
            let survivors = nms(scored.filter { $0.label == label }, threshold: nmsThreshold)
            kept += oneBoxPerClass ? Array(survivors.prefix(1)) : survivors
        }
        return kept
    }

    /// §8.5: per sampled frame a keyframe of the surviving detections; the j-th detection of a
    /// label gets id label·100 + j and the label's query text as its name; boxes in the video's
    /// pixels (x, y, w, h), rounded half to even.
    public static func fakeLayout(prompt: String, texts: [String], frames: [[Candidate]], width: Int, height: Int) -> Layout {
        let keyframes = frames.map { detections -> [Layout.Object] in
            var count: [Int: Int] = [:]
            return detections.map { d in
                defer { count[d.label, default: 0] += 1 }
                let (w, h) = (Double(width), Double(height))
                let box = [d.box[0] * w, d.box[1] * h, (d.box[2] - d.box[0]) * w, (d.box[3] - d.box[1]) * h].map { $0.rounded(.toNearestOrEven) }
                return Layout.Object(id: d.label * 100 + count[d.label, default: 0], name: texts[d.label], box: box)
            }
        }
        return Layout(prompt: prompt, canvasWidth: width, canvasHeight: height, keyframes: keyframes, background: "")
    }

    /// What the evaluator saw in one video and its verdict.
    public struct Evaluation: Sendable {
        /// The sampled frame indices.
        public var frames: [Int]
        /// Surviving detections per sampled frame.
        public var detections: [[Candidate]]
        public var layout: Layout
        public var success: Bool

        public var detectionCount: Int { detections.reduce(0) { $0 + $1.count } }

        /// Per sampled frame, [{"label", "box" (normalised xyxy), "score"}].
        public var detectionsJSON: JSONValue {
            .array(detections.map { frame in
                .array(frame.map { c in
                    .object(JSONObject(["label": .number(Double(c.label)), "box": .array(c.box.map(JSONValue.number)), "score": .number(c.score)]))
                })
            })
        }
    }

    /// Evaluates a video (frames × height × width × RGB bytes) for a benchmark row.
    public static func evaluate(row: Benchmark.Row, rgb: [UInt8], frames: Int, width: Int, height: Int,
                                detector: WorldDetector = WorldDetector()) throws(Failure) -> Evaluation {
        let sampled = try evalFrames(frames)
        let queries = try queries(row.detectorTexts)
        let size = width * height * 3
        let kept = sampled.map { f in
            let found = detector.detect(rgb[(f * size)..<((f + 1) * size)], width: width, height: height)
            return filter(candidates(found, queries: queries), labels: queries.count, oneBoxPerClass: row.oneBoxPerClass)
        }
        let layout = fakeLayout(prompt: row.prompt, texts: row.detectorTexts, frames: kept, width: width, height: height)
        return Evaluation(frames: sampled, detections: kept, layout: layout, success: Benchmark.success(row, layout: layout))
    }
}
