import Foundation
import XCTest
import SeqTrainKit

/// A PyTorch-written reference case from Fixtures/ (see Fixtures/make_reference.py).
struct ReferenceCase {
    let file: SafetensorsFile
    let name: String

    init(_ name: String) throws {
        guard let url = Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "safetensors") else {
            throw SeqTrainError("fixture \(name).safetensors is missing from Tests/SeqTrainKitTests/Fixtures")
        }
        file = try SafetensorsFile(contentsOf: url.path)
        self.name = name
    }

    func floats(_ key: String) throws -> [Float] { try file.tensor(key, in: name).floats() }
    func ids(_ key: String) throws -> [Int32] { try file.tensor(key, in: name).integers().map { Int32($0) } }
    func shape(_ key: String) throws -> [Int] { try file.tensor(key, in: name).shape }

    /// Loads every parameter of `arena` from the tensors of the same name (with `prefix`).
    func load(into arena: ParameterArena, prefix: String = "") throws {
        for ref in arena.layout.entries {
            try arena.assign(ref.name, shape: try shape(prefix + ref.name), floats: try floats(prefix + ref.name))
        }
    }

    /// Checks every gradient of `arena` (scaled by `scale`) against "grad.{name}".
    func assertGradients(_ arena: ParameterArena, scale: Float, file: StaticString = #filePath, line: UInt = #line) throws {
        for (name, _, values) in arena.namedValues(from: arena.gradients) {
            assertClose(values.map { $0 * scale }, try floats("grad." + name), "grad.\(name)", file: file, line: line)
        }
    }

    /// Checks every parameter of `arena` against "after.{name}".
    func assertParametersAfterSteps(_ arena: ParameterArena, file: StaticString = #filePath, line: UInt = #line) throws {
        for (name, _, values) in arena.namedValues() {
            assertClose(values, try floats("after." + name), "after.\(name)", file: file, line: line)
        }
    }
}

/// Max abs difference ≤ 1e-5, or relative ≤ 1e-4 where values are large.
func assertClose(_ actual: [Float], _ expected: [Float], _ what: String, absolute: Float = 1e-5, relative: Float = 1e-4,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(what): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    var worst: Float = 0, worstIndex = -1
    for i in 0..<actual.count {
        let d = abs(actual[i] - expected[i])
        let allowed = max(absolute, relative * abs(expected[i]))
        if !(d <= allowed), d - allowed >= worst || worstIndex < 0 { worst = d - allowed; worstIndex = i }
    }
    if worstIndex >= 0 {
        XCTFail("\(what): element \(worstIndex) is \(actual[worstIndex]), expected \(expected[worstIndex])", file: file, line: line)
    }
}

func pointer<T>(_ array: [T], _ body: (UnsafePointer<T>) throws -> Void) rethrows {
    try array.withUnsafeBufferPointer { try body($0.baseAddress!) }
}
