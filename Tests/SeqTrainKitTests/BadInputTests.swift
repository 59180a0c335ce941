import Foundation
import XCTest
import SeqTrainKit

/// Bad input is an error that names the problem, never a crash.
final class BadInputTests: XCTestCase {
    func assertThrows(_ expected: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("no error; expected one containing \"\(expected)\"", file: file, line: line)
        } catch {
            XCTAssertTrue("\(error)".contains(expected), "error \"\(error)\" does not contain \"\(expected)\"", file: file, line: line)
        }
    }

    func validFile() throws -> Data {
        var file = SafetensorsFile()
        file.tensors["a"] = StoredTensor(floats: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        file.tensors["b"] = StoredTensor(int64s: [7, 8], shape: [2])
        file.metadata["note"] = "hello"
        return try file.serialized()
    }

    func testSafetensorsRoundTrip() throws {
        let data = try validFile()
        let back = try SafetensorsFile(data: data, source: "x.safetensors")
        XCTAssertEqual(try back.tensor("a", in: "x").floats(), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try back.tensor("a", in: "x").shape, [2, 3])
        XCTAssertEqual(try back.tensor("b", in: "x").integers(), [7, 8])
        XCTAssertEqual(back.metadata, ["note": "hello"])
        XCTAssertEqual((data.count - 8 - 32) % 8, 0, "header padded to 8 bytes")
    }

    func testTruncatedSafetensors() throws {
        let data = try validFile()
        assertThrows("x.safetensors: tensor b: data_offsets") { _ = try SafetensorsFile(data: data.prefix(data.count - 4), source: "x.safetensors") }
        assertThrows("too short") { _ = try SafetensorsFile(data: data.prefix(5), source: "x.safetensors") }
        assertThrows("header length") { _ = try SafetensorsFile(data: data.prefix(40), source: "x.safetensors") }
    }

    func testMalformedSafetensorsHeader() throws {
        func file(header: String, data: [UInt8] = []) -> Data {
            var out = Data()
            var n = UInt64(header.utf8.count).littleEndian
            withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
            out.append(contentsOf: Array(header.utf8))
            out.append(contentsOf: data)
            return out
        }
        assertThrows("not a JSON object") { _ = try SafetensorsFile(data: file(header: "{not json"), source: "m") }
        assertThrows("dtype Q7 is not supported") {
            _ = try SafetensorsFile(data: file(header: #"{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), source: "m")
        }
        assertThrows("needs 8") {
            _ = try SafetensorsFile(data: file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), source: "m")
        }
        assertThrows("overlap") {
            _ = try SafetensorsFile(data: file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#,
                                               data: [0, 0, 0, 0, 0, 0]), source: "m")
        }
        assertThrows("needs dtype, shape and data_offsets") {
            _ = try SafetensorsFile(data: file(header: #"{"a":{"dtype":"F32"}}"#), source: "m")
        }
        // A name twice (a JSON parser would keep one silently), escaped or not.
        assertThrows("m: the header names tensor a twice") {
            _ = try SafetensorsFile(data: file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"\u0061":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                                               data: [0, 0, 0, 0]), source: "m")
        }
        assertThrows("the header names __metadata__ twice") {
            _ = try SafetensorsFile(data: file(header: #"{"__metadata__":{},"__metadata__":{"x":"y"}}"#), source: "m")
        }
        // Nested objects with the same keys are not repeats.
        XCTAssertNoThrow(try SafetensorsFile(data: file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":{"a":"{\"a\": 1}"}}"#,
                                                        data: [0, 0, 0, 0]), source: "m"))
        for shape in ["[2.5]", "[true]", "[-1]", "[1e300]"] {
            assertThrows("tensor a: shape") {
                _ = try SafetensorsFile(data: file(header: #"{"a":{"dtype":"F32","shape":"# + shape + #","data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), source: "m")
            }
        }
        assertThrows("has more elements than any file can hold") {
            _ = try SafetensorsFile(data: file(header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), source: "m")
        }
        assertThrows("data_offsets") {
            _ = try SafetensorsFile(data: file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4]}}"#, data: [0, 0, 0, 0]), source: "m")
        }
    }

    func testChecksumsFindAFlippedByte() throws {
        var file = SafetensorsFile()
        file.tensors["w"] = StoredTensor(floats: (0..<64).map(Float.init), shape: [8, 8])
        file.addChecksums()
        let data = try file.serialized()
        XCTAssertNoThrow(try SafetensorsFile(data: data, source: "c"))
        for position in [data.count - 1, data.count - 200] {
            var flipped = data
            flipped[position] ^= 0x01
            assertThrows("c: tensor w fails its checksum") { _ = try SafetensorsFile(data: flipped, source: "c") }
        }
        // CRC-32 as zlib computes it.
        XCTAssertEqual(DurableFile.checksum(Array("123456789".utf8)), "cbf43926")
        // Lengths that are not multiples of 8 (the kernel takes 8 bytes at a time), values from zlib.
        XCTAssertEqual(DurableFile.checksum(Array(repeating: UInt8(0xAB), count: 1000)), "a670f964")
        XCTAssertEqual(DurableFile.checksum((0..<1280).map { UInt8($0 % 256) }), "1e7a6d24")
    }

    func testMismatchedParameterShape() throws {
        let model = CharLanguageModel(.init(vocabularySize: 5, embeddingSize: 4, hiddenSize: 3, layers: 1))
        assertThrows("tensor head.weight has shape [3, 5], the model expects [5, 3]") {
            try model.parameters.assign("head.weight", shape: [3, 5], floats: [Float](repeating: 0, count: 15))
        }
        assertThrows("unexpected tensor lstm.weight_ih_l1") {
            try model.parameters.assign("lstm.weight_ih_l1", shape: [12, 3], floats: [Float](repeating: 0, count: 36))
        }
        assertThrows("expected 2×3 = 6 ids, got 5") {
            try model.forward(ids: [0, 1, 2, 3, 4], batch: 2, steps: 3, state: model.makeState(batch: 2))
        }
    }

    func testClassIdsOutOfRange() throws {
        let model = CharLanguageModel(.init(vocabularySize: 5, embeddingSize: 4, hiddenSize: 3, layers: 1))
        assertThrows("token id 7 at position 2 is outside the vocabulary 0..<5") {
            try model.forward(ids: [0, 1, 7, 3], batch: 2, steps: 2, state: model.makeState(batch: 2))
        }
        try model.forward(ids: [0, 1, 2, 3], batch: 2, steps: 2, state: model.makeState(batch: 2))
        assertThrows("class id 9 at row") { _ = try model.loss(targets: [0, 9, 1, 1], gradient: true) }
        let loss = try CrossEntropyLoss(classWeights: [1, 1])
        assertThrows("2 class weights for 3 classes") {
            _ = try loss.evaluate(nil, logits: [0, 0, 0], targets: [Int32(0)], rows: 1, classes: 3)
        }
        assertThrows("label_smoothing must be in [0, 1]") { _ = try CrossEntropyLoss(labelSmoothing: 1.5) }
        assertThrows("not in [0, 1]") {
            _ = try BinaryCrossEntropyLoss().evaluate(nil, logits: [0], targets: [2], rows: 1, classes: 1)
        }
    }
}

/// The optimizers PyTorch's reference cases do not cover, on one hand-computed step.
final class OptimizerFormulaTests: XCTestCase {
    func oneStep(_ settings: OptimizerSettings, parameter: Float, gradient: Float, steps: Int = 1) -> Float {
        var layout = ParameterLayout()
        _ = layout.add("p", shape: [1], initialization: .zeros)
        let arena = ParameterArena(layout)
        arena.values[0] = parameter
        let optimizer = Optimizer(settings, parameterCount: arena.count)
        for _ in 0..<steps {
            arena.gradients[0] = gradient
            optimizer.step(arena, learningRate: settings.learningRate)
        }
        return arena.values[0]
    }

    func testRMSpropAdagradAndNesterov() {
        // RMSprop: v = 0.01·0.25, p − lr·g/(√v + eps) = 1 − 0.01·0.5/0.05.
        XCTAssertEqual(oneStep(OptimizerSettings(.rmsprop), parameter: 1, gradient: 0.5), 0.9, accuracy: 1e-6)
        // Adagrad: sum = 0.25, p − lr·g/√sum.
        XCTAssertEqual(oneStep(OptimizerSettings(.adagrad), parameter: 1, gradient: 0.5), 0.99, accuracy: 1e-6)
        // Two Adagrad steps with lr_decay 0.5: second rate 0.01/1.5, sum 0.5.
        var decayed = OptimizerSettings(.adagrad)
        decayed.learningRateDecay = 0.5
        XCTAssertEqual(oneStep(decayed, parameter: 1, gradient: 0.5, steps: 2), 1 - 0.01 - 0.01 / 1.5 * 0.5 / Float(0.5).squareRoot(), accuracy: 1e-6)
        // Nesterov SGD, two steps: buf = g, then 0.9g + g; update g + 0.9·buf each time.
        var nesterov = OptimizerSettings(.sgd, learningRate: 0.1)
        nesterov.momentum = 0.9
        nesterov.nesterov = true
        XCTAssertEqual(oneStep(nesterov, parameter: 0, gradient: 1, steps: 2), -0.1 * (1 + 0.9) - 0.1 * (1 + 0.9 * 1.9), accuracy: 1e-6)
        // SGD weight decay adds wd·p to the gradient.
        var decay = OptimizerSettings(.sgd, learningRate: 0.1)
        decay.weightDecay = 0.5
        XCTAssertEqual(oneStep(decay, parameter: 2, gradient: 0), 2 - 0.1 * 1, accuracy: 1e-6)
    }

    func testInitializationIsReproducibleAndPyTorchShaped() {
        let a = CharLanguageModel(.init(vocabularySize: 7, embeddingSize: 5, hiddenSize: 16, layers: 2))
        let b = CharLanguageModel(.init(vocabularySize: 7, embeddingSize: 5, hiddenSize: 16, layers: 2))
        a.parameters.initialize(seed: 42)
        b.parameters.initialize(seed: 42)
        XCTAssertEqual(a.parameters.values.array, b.parameters.values.array)
        b.parameters.initialize(seed: 43)
        XCTAssertNotEqual(a.parameters.values.array, b.parameters.values.array)
        // LSTM weights uniform in ±1/√H, spread over the whole range.
        let w = a.parameters.namedValues().first { $0.name == "lstm.weight_hh_l1" }!.values
        XCTAssertLessThanOrEqual(w.map(abs).max()!, 0.25)
        XCTAssertGreaterThan(w.map(abs).max()!, 0.24)
        // Embedding N(0, 1): sample variance near 1.
        let e = a.parameters.namedValues().first { $0.name == "embedding.weight" }!.values
        let variance = e.map { $0 * $0 }.reduce(0, +) / Float(e.count)
        XCTAssertEqual(variance, 1, accuracy: 0.5)
    }
}
