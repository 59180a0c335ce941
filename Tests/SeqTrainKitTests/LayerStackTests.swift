import Foundation
import XCTest
import SeqTrainKit

/// Layer stacks (`[[model.layers]]`) against PyTorch (Fixtures/make_stacks.py): nn.RNN (tanh, relu),
/// bidirectional LSTM and GRU of 2 layers on packed sequences, layers of different widths, Conv1d
/// (valid, same, causal, dilation 2, stride 2) in front of recurrent layers, per-step dense layers:
/// logits, loss, every gradient, and the parameters after 3 Adam steps.
final class LayerStackTests: XCTestCase {
    /// The stack of a fixture's metadata, read as a config's [[model.layers]] would be.
    func stack(_ ref: ReferenceCase) throws -> [LayerSpec] {
        let layers = try XCTUnwrap(ref.file.metadata["stack"])
        let toml = "[model]\nkind = \"sequence_classifier\"\nlayers = \(layers)\n"
        let config = try ExperimentConfig.parse(toml, source: "\(ref.name).toml")
        return try XCTUnwrap(config.modelStack?.specs)
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = try ReferenceCase("stack_\(name)")
        let sizes = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(ref.file.metadata["sizes"]).utf8))
                                    as? [String: Int])
        let (I, C, B, T) = (sizes["I"]!, sizes["C"]!, sizes["B"]!, sizes["T"]!)
        let pooling = try XCTUnwrap(Pooling(rawValue: try XCTUnwrap(ref.file.metadata["pooling"])))
        let model = SequenceClassifier(stack: try stack(ref), inputSize: I, labels: C, pooling: pooling)
        try ref.load(into: model.parameters)
        let x = try ref.floats("x"), y = try ref.floats("y"), lengths = try ref.ids("lengths").map(Int.init)
        let bce = try BinaryCrossEntropyLoss(positiveWeights: nil)
        pointer(x) { model.forward($0, batch: B, steps: T, lengths: lengths) }
        assertClose(model.logits.array, try ref.floats("logits"), "\(name) logits", file: file, line: line)
        model.parameters.zeroGradients()
        var total = LossTotal()
        try pointer(y) { total = try model.loss(targets: $0, loss: bce, gradient: true) }
        assertClose([Float(total.mean)], try ref.floats("loss"), "\(name) loss", file: file, line: line)
        try ref.assertGradients(model.parameters, scale: Float(1 / total.count), file: file, line: line)

        let adam = Optimizer(OptimizerSettings(.adam, learningRate: 1e-2), parameterCount: model.parameters.count)
        try ref.load(into: model.parameters)
        for _ in 0..<3 {
            model.parameters.zeroGradients()
            pointer(x) { model.forward($0, batch: B, steps: T, lengths: lengths) }
            try pointer(y) { total = try model.loss(targets: $0, loss: bce, gradient: true) }
            scaleInPlace(model.parameters.gradients.pointer, by: Float(1 / total.count), count: model.parameters.count)
            adam.step(model.parameters, learningRate: 1e-2)
        }
        try ref.assertParametersAfterSteps(model.parameters, file: file, line: line)
    }

    func testElmanRNNTanhAndReluAgainstPyTorch() throws { try check("rnn") }
    func testBidirectionalLSTMOfTwoLayersOnPackedSequencesAgainstPyTorch() throws { try check("bilstm") }
    func testBidirectionalGRUOfTwoLayersAgainstPyTorch() throws { try check("bigru") }
    func testLayersOfDifferentWidthsAgainstPyTorch() throws { try check("widths") }
    func testConv1DPaddingsDilationAndStrideBeforeAnLSTMAgainstPyTorch() throws { try check("conv") }
    func testCausalConvBidirectionalLSTMAndDenseAgainstPyTorch() throws { try check("conv_bilstm") }
}
