// swift-tools-version:6.0
// lvd: LLM-grounded video diffusion. The `lvd` host, the in-tree plugins (each its own
// shared library) and the tests. The SDK (C ABI headers, the shared runtime, the plugin kit)
// is the local package in SDK/ — see DESIGN.md §1 for why it must be a separate package.
import PackageDescription

let package = Package(
    name: "lvd",
    products: [
        .executable(name: "lvd", targets: ["lvd"]),
        // In-tree plugins: one dynamic library each, found by plugins.d/<id>.json.
        .library(name: "LVDPlannerFile", type: .dynamic, targets: ["LVDPlannerFile"]),
        .library(name: "LVDMethodBaseline", type: .dynamic, targets: ["LVDMethodBaseline"]),
        .library(name: "LVDMethodLVD", type: .dynamic, targets: ["LVDMethodLVD"]),
        .library(name: "LVDMethodBackwardGuidance", type: .dynamic, targets: ["LVDMethodBackwardGuidance"]),
        .library(name: "LVDMethodMultiDiffusion", type: .dynamic, targets: ["LVDMethodMultiDiffusion"]),
        .library(name: "LVDMethodBoxDiff", type: .dynamic, targets: ["LVDMethodBoxDiff"]),
        .library(name: "LVDMethodGLIGEN", type: .dynamic, targets: ["LVDMethodGLIGEN"]),
        .library(name: "LVDPlannerLLM", type: .dynamic, targets: ["LVDPlannerLLM"]),
        .library(name: "LVDPlannerOffline", type: .dynamic, targets: ["LVDPlannerOffline"]),
        // Test-only plugins (no manifest in plugins.d; the tests write one).
        .library(name: "LVDTestGuidanceProbe", type: .dynamic, targets: ["LVDTestGuidanceProbe"]),
    ],
    dependencies: [
        .package(path: "SDK"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .systemLibrary(name: "COpenSSL", path: "Host/Sources/COpenSSL", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CGIF", path: "Host/Sources/CGIF", providers: [.apt(["libgif-dev"])]),
        .systemLibrary(name: "CSQLite", path: "Host/Sources/CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCurl", path: "Plugins/Planners/CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // The LLM answer cache (SQLite): used by the llm planner and by `lvd cache`.
        // One SQLite file in WAL mode: the LLM answer cache and the benchmark results use it.
        .target(name: "LVDSQLite", dependencies: ["CSQLite"], path: "Host/Sources/LVDSQLite"),
        .target(name: "LVDLLMCache", dependencies: ["LVDSQLite"], path: "Plugins/Planners/LLMCache"),
        .target(
            name: "LVDPlannerLLM",
            dependencies: [
                "CCurl", "LVDLLMCache",
                .product(name: "LVDPluginKit", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
                .product(name: "LVDStage1", package: "SDK"),
            ],
            path: "Plugins/Planners/LLM"),
        .target(
            name: "LVDPlannerOffline",
            dependencies: [
                .product(name: "LVDPluginKit", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
                .product(name: "LVDStage1", package: "SDK"),
            ],
            path: "Plugins/Planners/Offline"),
        // The tiny world: renderer (and, later, detector) of the synthetic videos the bundled model learns.
        .target(name: "LVDWorld", dependencies: [.product(name: "LVDFormats", package: "SDK")], path: "Host/Sources/LVDWorld"),
        // The stage-2 benchmark: evaluation protocol, results database, table, chart, contact sheet.
        .target(
            name: "LVDBench",
            dependencies: [
                "LVDSQLite", "LVDWorld", "LVDHost",
                .product(name: "LVDStage1", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
            ],
            path: "Host/Sources/LVDBench"),
        .target(
            name: "LVDHost",
            dependencies: [
                "COpenSSL", "CGIF",
                .product(name: "LVDStage1", package: "SDK"),
                .product(name: "LVDSDK", package: "SDK"),
                .product(name: "LVDRuntime", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Host/Sources/LVDHost"),
        .executableTarget(
            name: "lvd",
            dependencies: [
                "LVDHost", "LVDLLMCache", "LVDWorld", "LVDBench",
                .product(name: "LVDRuntime", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
                .product(name: "LVDStage1", package: "SDK"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Host/Sources/lvd"),
        .target(
            name: "LVDPlannerFile",
            dependencies: [
                .product(name: "LVDPluginKit", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
            ],
            path: "Plugins/Planners/File"),
        .target(
            name: "LVDMethodBaseline",
            dependencies: [
                .product(name: "LVDPluginKit", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
            ],
            path: "Plugins/Methods/Baseline"),
        .target(
            name: "LVDMethodLVD",
            dependencies: [
                .product(name: "LVDGuidance", package: "SDK"),
                .product(name: "LVDPluginKit", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
            ],
            path: "Plugins/Methods/LVD"),
        .target(
            name: "LVDMethodBackwardGuidance",
            dependencies: [
                .product(name: "LVDGuidance", package: "SDK"),
                .product(name: "LVDPluginKit", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
            ],
            path: "Plugins/Methods/BackwardGuidance"),
        .target(
            name: "LVDMethodMultiDiffusion",
            dependencies: [
                .product(name: "LVDPluginKit", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
                .product(name: "LVDStage1", package: "SDK"),
                .product(name: "LVDGrounding", package: "SDK"),
            ],
            path: "Plugins/Methods/MultiDiffusion"),
        .target(
            name: "LVDMethodBoxDiff",
            dependencies: [
                .product(name: "LVDGuidance", package: "SDK"),
                .product(name: "LVDPluginKit", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
                .product(name: "LVDGrounding", package: "SDK"),
            ],
            path: "Plugins/Methods/BoxDiff"),
        .target(
            name: "LVDMethodGLIGEN",
            dependencies: [
                .product(name: "LVDGuidance", package: "SDK"),
                .product(name: "LVDPluginKit", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
                .product(name: "LVDStage1", package: "SDK"),
                .product(name: "LVDGrounding", package: "SDK"),
            ],
            path: "Plugins/Methods/GLIGEN"),
        .target(
            name: "LVDTestGuidanceProbe",
            dependencies: [
                .product(name: "LVDPluginKit", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
            ],
            path: "Tests/Plugins/GuidanceProbe"),
        // Tests depend on the host library only, never on plugin targets (each plugin exports
        // lvd_plugin_entry); they dlopen the built plugin libraries next to the test bundle.
        .testTarget(
            name: "LVDHostTests",
            dependencies: [
                "LVDHost", "CGIF", "LVDWorld", "LVDBench", "LVDSQLite",
                .product(name: "LVDStage1", package: "SDK"),
                .product(name: "LVDGuidance", package: "SDK"),
                .product(name: "LVDPluginKit", package: "SDK"),
                .product(name: "LVDSDK", package: "SDK"),
                .product(name: "LVDRuntime", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
            ],
            path: "Tests/LVDHostTests",
            exclude: ["Fixtures"]),
        .testTarget(
            name: "LVDModelsTests",
            dependencies: [
                .product(name: "LVDSDK", package: "SDK"),
                .product(name: "LVDRuntime", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
            ],
            path: "Tests/LVDModelsTests",
            exclude: ["Fixtures"]),
        .testTarget(
            name: "LVDGroundingTests",
            dependencies: [
                .product(name: "LVDGrounding", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
            ],
            path: "Tests/LVDGroundingTests"),
        .testTarget(
            name: "LVDStage1Tests",
            dependencies: [
                .product(name: "LVDStage1", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
            ],
            path: "Tests/LVDStage1Tests"),
        .testTarget(
            name: "LVDRuntimeTests",
            dependencies: [
                .product(name: "LVDRuntime", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
            ],
            path: "Tests/LVDRuntimeTests",
            exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v5]
)
