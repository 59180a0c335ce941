import XCTest
import SeqTrainKit

/// Central finite differences against every hand-written backward: layers, losses, masks.
final class GradientCheckTests: XCTestCase {
    /// Deterministic values in [-scale, scale).
    func randomValues(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        let r = CounterRandom(seed: seed, purpose: .synthetic)
        return (0..<n).map { (2 * r.uniform(stream: 7, index: UInt64($0)) - 1) * scale }
    }

    /// Compares `analytic` with (loss(x + h) − loss(x − h)) / 2h for every element `read`/`write` reach.
    func check(_ what: String, count: Int, analytic: [Float], read: (Int) -> Float, write: (Int, Float) -> Void,
               loss: () throws -> Double, step: Float = 1e-2, file: StaticString = #filePath, line: UInt = #line) rethrows {
        XCTAssertEqual(analytic.count, count, what, file: file, line: line)
        var checked = 0
        for i in 0..<count {
            let x = read(i)
            write(i, x + step); let up = try loss()
            write(i, x - step); let down = try loss()
            write(i, x)
            let numeric = Float((up - down) / Double(2 * step))
            let tolerance: Float = 2e-3 + 2e-2 * abs(numeric)
            if abs(numeric - analytic[i]) > tolerance {
                XCTFail("\(what)[\(i)]: analytic \(analytic[i]), numeric \(numeric)", file: file, line: line)
                return
            }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0, file: file, line: line)
    }

    /// Every parameter of `arena` against the loss, after `gradient()` filled the arena's gradients.
    func checkParameters(_ arena: ParameterArena, what: String = "", step: Float = 1e-2, loss: () throws -> Double, gradient: () throws -> Void,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        arena.zeroGradients()
        try gradient()
        for ref in arena.layout.entries {
            let analytic = Array(UnsafeBufferPointer(start: arena.gradient(ref), count: ref.count))
            let p = arena.value(ref)
            try check(what + ref.name, count: ref.count, analytic: analytic, read: { p[$0] }, write: { p[$0] = $1 }, loss: loss,
                      step: step, file: file, line: line)
        }
    }

    func testLinearWithEveryActivation() throws {
        for activation in Activation.allCases {
            var layout = ParameterLayout()
            let linear = Linear("fc", inFeatures: 4, outFeatures: 3, layout: &layout)
            let arena = ParameterArena(layout)
            arena.initialize(seed: 3)
            let n = 5
            let x = FloatBuffer(), pre = FloatBuffer(count: n * 3), y = FloatBuffer(count: n * 3)
            x.copy(from: randomValues(n * 4, seed: 1, scale: 2))
            let weights = randomValues(n * 3, seed: 2)
            func loss() -> Double {
                linear.forward(pre.pointer, x.pointer, rows: n, parameters: arena)
                activation.forward(y.pointer, pre.pointer, count: n * 3)
                return zip(y.array, weights).reduce(0) { $0 + Double($1.0 * $1.1) }
            }
            let dx = FloatBuffer(count: n * 4)
            func gradient() {
                _ = loss()
                let dy = FloatBuffer()
                dy.copy(from: weights)
                activation.backward(dy.pointer, dy.pointer, x: pre.pointer, y: y.pointer, count: n * 3)
                linear.backward(dx.pointer, dy.pointer, x.pointer, rows: n, parameters: arena)
            }
            try checkParameters(arena, loss: loss, gradient: gradient)
            check("\(activation) input", count: n * 4, analytic: dx.array, read: { x[$0] }, write: { x[$0] = $1 }, loss: loss)
        }
    }

    func testEmbeddingWithRepeatedIds() throws {
        var layout = ParameterLayout()
        let embedding = Embedding("emb", vocabularySize: 6, width: 3, layout: &layout)
        let arena = ParameterArena(layout)
        arena.initialize(seed: 4)
        let ids: [Int32] = [1, 4, 1, 0, 5, 1]
        let weights = randomValues(ids.count * 3, seed: 5)
        let out = FloatBuffer(count: ids.count * 3)
        func loss() -> Double {
            embedding.forward(out.pointer, ids, count: ids.count, parameters: arena)
            return zip(out.array, weights).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        try checkParameters(arena, loss: loss) {
            _ = loss()
            embedding.backward(weights, ids, count: ids.count, parameters: arena)
        }
    }

    /// The stack run over x (B, T, I) step-major one step at a time, into output (B, T, H).
    func runStepwise(_ rnn: RecurrentNetwork, _ output: FloatBuffer, _ x: FloatBuffer, batch B: Int, steps T: Int,
                     initial: RecurrentState, final: RecurrentState, parameters: ParameterArena, dropout: DropoutContext?) {
        let I = rnn.inputSize, H = rnn.hiddenSize
        // A capacity beyond the steps taken: backward must see only those.
        rnn.beginSteps(batch: B, capacity: T + 3, initial: initial, parameters: parameters, dropout: dropout)
        let row = FloatBuffer(count: B * I)
        for t in 0..<T {
            for b in 0..<B { (row.pointer + b * I).update(from: x.pointer + (b * T + t) * I, count: I) }
            let h = rnn.step(row.pointer, parameters: parameters)
            for b in 0..<B { (output.pointer + (b * T + t) * H).update(from: h + b * H, count: H) }
        }
        rnn.endSteps(final: final)
    }

    /// Output of every step, final h and c, and the initial state all enter the loss; dropout on.
    /// `stepwise`: the forward pass is the one-step-at-a-time runner, backward the usual one.
    func checkRecurrent(_ cell: RecurrentCell, nonlinearity: RecurrentNonlinearity = .tanh, dropout: Float,
                        stepwise: Bool = false) throws {
        let (B, T, I, H, L) = (2, 4, 3, 5, 2)
        var layout = ParameterLayout()
        let rnn = RecurrentNetwork("rnn", cell: cell, nonlinearity: nonlinearity, inputSize: I, hiddenSize: H,
                                   layers: L,
                                   dropout: dropout, layout: &layout)
        let arena = ParameterArena(layout)
        arena.initialize(seed: 6)
        let x = FloatBuffer(), output = FloatBuffer(count: B * T * H)
        x.copy(from: randomValues(B * T * I, seed: 7))
        let initial = RecurrentState(cell: cell, layers: L, batch: B, width: H)
        initial.hidden.copy(from: randomValues(L * B * H, seed: 8, scale: 0.5))
        if cell == .lstm { initial.cell.copy(from: randomValues(L * B * H, seed: 9, scale: 0.5)) }
        let final = RecurrentState(cell: cell, layers: L, batch: B, width: H)
        let wOut = randomValues(B * T * H, seed: 10), wH = randomValues(L * B * H, seed: 11), wC = randomValues(L * B * H, seed: 12)
        let context = dropout > 0 ? DropoutContext(seed: 1, step: 3, sampleKeys: [5, 9]) : nil
        func loss() -> Double {
            if stepwise {
                runStepwise(rnn, output, x, batch: B, steps: T, initial: initial, final: final, parameters: arena, dropout: context)
            } else {
                rnn.forward(output.pointer, x.pointer, batch: B, steps: T, initial: initial, final: final, parameters: arena, dropout: context)
            }
            var s = zip(output.array, wOut).reduce(0.0) { $0 + Double($1.0 * $1.1) }
            s += zip(final.hidden.array, wH).reduce(0.0) { $0 + Double($1.0 * $1.1) }
            if cell == .lstm { s += zip(final.cell.array, wC).reduce(0.0) { $0 + Double($1.0 * $1.1) } }
            return s
        }
        let dx = FloatBuffer(count: B * T * I)
        let dInitial = RecurrentState(cell: cell, layers: L, batch: B, width: H)
        // ReLU's kink: a smaller step keeps the differences on one side of it.
        let step: Float = nonlinearity == .relu && cell == .rnn ? 1e-3 : 1e-2
        try checkParameters(arena, step: step, loss: loss) {
            _ = loss()
            let dFinal = RecurrentState(cell: cell, layers: L, batch: B, width: H)
            dFinal.hidden.copy(from: wH)
            if cell == .lstm { dFinal.cell.copy(from: wC) }
            rnn.backward(dx.pointer, wOut, dFinal: dFinal, dInitial: dInitial, parameters: arena)
        }
        check("\(cell) input", count: x.count, analytic: dx.array, read: { x[$0] }, write: { x[$0] = $1 }, loss: loss,
              step: step)
        check("\(cell) h0", count: initial.hidden.count, analytic: dInitial.hidden.array,
                  read: { initial.hidden[$0] }, write: { initial.hidden[$0] = $1 }, loss: loss, step: step)
        if cell == .lstm {
            check("c0", count: initial.cell.count, analytic: dInitial.cell.array,
                      read: { initial.cell[$0] }, write: { initial.cell[$0] = $1 }, loss: loss)
        }
    }

    func testLSTMStepByStep() throws { try checkRecurrent(.lstm, dropout: 0.4, stepwise: true) }
    func testGRUStepByStep() throws { try checkRecurrent(.gru, dropout: 0.4, stepwise: true) }

    /// The one-step-at-a-time runner gives the whole-sequence pass's outputs, final states and
    /// gradients on the same inputs (two layers, dropout between them, an initial state).
    func testStepByStepRunnerEqualsTheWholeSequencePass() throws {
        for cell in RecurrentCell.allCases {
            let (B, T, I, H, L) = (3, 6, 4, 7, 2)
            var layout = ParameterLayout()
            let rnn = RecurrentNetwork("rnn", cell: cell, inputSize: I, hiddenSize: H, layers: L, dropout: 0.3, layout: &layout)
            let arena = ParameterArena(layout)
            arena.initialize(seed: 2)
            let x = FloatBuffer()
            x.copy(from: randomValues(B * T * I, seed: 3))
            let initial = RecurrentState(cell: cell, layers: L, batch: B, width: H)
            initial.hidden.copy(from: randomValues(L * B * H, seed: 4, scale: 0.5))
            if cell == .lstm { initial.cell.copy(from: randomValues(L * B * H, seed: 5, scale: 0.5)) }
            let context = DropoutContext(seed: 9, step: 1, sampleKeys: [2, 7, 8])
            let dOutput = randomValues(B * T * H, seed: 6)
            var results: [(output: [Float], hidden: [Float], cell: [Float], gradients: [Float], dx: [Float])] = []
            for stepwise in [false, true] {
                let output = FloatBuffer(count: B * T * H), final = RecurrentState(cell: cell, layers: L, batch: B, width: H)
                if stepwise {
                    runStepwise(rnn, output, x, batch: B, steps: T, initial: initial, final: final, parameters: arena, dropout: context)
                } else {
                    rnn.forward(output.pointer, x.pointer, batch: B, steps: T, initial: initial, final: final, parameters: arena, dropout: context)
                }
                arena.zeroGradients()
                let dx = FloatBuffer(count: B * T * I)
                dOutput.withUnsafeBufferPointer { rnn.backward(dx.pointer, $0.baseAddress!, parameters: arena) }
                results.append((output.array, final.hidden.array, final.cell.array, arena.gradients.array, dx.array))
            }
            let (whole, stepped) = (results[0], results[1])
            assertClose(stepped.output, whole.output, "\(cell) outputs", absolute: 1e-6, relative: 1e-5)
            assertClose(stepped.hidden, whole.hidden, "\(cell) final h", absolute: 1e-6, relative: 1e-5)
            assertClose(stepped.cell, whole.cell, "\(cell) final c", absolute: 1e-6, relative: 1e-5)
            assertClose(stepped.gradients, whole.gradients, "\(cell) gradients", absolute: 1e-6, relative: 1e-5)
            assertClose(stepped.dx, whole.dx, "\(cell) input gradients", absolute: 1e-6, relative: 1e-5)
            XCTAssertTrue(whole.output.contains { $0 != 0 } && whole.gradients.contains { $0 != 0 })
        }
    }

    func testLSTM() throws { try checkRecurrent(.lstm, dropout: 0) }
    func testLSTMWithDropoutBetweenLayers() throws { try checkRecurrent(.lstm, dropout: 0.4) }
    func testGRU() throws { try checkRecurrent(.gru, dropout: 0) }
    func testGRUWithDropoutBetweenLayers() throws { try checkRecurrent(.gru, dropout: 0.4) }
    func testElmanRNN() throws { try checkRecurrent(.rnn, dropout: 0.4) }
    func testElmanRNNWithRelu() throws { try checkRecurrent(.rnn, nonlinearity: .relu, dropout: 0) }
    func testElmanRNNStepByStep() throws { try checkRecurrent(.rnn, dropout: 0.4, stepwise: true) }

    /// A stack of every layer type on variable-length samples, dropout on (between bidirectional
    /// levels and as a layer): every parameter of the stack and the head through BCE.
    func testLayerStackOfEveryLayerTypeOnVariableLengths() throws {
        let (B, T, I, C) = (3, 9, 2, 3)
        let stacks: [([LayerSpec], Pooling)] = [
            ([.conv1d(ConvolutionSpec(filters: 3, kernelSize: 3, dilation: 2, padding: .causal, activation: .tanh)),
              .recurrent(RecurrentSpec(cell: .gru, hidden: 3, layers: 2, bidirectional: true, dropout: 0.3)),
              .dropout(probability: 0.25), .dense(units: 4, activation: .sigmoid),
              .recurrent(RecurrentSpec(cell: .lstm, hidden: 3, bidirectional: true))], .last),
            ([.conv1d(ConvolutionSpec(filters: 3, kernelSize: 2, stride: 2, activation: .gelu)),
              .conv1d(ConvolutionSpec(filters: 2, kernelSize: 4, padding: .same)),
              .recurrent(RecurrentSpec(cell: .rnn, hidden: 4, layers: 2, dropout: 0.3)),
              .dense(units: 3, activation: .relu)], .mean),
        ]
        for (k, (stack, pooling)) in stacks.enumerated() {
            let model = SequenceClassifier(stack: stack, inputSize: I, labels: C, pooling: pooling)
            model.parameters.initialize(seed: UInt64(20 + k))
            let x = randomValues(B * T * I, seed: 21), y = randomValues(B * C, seed: 22).map { $0 > 0 ? Float(1) : 0 }
            let lengths = [9, 5, 7]
            let context = DropoutContext(seed: 4, step: 2, sampleKeys: [3, 8, 1])
            let bce = try BinaryCrossEntropyLoss()
            func loss(gradient: Bool) throws -> Double {
                pointer(x) { model.forward($0, batch: B, steps: T, lengths: lengths, dropout: context) }
                var total = LossTotal()
                try pointer(y) { total = try model.loss(targets: $0, loss: bce, gradient: gradient) }
                return total.sum
            }
            try checkParameters(model.parameters, what: "stack \(k) ", loss: { try loss(gradient: false) },
                                gradient: { _ = try loss(gradient: true) })
        }
    }

    /// A loss's gradient with respect to its logits, given `evaluate(dLogits?, logits) -> total`.
    func checkLoss(_ what: String, count: Int, seed: UInt64,
                   _ evaluate: (UnsafeMutablePointer<Float>?, UnsafePointer<Float>) throws -> LossTotal) throws {
        let logits = FloatBuffer()
        logits.copy(from: randomValues(count, seed: seed, scale: 3))
        let d = FloatBuffer(count: count)
        _ = try evaluate(d.pointer, logits.pointer)
        try check(what, count: count, analytic: d.array, read: { logits[$0] }, write: { logits[$0] = $1 },
                  loss: { try evaluate(nil, logits.pointer).sum }, step: 1e-3)
    }

    func testCrossEntropyWithWeightsIgnoreIndexSmoothingAndMask() throws {
        let (n, c) = (6, 4)
        let targets: [Int32] = [0, 3, -100, 2, 1, 3]
        let mask: [Float] = [1, 1, 1, 0, 1, 1]
        let loss = try CrossEntropyLoss(classWeights: [0.5, 1, 2, 1.5], labelSmoothing: 0.2)
        try checkLoss("cross-entropy", count: n * c, seed: 20) { d, z in
            try loss.evaluate(d, logits: z, targets: targets, mask: mask, rows: n, classes: c)
        }
        // The masked row and the ignored row are not counted: weights of rows 0, 1, 4, 5.
        let total = try loss.evaluate(nil, logits: randomValues(n * c, seed: 21), targets: targets, mask: mask, rows: n, classes: c)
        XCTAssertEqual(total.count, 0.5 + 1.5 + 1 + 1.5, accuracy: 1e-9)
    }

    func testBinaryCrossEntropyWithPositiveWeightsAndMask() throws {
        let (n, c) = (4, 3)
        let targets: [Float] = [1, 0, 1, 0, 0, 1, 1, 1, 0, 0.3, 1, 0]
        let mask: [Float] = [1, 0, 1, 1]
        let loss = try BinaryCrossEntropyLoss(positiveWeights: [0.5, 2, 1])
        try checkLoss("bce", count: n * c, seed: 22) { d, z in
            try loss.evaluate(d, logits: z, targets: targets, mask: mask, rows: n, classes: c)
        }
        let total = try loss.evaluate(nil, logits: randomValues(n * c, seed: 23), targets: targets, mask: mask, rows: n, classes: c)
        XCTAssertEqual(total.count, 9)
    }

    func testRegressionLossesWithMask() throws {
        let (n, f) = (3, 4)
        let target = randomValues(n * f, seed: 24, scale: 5)
        let mask: [Float] = [1, 0, 1]
        for kind in [RegressionLoss.mse, .l1] {
            try checkLoss("\(kind)", count: n * f, seed: 25) { d, z in
                kind.evaluate(d, prediction: z, target: target, mask: mask, rows: n, features: f)
            }
        }
        XCTAssertEqual(RegressionLoss.mse.evaluate(nil, prediction: target, target: target, mask: mask, rows: n, features: f).count, 8)
    }

    func testClippingByNormAndValue() throws {
        var layout = ParameterLayout()
        _ = layout.add("w", shape: [3], initialization: .zeros)
        let arena = ParameterArena(layout)
        arena.gradients.pointer.update(from: [3, 4, 0], count: 3)
        XCTAssertEqual(GradientClipping.clipNorm(arena, maxNorm: 1), 5, accuracy: 1e-6)
        XCTAssertEqual(arena.gradients[0], 0.6, accuracy: 1e-5)
        XCTAssertEqual(arena.gradients[1], 0.8, accuracy: 1e-5)
        arena.gradients.pointer.update(from: [3, -4, 0.5], count: 3)
        GradientClipping.clipValue(arena, clip: 1)
        XCTAssertEqual(Array(arena.gradients.array.prefix(3)), [1, -1, 0.5])
    }
}
