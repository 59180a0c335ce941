import XCTest
import SeqTrainKit

extension GradientCheckTests {
    /// Every pooling over samples of different lengths, by finite differences: the parameters and
    /// the inputs of the valid steps; steps past a sample's length get no gradient.
    func testSequenceClassifierPoolingOverValidSteps() throws {
        for pooling in Pooling.allCases {
            for cell in RecurrentCell.allCases {
                let (B, T, I, C) = (3, 5, 2, 3)
                let model = SequenceClassifier(cell: cell, inputSize: I, hiddenSize: 4, layers: 2, labels: C, pooling: pooling)
                model.parameters.initialize(seed: 9)
                let x = FloatBuffer()
                x.copy(from: randomValues(B * T * I, seed: 10, scale: 1.5))
                let lengths = [5, 2, 3]
                let weights = randomValues(B * C, seed: 11)
                func loss() -> Double {
                    model.forward(x.pointer, batch: B, steps: T, lengths: lengths)
                    return zip(model.logits.array, weights).reduce(0) { $0 + Double($1.0 * $1.1) }
                }
                // A smaller step for max pooling, so that a perturbation does not move the maximum to another step.
                try checkParameters(model.parameters, what: "\(pooling) \(cell) ", step: pooling == .max ? 1e-3 : 1e-2, loss: loss) {
                    _ = loss()
                    weights.withUnsafeBufferPointer { model.backward($0.baseAddress!) }
                }
                // Outputs past a sample's length do not change the logits.
                _ = loss()
                let before = model.logits.array
                x[(1 * T + 4) * I] += 10
                _ = loss()
                XCTAssertEqual(model.logits.array, before, "\(pooling) \(cell): a step past the length changed the logits")
            }
        }
    }
}

/// Variable lengths: a padded sample gives the loss and gradients of the same sample cut to its length.
final class ClassifierModelTests: XCTestCase {
    func testPaddedSamplesEqualSamplesCutToTheirLength() throws {
        let (T, I, C) = (6, 2, 3)
        let lengths = [6, 3]
        let r = CounterRandom(seed: 2, purpose: .synthetic)
        var x = (0..<(2 * T * I)).map { 2 * r.uniform(stream: 1, index: UInt64($0)) - 1 }
        for t in 3..<T { for f in 0..<I { x[(T + t) * I + f] = 0 } }   // sample 1: zeros past its length, as the reader leaves them
        for pooling in Pooling.allCases {
            let padded = SequenceClassifier(cell: .lstm, inputSize: I, hiddenSize: 5, labels: C, pooling: pooling)
            padded.parameters.initialize(seed: 3)
            let ce = try CrossEntropyLoss()
            let targets: [Int32] = [2, 0]
            let d = FloatBuffer(count: 2 * C)
            padded.parameters.zeroGradients()
            pointer(x) { padded.forward($0, batch: 2, steps: T, lengths: lengths) }
            let total = try withPointer(targets) { try ce.evaluate(d.pointer, logits: padded.logits.pointer, targets: $0, rows: 2, classes: C) }
            padded.backward(d.pointer)

            // The same two samples one at a time, each cut to its length.
            let cut = SequenceClassifier(cell: .lstm, inputSize: I, hiddenSize: 5, labels: C, pooling: pooling)
            cut.parameters.values.copy(from: padded.parameters.values.array)
            cut.parameters.zeroGradients()
            var cutTotal = LossTotal()
            for (s, length) in lengths.enumerated() {
                let sample = Array(x[(s * T * I)..<(s * T * I + length * I)])
                pointer(sample) { cut.forward($0, batch: 1, steps: length) }
                let one = FloatBuffer(count: C)
                cutTotal = cutTotal + (try withPointer([targets[s]]) { try ce.evaluate(one.pointer, logits: cut.logits.pointer, targets: $0, rows: 1, classes: C) })
                cut.backward(one.pointer)
            }
            XCTAssertEqual(total.sum, cutTotal.sum, accuracy: 1e-5, "\(pooling)")
            assertClose(padded.parameters.gradients.array, cut.parameters.gradients.array, "\(pooling): gradients", absolute: 1e-5)
        }
    }

    /// `seqtrain bench --classifier [--cell C] [--layers N] [--bidirectional]` times the model the
    /// sequence_classifier kind builds from the config with those keys: the same stack, the same
    /// parameter names and shapes (PyTorch's, `layers.0.weight_ih_l1_reverse`), the same head.
    func testBenchmarkClassifierIsTheModelOfItsConfig() throws {
        let cases: [(Benchmark.ClassifierWorkload, String)] = [
            (.init(), "cell = \"lstm\"\nhidden = 64\n"),
            (.init(cell: .gru), "cell = \"gru\"\nhidden = 64\n"),
            (.init(layers: 2, bidirectional: true),
             "[[model.layers]]\ntype = \"lstm\"\nhidden = 64\nlayers = 2\nbidirectional = true\n"),
            (.init(cell: .rnn, layers: 3), "[[model.layers]]\ntype = \"rnn\"\nhidden = 64\nlayers = 3\n"),
        ]
        for (workload, keys) in cases {
            let toml = "[model]\nkind = \"sequence_classifier\"\npooling = \"max\"\n" + keys
            let config = try ExperimentConfig.parse(toml, source: "bench.toml")
            let (stack, naming) = try config.requiredModelStack()
            XCTAssertEqual(workload.stack, stack, "\(workload)")
            XCTAssertEqual(workload.naming, naming, "\(workload)")
            let expected = SequenceClassifier(stack: stack, naming: naming, inputSize: 1, labels: 7, pooling: .max)
            let benched = Benchmark.classifierModel(workload)
            XCTAssertEqual(benched.parameters.layout.signature, expected.parameters.layout.signature, "\(workload)")
            XCTAssertEqual(benched.pooling, .max)
        }
        let bidirectional = Benchmark.classifierModel(.init(layers: 2, bidirectional: true)).parameters.layout
        XCTAssertEqual(bidirectional.named("layers.0.weight_ih_l1_reverse")?.shape, [256, 128])
        XCTAssertEqual(bidirectional.named("head.weight")?.shape, [7, 128])
    }
}

/// A pointer to the array's elements for a body that returns a value.
func withPointer<T, R>(_ array: [T], _ body: (UnsafePointer<T>) throws -> R) rethrows -> R {
    try array.withUnsafeBufferPointer { try body($0.baseAddress!) }
}
