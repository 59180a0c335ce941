// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "seqtrain",
    products: [
        .executable(name: "seqtrain", targets: ["SeqTrainCLI"]),
        .library(name: "SeqTrainKit", targets: ["SeqTrainKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        // .npz archives are zip files; on Linux it inflates with zlib (zlib1g-dev).
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    ],
    targets: [
        // C targets: OpenBLAS's cblas.h and Open MPI's mpi.h through pkg-config, and the shim over MPI.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev", "pkg-config"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin", "pkg-config"])]),
        .target(name: "MPIShim", dependencies: ["CMPI"]),
        .target(name: "CKernels"),
        .target(
            name: "SeqTrainKit",
            dependencies: [
                "CBLAS", "MPIShim", "CKernels",
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ]
        ),
        .executableTarget(
            name: "SeqTrainCLI",
            dependencies: [
                "SeqTrainKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "SeqTrainKitTests",
            dependencies: ["SeqTrainKit"],
            resources: [.copy("Fixtures")]
        ),
    ]
)
