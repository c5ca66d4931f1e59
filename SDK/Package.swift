// swift-tools-version:6.0
// The lvd plugin SDK: the C ABI headers, the one shared runtime (libLVDRuntime.so) and
// Swift conveniences for plugin authors. A separate package so that its `.dynamic` product
// is linked as ONE shared library by the host and every plugin (see DESIGN.md §1).
import PackageDescription

let package = Package(
    name: "LVDSDK",
    products: [
        .library(name: "LVDSDK", targets: ["LVDSDK"]),
        .library(name: "LVDRuntime", type: .dynamic, targets: ["LVDRuntime", "LVDModels"]),
        .library(name: "LVDPluginKit", targets: ["LVDPluginKit"]),
        .library(name: "LVDFormats", targets: ["LVDFormats"]),
        .library(name: "LVDStage1", targets: ["LVDStage1"]),
        .library(name: "LVDGrounding", targets: ["LVDGrounding"]),
        .library(name: "LVDGuidance", targets: ["LVDGuidance"]),
    ],
    targets: [
        // Header-only C target: Sources/LVDSDK/include is a link to SDK/include.
        .target(name: "LVDSDK", path: "Sources/LVDSDK"),
        // Vector kernels in C: clang vectorises them, built per instruction set (target_clones).
        .target(name: "LVDKernels", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=fast"])]),
        .target(name: "LVDRuntime", dependencies: ["LVDSDK", "LVDFormats", "LVDKernels"]),
        // Models in diffusers' structure (one file per model family), in the same shared library.
        .target(name: "LVDModels", dependencies: ["LVDRuntime", "LVDFormats", "LVDSDK"]),
        // Built over the C tables only: a Swift plugin links this, never the host.
        .target(name: "LVDPluginKit", dependencies: ["LVDSDK", "LVDFormats"]),
        .target(name: "LVDFormats"),
        // Stage 1 shared by the host and planners: the LLM answer parser, conditions, the benchmark.
        .target(name: "LVDStage1", dependencies: ["LVDFormats"]),
        // Layout machinery the grounding methods share: generation prompt, phrase tokens, rasterisation.
        .target(name: "LVDGrounding", dependencies: ["LVDStage1", "LVDFormats"]),
        // Cross-attention guidance for methods, in-tree and out of tree: the layout's objects with
        // their prompt tokens and box masks, the guidance loop of METHODS.md §4.7, LVD's and the
        // ratio energy, and a whole guided generation around a method's energy.
        .target(name: "LVDGuidance", dependencies: ["LVDPluginKit", "LVDFormats", "LVDStage1", "LVDGrounding"]),
    ],
    swiftLanguageModes: [.v5]
)
