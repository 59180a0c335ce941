import XCTest
import SeqTrainKit

/// Forward, backward and optimizer steps against values PyTorch computed (Fixtures/make_reference.py).
final class ReferenceTests: XCTestCase {
    func testCharLSTMWithCarriedStateAndAdam() throws {
        let ref = try ReferenceCase("lstm_charlm")
        let (V, E, H, L, B, T) = (11, 8, 16, 2, 3, 5)
        let model = CharLanguageModel(.init(vocabularySize: V, embeddingSize: E, hiddenSize: H, layers: L))
        try ref.load(into: model.parameters)
        let x = try ref.ids("x"), y = try ref.ids("y")
        let state = model.makeState(batch: B)
        state.parts[0].hidden.copy(from: try ref.floats("h0"))
        state.parts[0].cell.copy(from: try ref.floats("c0"))

        try model.forward(ids: x, batch: B, steps: T, state: state)
        assertClose(model.logitsBatchFirst(), try ref.floats("logits"), "logits")
        assertClose(state.parts[0].hidden.array, try ref.floats("hT"), "hT")
        assertClose(state.parts[0].cell.array, try ref.floats("cT"), "cT")
        model.parameters.zeroGradients()
        let loss = try model.loss(targets: y, gradient: true)
        XCTAssertEqual(loss.count, Double(B * T))
        assertClose([Float(loss.mean)], try ref.floats("loss"), "loss")
        try ref.assertGradients(model.parameters, scale: Float(1 / loss.count))

        // Three Adam steps (lr 1e-2) with clipping at 0.5, from zero state, same batch.
        try ref.load(into: model.parameters)
        let adam = Optimizer(OptimizerSettings(.adam, learningRate: 1e-2), parameterCount: model.parameters.count)
        var losses: [Float] = []
        for _ in 0..<3 {
            model.parameters.zeroGradients()
            try model.forward(ids: x, batch: B, steps: T, state: model.makeState(batch: B))
            let total = try model.loss(targets: y, gradient: true)
            scaleInPlace(model.parameters.gradients.pointer, by: Float(1 / total.count), count: model.parameters.count)
            GradientClipping.clipNorm(model.parameters, maxNorm: 0.5)
            adam.step(model.parameters, learningRate: 1e-2)
            losses.append(Float(total.mean))
        }
        assertClose(losses, try ref.floats("adam_losses"), "adam_losses")
        try ref.assertParametersAfterSteps(model.parameters)
    }

    func testMultiLabelGRUWithPositiveWeightsAndSGDMomentum() throws {
        let ref = try ReferenceCase("gru_multilabel")
        let (I, H, C, B, T) = (3, 10, 7, 4, 6)
        let model = SequenceClassifier(cell: .gru, inputSize: I, hiddenSize: H, labels: C)
        try ref.load(into: model.parameters)
        let x = try ref.floats("x"), y = try ref.floats("y")
        let bce = try BinaryCrossEntropyLoss(positiveWeights: try ref.floats("pos_weight"))
        var total = LossTotal()
        pointer(x) { model.forward($0, batch: B, steps: T) }
        assertClose(model.logits.array, try ref.floats("logits"), "logits")
        model.parameters.zeroGradients()
        try pointer(y) { total = try model.loss(targets: $0, loss: bce, gradient: true) }
        assertClose([Float(total.mean)], try ref.floats("loss"), "loss")
        try ref.assertGradients(model.parameters, scale: Float(1 / total.count))

        var settings = OptimizerSettings(.sgd, learningRate: 0.1)
        settings.momentum = 0.9
        let sgd = Optimizer(settings, parameterCount: model.parameters.count)
        for _ in 0..<2 {
            model.parameters.zeroGradients()
            pointer(x) { model.forward($0, batch: B, steps: T) }
            try pointer(y) { total = try model.loss(targets: $0, loss: bce, gradient: true) }
            scaleInPlace(model.parameters.gradients.pointer, by: Float(1 / total.count), count: model.parameters.count)
            sgd.step(model.parameters, learningRate: 0.1)
        }
        try ref.assertParametersAfterSteps(model.parameters)
    }

    func testMLPWithLabelSmoothingAndAdamW() throws {
        let ref = try ReferenceCase("mlp_classifier")
        let model = MLPClassifier(widths: [20, 32, 32, 6], activation: .relu)
        try ref.load(into: model.parameters)
        let x = try ref.floats("x"), y = try ref.ids("y")
        let ce = try CrossEntropyLoss(labelSmoothing: 0.1)
        var total = LossTotal()
        pointer(x) { model.forward($0, rows: 8) }
        assertClose(model.logits.array, try ref.floats("logits"), "logits")
        model.parameters.zeroGradients()
        try pointer(y) { total = try model.loss(targets: $0, loss: ce, gradient: true) }
        assertClose([Float(total.mean)], try ref.floats("loss"), "loss")
        try ref.assertGradients(model.parameters, scale: Float(1 / total.count))

        var settings = OptimizerSettings(.adamw, learningRate: 1e-2)
        settings.weightDecay = 0.01
        let adamw = Optimizer(settings, parameterCount: model.parameters.count)
        for _ in 0..<2 {
            model.parameters.zeroGradients()
            pointer(x) { model.forward($0, rows: 8) }
            try pointer(y) { total = try model.loss(targets: $0, loss: ce, gradient: true) }
            scaleInPlace(model.parameters.gradients.pointer, by: Float(1 / total.count), count: model.parameters.count)
            adamw.step(model.parameters, learningRate: 1e-2)
        }
        try ref.assertParametersAfterSteps(model.parameters)
    }

    func testLSTMAutoencoder() throws {
        let ref = try ReferenceCase("lstm_autoencoder")
        let (F, H, Z, B, T) = (2, 12, 4, 3, 7)
        let model = SequenceAutoencoder(cell: .lstm, features: F, hiddenSize: H, latentSize: Z)
        try ref.load(into: model.parameters)
        let x = try ref.floats("x")
        var total = LossTotal()
        pointer(x) { model.forward($0, batch: B, steps: T) }
        var reconstruction = [Float](repeating: 0, count: B * T * F)
        reconstruction.withUnsafeMutableBufferPointer {
            copySequence($0.baseAddress!, .batchFirst, model.reconstruction.pointer, .stepMajor, batch: B, steps: T, width: F)
        }
        assertClose(reconstruction, try ref.floats("recon"), "recon")
        assertClose(model.latent.array, try ref.floats("latent"), "latent")
        model.parameters.zeroGradients()
        pointer(x) { total = model.loss(target: $0, gradient: true) }
        assertClose([Float(total.mean)], try ref.floats("loss"), "loss")
        try ref.assertGradients(model.parameters, scale: Float(1 / total.count))

        // Three Adam steps (lr 1e-2) with clipping at 1.0, same batch.
        let adam = Optimizer(OptimizerSettings(.adam, learningRate: 1e-2), parameterCount: model.parameters.count)
        for _ in 0..<3 {
            model.parameters.zeroGradients()
            pointer(x) { model.forward($0, batch: B, steps: T) }
            pointer(x) { total = model.loss(target: $0, gradient: true) }
            scaleInPlace(model.parameters.gradients.pointer, by: Float(1 / total.count), count: model.parameters.count)
            GradientClipping.clipNorm(model.parameters, maxNorm: 1.0)
            adam.step(model.parameters, learningRate: 1e-2)
        }
        try ref.assertParametersAfterSteps(model.parameters)
    }

    func testParameterNamesMatchPyTorchStateDicts() throws {
        let ref = try ReferenceCase("lstm_charlm")
        let model = CharLanguageModel(.init(vocabularySize: 11, embeddingSize: 8, hiddenSize: 16, layers: 2))
        let pytorchNames = Set(ref.file.tensors.keys.filter { $0.hasPrefix("after.") }.map { String($0.dropFirst(6)) })
        XCTAssertEqual(Set(model.parameters.layout.entries.map(\.name)), pytorchNames)
    }
}
