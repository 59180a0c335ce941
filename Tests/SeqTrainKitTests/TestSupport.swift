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

    /// Reloads the initial parameters, takes three Adam steps (lr 1e-2) on the mean of the loss `step`
    /// gives (forward and backward of the same batch, adding the gradient of the loss sum), and checks
    /// every parameter against "after.{name}".
    func assertThreeAdamSteps(_ arena: ParameterArena, file: StaticString = #filePath, line: UInt = #line,
                              step: () throws -> LossTotal) throws {
        let adam = Optimizer(OptimizerSettings(.adam, learningRate: 1e-2), parameterCount: arena.count)
        try load(into: arena)
        for _ in 0..<3 {
            arena.zeroGradients()
            let total = try step()
            scaleInPlace(arena.gradients.pointer, by: Float(1 / total.count), count: arena.count)
            adam.step(arena, learningRate: 1e-2)
        }
        try assertParametersAfterSteps(arena, file: file, line: line)
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

/// Small runs of the sequence kinds for the invariance and resume tests: each a config of 20
/// steps (validation at 10 and 20, a metrics line per step) and the `--set` overrides that make
/// the case, with dropout and the paths that differ from the plain one (previous output fed back,
/// scheduled sampling, the variational latent, stateful lanes).
/// The classifier runs the invariance tests share: an LSTM over fixed-length curves, a GRU over
/// variable-length ones with mean pooling, and an MLP on single labels, on one 20-step config.
enum ClassifierCases {
    static func write(in dir: String) throws -> [(name: String, config: String, sets: [String])] {
        for (name, variable) in [("fixed", false), ("variable", true)] {
            let (inputs, labels) = SyntheticSets.curves(count: 90, length: 24, seed: 6, variableLength: variable)
            try NumpyArray(floats: inputs, shape: [90, 24]).write(to: "\(dir)/\(name)-x.npy")
            try NumpyArray(floats: labels, shape: [90, 7]).write(to: "\(dir)/\(name)-y.npy")
        }
        let ids = (0..<90).map { Int64($0 % 3 == 0 ? 0 : $0 % 5 == 0 ? 2 : 1) }
        try NumpyArray(integers: ids, shape: [90]).write(to: "\(dir)/ids.npy")
        try """
            [job]
            seed = 4
            [training]
            batch_size = 8
            epochs = 3
            max_steps = 20
            eval_every = 10
            [optimizer]
            lr = 0.01
            [checkpoint]
            interval = 0
            [metrics]
            log_every = 1
            """.write(toFile: "\(dir)/classifier.toml", atomically: true, encoding: .utf8)
        let config = "\(dir)/classifier.toml"
        return [
            ("lstm", config, ["model.kind=sequence_classifier", "data.inputs=\(dir)/fixed-x.npy", "data.labels=\(dir)/fixed-y.npy",
                              "model.hidden=10", "model.layers=2", "model.dropout=0.3", "optimizer.kind=sgd", "optimizer.lr=0.5",
                              "optimizer.momentum=0.9"]),
            ("gru-variable", config, ["model.kind=sequence_classifier", "data.inputs=\(dir)/variable-x.npy", "data.labels=\(dir)/variable-y.npy",
                                      "model.cell=gru", "model.hidden=10", "model.pooling=mean", "loss.pos_weight=balanced"]),
            // A layer stack: a causal conv1d, a 2-level bidirectional LSTM with dropout between its
            // levels, a dropout layer and a per-step dense layer, over variable-length curves.
            ("stack-variable", config, ["model.kind=sequence_classifier", "data.inputs=\(dir)/variable-x.npy",
                                        "data.labels=\(dir)/variable-y.npy", "model.pooling=last", """
                                        model.layers=[{type = "conv1d", filters = 6, kernel_size = 3, \
                                        padding = "causal", activation = "relu"}, {type = "lstm", hidden = 6, \
                                        layers = 2, bidirectional = true, dropout = 0.3}, {type = "dropout", p = 0.2}, \
                                        {type = "dense", units = 5, activation = "tanh"}]
                                        """]),
            ("mlp", config, ["model.kind=mlp_classifier", "data.inputs=\(dir)/fixed-x.npy", "data.labels=\(dir)/ids.npy",
                             "model.hidden_sizes=[16, 8]", "model.dropout=0.2", "data.sampler=balanced", "loss.class_weights=balanced",
                             "loss.label_smoothing=0.1"]),
        ]
    }
}

enum SequenceKindCases {
    static func write(in dir: String) throws -> [(name: String, config: String, sets: [String])] {
        let (curves, _) = SyntheticSets.curves(count: 60, length: 16, seed: 3, variableLength: true)
        try NumpyArray(floats: curves, shape: [60, 16]).write(to: "\(dir)/ae.npy")
        let words = SyntheticSets.words(count: 120, seed: 5)
        try (words.joined(separator: "\n") + "\n").write(toFile: "\(dir)/words.txt", atomically: true, encoding: .utf8)
        let series = SyntheticSets.series(length: 700, features: 2, season: 12, seed: 2)
        try NumpyArray(floats: series, shape: [700, 2]).write(to: "\(dir)/series.npy")
        try """
            [job]
            seed = 6
            [training]
            batch_size = 8
            epochs = 4
            max_steps = 20
            eval_every = 10
            [optimizer]
            lr = 0.01
            [checkpoint]
            interval = 10
            [metrics]
            log_every = 1
            """.write(toFile: "\(dir)/kinds.toml", atomically: true, encoding: .utf8)
        let config = "\(dir)/kinds.toml"
        return [
            ("autoencoder", config, ["model.kind=autoencoder", "data.inputs=\(dir)/ae.npy", "model.hidden=12", "model.latent=4", "model.layers=2",
                                     "model.dropout=0.2"]),
            ("autoencoder-previous", config, ["model.kind=autoencoder", "data.inputs=\(dir)/ae.npy", "model.cell=gru", "model.hidden=10",
                                              "model.latent=3", "model.decoder_input=previous_output", "loss.kind=l1"]),
            ("autoencoder-stacks", config, ["model.kind=autoencoder", "data.inputs=\(dir)/ae.npy", "model.latent=4",
                                            "model.encoder=[{type = \"conv1d\", filters = 4, kernel_size = 3, "
                                                + "padding = \"causal\", activation = \"relu\"}, {type = \"lstm\", "
                                                + "hidden = 6, layers = 2, bidirectional = true, dropout = 0.2}]",
                                            "model.decoder=[{type = \"gru\", hidden = 5}, {type = \"dropout\", "
                                                + "p = 0.1}, {type = \"lstm\", hidden = 7}]"]),
            ("seq2seq-sampled", config, ["model.kind=seq2seq", "data.paths=\(dir)/words.txt", "model.hidden=16", "model.embedding=8",
                                         "model.layers=2", "model.dropout=0.2", "training.teacher_forcing=linear", "training.teacher_forcing_slope=0.05",
                                         "training.sampling_temperature=1"]),
            ("seq2seq-variational", config, ["model.kind=seq2seq", "data.paths=\(dir)/words.txt", "model.cell=lstm", "model.hidden=16",
                                             "model.embedding=8", "model.variational=true", "loss.kl_warmup_steps=10",
                                             "training.teacher_forcing=inverse_sigmoid", "training.teacher_forcing_k=5"]),
            ("forecaster-windows", config, ["model.kind=forecaster", "data.inputs=\(dir)/series.npy", "model.hidden=12", "model.horizon=4",
                                            "training.look_back=24", "model.layers=2", "model.dropout=0.2", "eval.season=12"]),
            ("forecaster-stateful", config, ["model.kind=forecaster", "data.inputs=\(dir)/series.npy", "model.hidden=12", "model.horizon=3",
                                             "training.stateful=true", "training.seq_len=10", "data.difference=true"]),
            ("forecaster-window-stack", config, [
                "model.kind=forecaster", "data.inputs=\(dir)/series.npy", "model.horizon=2", "training.look_back=24",
                "model.layers=[{type = \"conv1d\", filters = 6, kernel_size = 3, dilation = 2, padding = \"causal\", "
                    + "activation = \"relu\"}, {type = \"lstm\", hidden = 8, bidirectional = true}, "
                    + "{type = \"dropout\", p = 0.1}, {type = \"dense\", units = 6, activation = \"relu\"}]"]),
            ("forecaster-stateful-stack", config, [
                "model.kind=forecaster", "data.inputs=\(dir)/series.npy", "model.horizon=2", "training.stateful=true",
                "training.seq_len=10",
                "model.layers=[{type = \"lstm\", hidden = 8}, {type = \"dense\", units = 6, activation = \"tanh\"}, "
                    + "{type = \"gru\", hidden = 6, layers = 2, dropout = 0.2}]"]),
        ]
    }
}
