// swift-tools-version:6.0
// An lvd method plugin in Swift, built outside the lvd repository: copy this folder and point
// the dependency at your copy of the SDK (a path, or the repository's URL).
import PackageDescription

let package = Package(
    name: "ExampleCentre",
    products: [
        // One shared library; its manifest (example-centre.json) names it.
        .library(name: "ExampleCentre", type: .dynamic, targets: ["ExampleCentre"]),
    ],
    dependencies: [
        .package(path: "../.."),
    ],
    targets: [
        .target(
            name: "ExampleCentre",
            dependencies: [
                .product(name: "LVDPluginKit", package: "SDK"),
                .product(name: "LVDGuidance", package: "SDK"),
                .product(name: "LVDFormats", package: "SDK"),
                .product(name: "LVDSDK", package: "SDK"),
            ]),
    ],
    swiftLanguageModes: [.v5]
)
