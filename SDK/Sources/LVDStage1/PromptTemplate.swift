/// The project's own LLM prompt for Dynamic Scene Layouts (STAGE1.md §3.2): instructions and
/// in-context examples in our wording, answers in the reference's text format. The version is
/// part of every cache key, so answers to another wording are never mixed in.
public enum PromptTemplate {
    public static let version = "lvd-v1"

    public static let instructions = """
        You plan the motion of objects for a short video; you do not make the video. Each caption \
        describes a clip sampled as six frames at two frames per second. For every frame, list the \
        bounding box of each visible object, then name the background.

        The canvas is 512 by 512 pixels. The point [0, 0] is the top-left corner and [512, 512] the \
        bottom-right corner; x grows to the right and y grows downward. Write each frame as a Python \
        list of dictionaries of the form {'id': 0, 'name': 'red ball', 'box': [x, y, w, h]}, where x and \
        y are the top-left corner of the box and w and h its width and height in pixels. Give ids from \
        0 upward in the order objects appear, and keep an object's id the same in every frame, also \
        when it leaves the view and comes back. Put exactly one object in each box; several objects of \
        one kind get separate ids. Leave an object out of a frame in which it is not visible, and write \
        [] for a frame with no visible object. Boxes should not overlap and should stay on the canvas.

        The six frames must cover everything the caption tells, from its beginning to its end. Let \
        the motion obey real-world physics: things fall under gravity, bounce back with less height, \
        and look smaller as they move away from the camera. Make reasonable guesses where the caption \
        leaves details open.

        Begin with one short line "Reasoning:" that explains the plan. Then write the lines "Frame 1:" \
        to "Frame 6:", each followed by its list, and finish with "Background keyword:" and one word or \
        a short phrase for the scene. Write plain text only: no markdown, no dashes or bullets before \
        the frames, no comments.
        """

    public struct Example: Sendable {
        public var caption: String
        public var answer: String
    }

    public static let examples: [Example] = [
        Example(caption: "A cyclist rides to the right while an apple drops from a tree", answer: """
            Reasoning: The cyclist crosses the lower half from left to right at a steady pace. The apple falls from the branch, speeding up under gravity until it lies on the grass.
            Frame 1: [{'id': 0, 'name': 'cyclist', 'box': [20, 290, 110, 130]}, {'id': 1, 'name': 'apple', 'box': [380, 90, 28, 28]}]
            Frame 2: [{'id': 0, 'name': 'cyclist', 'box': [80, 290, 110, 130]}, {'id': 1, 'name': 'apple', 'box': [380, 110, 28, 28]}]
            Frame 3: [{'id': 0, 'name': 'cyclist', 'box': [140, 290, 110, 130]}, {'id': 1, 'name': 'apple', 'box': [380, 170, 28, 28]}]
            Frame 4: [{'id': 0, 'name': 'cyclist', 'box': [200, 290, 110, 130]}, {'id': 1, 'name': 'apple', 'box': [380, 270, 28, 28]}]
            Frame 5: [{'id': 0, 'name': 'cyclist', 'box': [260, 290, 110, 130]}, {'id': 1, 'name': 'apple', 'box': [380, 400, 28, 28]}]
            Frame 6: [{'id': 0, 'name': 'cyclist', 'box': [320, 290, 110, 130]}, {'id': 1, 'name': 'apple', 'box': [380, 440, 28, 28]}]
            Background keyword: orchard
            """),
        Example(caption: "A child throws a tennis ball that bounces once across the court", answer: """
            Reasoning: The ball leaves the hand on the left, flies in an arc to the right, hits the ground in the middle and bounces up lower than before while still moving right.
            Frame 1: [{'id': 0, 'name': 'child', 'box': [10, 250, 90, 200]}, {'id': 1, 'name': 'tennis ball', 'box': [95, 270, 24, 24]}]
            Frame 2: [{'id': 0, 'name': 'child', 'box': [10, 250, 90, 200]}, {'id': 1, 'name': 'tennis ball', 'box': [170, 190, 24, 24]}]
            Frame 3: [{'id': 0, 'name': 'child', 'box': [10, 250, 90, 200]}, {'id': 1, 'name': 'tennis ball', 'box': [245, 300, 24, 24]}]
            Frame 4: [{'id': 0, 'name': 'child', 'box': [10, 250, 90, 200]}, {'id': 1, 'name': 'tennis ball', 'box': [300, 430, 24, 24]}]
            Frame 5: [{'id': 0, 'name': 'child', 'box': [10, 250, 90, 200]}, {'id': 1, 'name': 'tennis ball', 'box': [360, 340, 24, 24]}]
            Frame 6: [{'id': 0, 'name': 'child', 'box': [10, 250, 90, 200]}, {'id': 1, 'name': 'tennis ball', 'box': [420, 400, 24, 24]}]
            Background keyword: tennis court
            """),
        Example(caption: "A bus drives away from the camera down a long road", answer: """
            Reasoning: The bus starts large near the camera and shrinks as it moves toward the horizon in the middle of the picture.
            Frame 1: [{'id': 0, 'name': 'bus', 'box': [120, 200, 280, 240]}]
            Frame 2: [{'id': 0, 'name': 'bus', 'box': [160, 210, 200, 170]}]
            Frame 3: [{'id': 0, 'name': 'bus', 'box': [190, 218, 140, 120]}]
            Frame 4: [{'id': 0, 'name': 'bus', 'box': [212, 224, 96, 82]}]
            Frame 5: [{'id': 0, 'name': 'bus', 'box': [228, 228, 64, 55]}]
            Frame 6: [{'id': 0, 'name': 'bus', 'box': [238, 231, 42, 36]}]
            Background keyword: road
            """),
        Example(caption: "A deer walks out of the forest and a rabbit hides behind a rock", answer: """
            Reasoning: The deer is not yet visible and steps in from the left edge in the third frame. The rabbit sits by the rock and vanishes behind it after the fourth frame.
            Frame 1: [{'id': 0, 'name': 'rabbit', 'box': [330, 380, 50, 45]}]
            Frame 2: [{'id': 0, 'name': 'rabbit', 'box': [345, 380, 50, 45]}]
            Frame 3: [{'id': 1, 'name': 'deer', 'box': [0, 230, 130, 150]}, {'id': 0, 'name': 'rabbit', 'box': [360, 380, 50, 45]}]
            Frame 4: [{'id': 1, 'name': 'deer', 'box': [50, 230, 130, 150]}, {'id': 0, 'name': 'rabbit', 'box': [375, 385, 40, 35]}]
            Frame 5: [{'id': 1, 'name': 'deer', 'box': [100, 230, 130, 150]}]
            Frame 6: [{'id': 1, 'name': 'deer', 'box': [150, 230, 130, 150]}]
            Background keyword: forest
            """),
    ]

    /// The chat messages for `caption` (role, content): instructions, the examples, the query.
    public static func messages(for caption: String) -> [(role: String, content: String)] {
        [("system", instructions)] + examples.flatMap { [("user", "Caption: " + $0.caption), ("assistant", $0.answer)] }
            + [("user", "Caption: " + Stage1.key(caption))]
    }

    /// The text-completion form (§3.2): every message joined by blank lines, then the query with
    /// "Reasoning:" opened; sent with stop "\n\n".
    public static func completionPrompt(for caption: String) -> String {
        let parts = [instructions] + examples.flatMap { ["Caption: " + $0.caption, $0.answer] }
        let text = parts.joined(separator: "\n\n") + "\n\nCaption: " + Stage1.key(caption) + "\nReasoning:"
        return String(scalars: Array(text.unicodeScalars).pythonStripped())
    }
}
