// swift-tools-version:6.0
// An lvd method plugin in Swift, built outside the lvd repository: copy this folder and point
// the path below at the SDK/ folder of an lvd checkout (SwiftPM cannot take a package from a
// subfolder of a repository by URL, so it is a path).
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
