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
        let sizesJSON = Data(try XCTUnwrap(ref.file.metadata["sizes"]).utf8)
        let sizes = try XCTUnwrap(try JSONSerialization.jsonObject(with: sizesJSON)
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

        try ref.assertThreeAdamSteps(model.parameters, file: file, line: line) {
            pointer(x) { model.forward($0, batch: B, steps: T, lengths: lengths) }
            try pointer(y) { total = try model.loss(targets: $0, loss: bce, gradient: true) }
            return total
        }
    }

    /// An autoencoder of `[[model.encoder]]` and `[[model.decoder]]` stacks (decoder_input = "repeat"):
    /// the reconstruction over the valid steps, the MSE, every gradient and 3 Adam steps.
    func checkAutoencoder(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = try ReferenceCase("stack_\(name)")
        let sizesJSON = Data(try XCTUnwrap(ref.file.metadata["sizes"]).utf8)
        let sizes = try XCTUnwrap(try JSONSerialization.jsonObject(with: sizesJSON) as? [String: Int])
        let (F, Z, B, T) = (sizes["F"]!, sizes["Z"]!, sizes["B"]!, sizes["T"]!)
        let toml = "[model]\nkind = \"autoencoder\"\nencoder = \(try XCTUnwrap(ref.file.metadata["encoder"]))\n"
            + "decoder = \(try XCTUnwrap(ref.file.metadata["decoder"]))\n"
        let config = try ExperimentConfig.parse(toml, source: "\(name).toml")
        let model = SequenceAutoencoder(encoder: try XCTUnwrap(config.layerStack("model.encoder")),
                                        decoder: try XCTUnwrap(config.layerStack("model.decoder")),
                                        features: F, latentSize: Z)
        try ref.load(into: model.parameters)
        let x = try ref.floats("x"), lengths = try ref.ids("lengths").map(Int.init)
        let valid = (0..<(T * B * F)).map { i -> Float in (i / F) / B < lengths[(i / F) % B] ? 1 : 0 }
        pointer(x) { model.forward($0, batch: B, steps: T, lengths: lengths) }
        assertClose(zip(model.reconstruction.array, valid).map(*), try ref.floats("reconstruction"),
                    "\(name) reconstruction", file: file, line: line)
        model.parameters.zeroGradients()
        var total = LossTotal()
        pointer(x) { total = model.loss(target: $0, gradient: true) }
        assertClose([Float(total.mean)], try ref.floats("loss"), "\(name) loss", file: file, line: line)
        try ref.assertGradients(model.parameters, scale: Float(1 / total.count), file: file, line: line)

        try ref.assertThreeAdamSteps(model.parameters, file: file, line: line) {
            pointer(x) { model.forward($0, batch: B, steps: T, lengths: lengths) }
            pointer(x) { total = model.loss(target: $0, gradient: true) }
            return total
        }
    }

    /// A seq2seq of an `[[model.encoder]]` stack and a `[[model.decoder]]` of one 2-level entry, teacher
    /// forced: the logits, the latent (mean), the loss ((cross-entropy + KL) per counted token), every
    /// gradient and 3 Adam steps.
    func checkSeq2Seq(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = try ReferenceCase("stack_\(name)")
        let sizesJSON = Data(try XCTUnwrap(ref.file.metadata["sizes"]).utf8)
        let sizes = try XCTUnwrap(try JSONSerialization.jsonObject(with: sizesJSON) as? [String: Int])
        let (V, E, Z, B, S) = (sizes["V"]!, sizes["E"]!, sizes["Z"]!, sizes["B"]!, sizes["S"]!)
        let T = S + 1
        let variational = ref.file.metadata["variational"] == "true"
        let toml = "[model]\nkind = \"seq2seq\"\nencoder = \(try XCTUnwrap(ref.file.metadata["encoder"]))\n"
            + "decoder = \(try XCTUnwrap(ref.file.metadata["decoder"]))\n"
        let config = try ExperimentConfig.parse(toml, source: "\(name).toml")
        let model = SequenceGenerator(encoder: try XCTUnwrap(config.layerStack("model.encoder")),
                                      decoder: try XCTUnwrap(config.layerStack("model.decoder")?.first),
                                      vocabulary: V, embedding: E, latent: Z, variational: variational)
        try ref.load(into: model.parameters)
        let sources = try ref.ids("sources"), inputs = try ref.ids("inputs")
        let lengths = try ref.ids("lengths").map(Int.init)
        let targets = transposeForTest(try ref.ids("targets"), rows: B, steps: T)
        let mask = transposeForTest(try ref.floats("mask"), rows: B, steps: T)
        let dLogits = FloatBuffer(count: T * B * V)
        let rowWeights = [Float](repeating: 1, count: B)
        // (cross-entropy sum + KL sum, counted tokens), back-propagated.
        func lossAndGradient() throws -> LossTotal {
            try model.encode(sources, batch: B, steps: S, lengths: lengths)
            try model.decode(inputs: inputs, steps: T)
            let total = try withPointer(targets) { t in
                try withPointer(mask) { m in
                    try CrossEntropyLoss().evaluate(dLogits.pointer, logits: model.logits.pointer, targets: t, mask: m,
                                                    rows: T * B, classes: V)
                }
            }
            model.backward(dLogits.pointer, klWeight: 1, rowWeights: rowWeights)
            return LossTotal(sum: total.sum + model.klDivergence(rowWeights: rowWeights), count: total.count)
        }
        model.parameters.zeroGradients()
        let first = try lossAndGradient()
        let sum = first.sum, count = first.count
        assertClose(model.logits.array, try ref.floats("logits"), "\(name) logits", file: file, line: line)
        assertClose(model.mean.array, try ref.floats("mean"), "\(name) latent (mean)", file: file, line: line)
        assertClose([Float(sum / count)], try ref.floats("loss"), "\(name) loss", file: file, line: line)
        try ref.assertGradients(model.parameters, scale: Float(1 / count), file: file, line: line)

        try ref.assertThreeAdamSteps(model.parameters, file: file, line: line, step: lossAndGradient)
    }

    func testSeq2SeqOfABidirectionalGRUEncoderAndATwoLevelLSTMDecoderAgainstPyTorch() throws {
        try checkSeq2Seq("s2s_bigru")
    }
    func testVariationalSeq2SeqOfConvLSTMAndGRUEncoderAgainstPyTorch() throws { try checkSeq2Seq("s2s_conv_lstm") }

    func testAutoencoderOfStackedLSTMsOfDifferentWidthsAgainstPyTorch() throws { try checkAutoencoder("ae_widths") }
    func testAutoencoderOfConvAndBidirectionalGRUStacksAgainstPyTorch() throws { try checkAutoencoder("ae_conv_bigru") }

    /// A char LM of a stack whose recurrent entries (LSTM, 2-layer GRU, relu RNN) each carry their
    /// state from one chunk to the next: both chunks' logits, the second chunk's loss and every
    /// gradient (truncated back-propagation), and 3 Adam steps.
    func testCharLMStackCarriesEachRecurrentEntrysStateAgainstPyTorch() throws {
        let ref = try ReferenceCase("stack_charlm")
        let sizesJSON = Data(try XCTUnwrap(ref.file.metadata["sizes"]).utf8)
        let sizes = try XCTUnwrap(try JSONSerialization.jsonObject(with: sizesJSON) as? [String: Int])
        let (V, E, B, T) = (sizes["V"]!, sizes["E"]!, sizes["B"]!, sizes["T"]!)
        let toml = "[model]\nkind = \"char_lm\"\nlayers = \(try XCTUnwrap(ref.file.metadata["stack"]))\n"
        let specs = try XCTUnwrap(try ExperimentConfig.parse(toml, source: "charlm.toml").layerStack("model.layers"))
        let model = CharLanguageModel(vocabularySize: V, embeddingSize: E, stack: specs)
        try ref.load(into: model.parameters)
        let state = model.makeState(batch: B)
        XCTAssertEqual(state.parts.count, 3)
        try model.forward(ids: try ref.ids("x1"), batch: B, steps: T, state: state)
        assertClose(model.logitsBatchFirst(), try ref.floats("logits1"), "logits of the first chunk")
        try model.forward(ids: try ref.ids("x2"), batch: B, steps: T, state: state)
        assertClose(model.logitsBatchFirst(), try ref.floats("logits2"), "logits of the second chunk")
        model.parameters.zeroGradients()
        let total = try model.loss(targets: try ref.ids("y2"), gradient: true)
        assertClose([Float(total.mean)], try ref.floats("loss"), "loss")
        try ref.assertGradients(model.parameters, scale: Float(1 / total.count))

        try ref.assertThreeAdamSteps(model.parameters) {
            try model.forward(ids: try ref.ids("x1"), batch: B, steps: T, state: model.makeState(batch: B))
            return try model.loss(targets: try ref.ids("y1"), gradient: true)
        }
    }

    func testElmanRNNTanhAndReluAgainstPyTorch() throws { try check("rnn") }
    func testBidirectionalLSTMOfTwoLayersOnPackedSequencesAgainstPyTorch() throws { try check("bilstm") }
    func testBidirectionalGRUOfTwoLayersAgainstPyTorch() throws { try check("bigru") }
    func testLayersOfDifferentWidthsAgainstPyTorch() throws { try check("widths") }
    func testConv1DPaddingsDilationAndStrideBeforeAnLSTMAgainstPyTorch() throws { try check("conv") }
    func testCausalConvBidirectionalLSTMAndDenseAgainstPyTorch() throws { try check("conv_bilstm") }
}

/// `[[model.layers]]` as a config gives it: errors name the file, the line, the entry and the field.
final class LayerStackConfigTests: XCTestCase {
    let head = "[model]\nkind = \"sequence_classifier\"\nhidden = 8\n"

    func refusal(_ text: String, overrides: [String] = []) -> String {
        do {
            _ = try ExperimentConfig.parse(text, source: "stack.toml", overrides: overrides)
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    func testTablesInlineAndSetGiveTheSameStackAndShorthandKeysAreNamedAsIgnored() throws {
        let tables = head + "[[model.layers]]\ntype = \"conv1d\"\nfilters = 4\nkernel_size = 3\npadding = \"causal\"\n"
            + "[[model.layers]]\ntype = \"gru\"\nhidden = 5\nbidirectional = true\n"
        let fromTables = try ExperimentConfig.parse(tables, source: "stack.toml")
        let inline = "[{type = \"conv1d\", filters = 4, kernel_size = 3, padding = \"causal\"}, "
            + "{type = \"gru\", hidden = 5, bidirectional = true}]"
        let fromSet = try ExperimentConfig.parse(head, source: "stack.toml", overrides: ["model.layers=\(inline)"])
        XCTAssertEqual(fromTables.modelStack?.specs, fromSet.modelStack?.specs)
        XCTAssertEqual(fromTables.modelStack?.specs, [
            .conv1d(ConvolutionSpec(filters: 4, kernelSize: 3, padding: .causal)),
            .recurrent(RecurrentSpec(cell: .gru, hidden: 5, bidirectional: true)),
        ])
        XCTAssertEqual(fromTables.modelStack?.naming, .indexed(prefix: "layers"))
        XCTAssertEqual(fromTables.warnings.count, 1)
        XCTAssertTrue(fromTables.warnings.first?.hasPrefix("model.hidden is ignored") ?? false,
                      "\(fromTables.warnings)")
        // The resolved config writes the stack back, and it reads again to the same stack.
        let again = try ExperimentConfig.parse(fromTables.resolvedTOML, source: "resolved.toml")
        XCTAssertEqual(again.modelStack?.specs, fromTables.modelStack?.specs)
        // The shorthand is a one-entry stack named as before.
        let shorthand = try ExperimentConfig.parse(head + "cell = \"rnn\"\nlayers = 2\n", source: "stack.toml")
        XCTAssertEqual(shorthand.modelStack?.specs, [.recurrent(RecurrentSpec(cell: .rnn, hidden: 8, layers: 2))])
        XCTAssertEqual(shorthand.modelStack?.naming, .shorthand)
        XCTAssertEqual(shorthand.warnings, [])
    }

    /// `--set model.layers.K.FIELD=value` changes one field of a stack given in the file or by an earlier
    /// `--set` (the autoencoder's encoder alike), checked as a written entry is.
    func testOneFieldOfAStackEntryIsSetFromTheCommandLine() throws {
        let file = head + "[[model.layers]]\ntype = \"conv1d\"\nfilters = 4\nkernel_size = 3\n"
            + "[[model.layers]]\ntype = \"lstm\"\nhidden = 4\n"
        let config = try ExperimentConfig.parse(file, source: "stack.toml", overrides: [
            "model.layers.1.hidden=9", "model.layers.1.bidirectional=true", "model.layers.0.padding=causal"])
        XCTAssertEqual(config.layerStack("model.layers"), [
            .conv1d(ConvolutionSpec(filters: 4, kernelSize: 3, padding: .causal)),
            .recurrent(RecurrentSpec(cell: .lstm, hidden: 9, bidirectional: true))])
        let encoder = try ExperimentConfig.parse("[model]\nkind = \"autoencoder\"\n", source: "ae.toml", overrides: [
            "model.encoder=[{type = \"gru\", hidden = 4}, {type = \"gru\", hidden = 3}]", "model.encoder.1.layers=2"])
        XCTAssertEqual(encoder.layerStack("model.encoder")?[1],
                       .recurrent(RecurrentSpec(cell: .gru, hidden: 3, layers: 2)))
        let cases: [([String], String)] = [
            (["model.layers.0.hidden=7"], "--set model.layers.0.hidden=7: model.layers: no layer stack to reach into"),
            (["model.layers=[{type = \"lstm\", hidden = 4}]", "model.layers.1.hidden=7"],
             "entry 1 does not exist; the stack has 1 (0 to 0)"),
            (["model.layers=[{type = \"lstm\", hidden = 4}]", "model.layers.0.hidden=0"],
             "--set model.layers.0.hidden=0: model.layers[0].hidden: expected an integer ≥ 1, got 0"),
            (["model.layers=[{type = \"lstm\", hidden = 4}]", "model.layers.0.units=3"],
             "model.layers[0].units: unknown field for type = \"lstm\""),
            (["model.layers=[{type = \"lstm\", hidden = 4}]", "model.layers.0.type=gru"],
             "an entry's type decides its fields"),
        ]
        for (sets, expected) in cases {
            let message = refusal(head, overrides: sets)
            XCTAssertTrue(message.contains(expected), "\(sets)\n→ \(message)")
        }
    }

    func testBadEntriesAreRefusedNamingTheLineEntryAndField() {
        let cases: [(String, String)] = [
            ("[[model.layers]]\ntype = \"lstm\"\n", "stack.toml:4: model.layers[0].hidden: missing"),
            ("[[model.layers]]\ntype = \"lstm\"\nhidden = 4\n[[model.layers]]\ntype = \"trasformer\"\n",
             "stack.toml:8: model.layers[1].type: expected one of \"lstm\""),
            ("[[model.layers]]\ntype = \"gru\"\nhidden = 4\nhiden = 5\n",
             "stack.toml:7: model.layers[0].hiden: unknown field for type = \"gru\"; it accepts hidden, layers, "
                + "bidirectional, dropout (did you mean hidden?)"),
            ("[[model.layers]]\ntype = \"lstm\"\nhidden = 4\nactivation = \"relu\"\n",
             "stack.toml:7: model.layers[0].activation: an LSTM's cell activation is tanh"),
            ("[[model.layers]]\ntype = \"dense\"\nunits = 4\nactivation = \"softmax\"\n",
             "stack.toml:7: model.layers[0].activation: \"softmax\" is refused"),
            ("[[model.layers]]\ntype = \"conv1d\"\nfilters = 4\nkernel_size = 3\nstride = 2\npadding = \"same\"\n",
             "stack.toml:9: model.layers[0].padding: \"same\" needs stride = 1"),
            ("[[model.layers]]\ntype = \"dropout\"\np = 1.0\n",
             "stack.toml:6: model.layers[0].p: expected a number in [0, 1)"),
            ("[[model.layers]]\ntype = \"lstm\"\nhidden = 0\n",
             "stack.toml:6: model.layers[0].hidden: expected an integer ≥ 1, got 0"),
            ("[[model.layers]]\ntype = \"lstm\"\nhidden = 4611686018427387904\n", "far beyond what trains on a CPU"),
            ("[[model.layers]]\nhidden = 4\n", "stack.toml:4: model.layers[0]: no type"),
            ("layers = []\n", "stack.toml:4: model.layers: an empty layer stack"),
        ]
        for (body, expected) in cases {
            let message = refusal(head + body)
            XCTAssertTrue(message.contains(expected), "\(body)\n→ \(message)")
        }
        let set = refusal(head, overrides: ["model.layers=[{type = \"rnn\", hidden = 4, nonlinearity = \"sigmoid\"}]"])
        XCTAssertTrue(set.contains("--set model.layers=")
                        && set.contains("model.layers[0].nonlinearity: expected one of"),
                      set)
        // A kind that reads no stack at model.layers says which kinds do, and where seq2seq reads its own.
        let other = refusal("[model]\nkind = \"seq2seq\"\n[[model.layers]]\ntype = \"lstm\"\nhidden = 4\n")
        let atLayers = other.components(separatedBy: " and at model.encoder").first ?? ""
        XCTAssertTrue(atLayers.contains("a layer stack is read at model.layers for model.kind = ")
                        && atLayers.contains("\"forecaster\"") && !atLayers.contains("\"seq2seq\""), other)
        XCTAssertTrue(other.contains("at model.encoder / model.decoder for \"autoencoder\", \"seq2seq\"; "
                                     + "give it there"), other)
    }
}
