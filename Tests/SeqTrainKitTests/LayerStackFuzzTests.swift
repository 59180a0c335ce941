import Foundation
import XCTest
import SeqTrainKit

/// Every field of every layer type (the parser's own lists, not a hand-picked set), given
/// every class of value, in every stack key of every kind that reads one: the config is either
/// refused with an error naming the entry and the field, or the experiment is built and trains a
/// step. Nothing traps (an allocation too large, an overflow, a force unwrap would end this process).
final class LayerStackFuzzTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// TOML values of every class: small, zero, negative, beyond the limits, huge, fractional,
    /// non-finite, of the wrong type, and words a field might or might not accept.
    static let values = ["1", "2", "0", "-1", "4096", "16777217", "9223372036854775807", "0.5", "1e308", "nan", "-inf",
                         "true", "\"relu\"", "\"softmax\"", "\"same\"", "\"causal\"", "\"x\"", "[]", "{}", "[1, 2]"]

    /// What a type needs to be complete, so that each fuzzed field is the only odd one.
    static let required: [String: String] = [
        "lstm": "hidden = 3", "gru": "hidden = 3", "rnn": "hidden = 3",
        "conv1d": "filters = 2\nkernel_size = 2\npadding = \"causal\"", "dense": "units = 3", "dropout": "p = 0.1",
    ]

    func testEveryFieldOfEveryLayerTypeWithEveryValueClass() throws {
        let (curves, _) = SyntheticSets.curves(count: 24, length: 12, seed: 4, variableLength: true)
        try NumpyArray(floats: curves, shape: [24, 12]).write(to: "\(dir)/x.npy")
        let labels = (0..<24).map { Float($0 % 2) }
        try NumpyArray(floats: labels, shape: [24]).write(to: "\(dir)/y.npy")
        try String(repeating: "the quick brown fox jumps over the lazy dog. ", count: 20)
            .write(toFile: "\(dir)/text.txt", atomically: true, encoding: .utf8)
        // Per-step class ids for the tagger, -1 past each curve's length.
        let steps = (0..<(24 * 12)).map { curves[$0].isNaN ? Int64(-1) : Int64($0 % 3) }
        try NumpyArray(integers: steps, shape: [24, 12]).write(to: "\(dir)/tags.npy")
        let series = (0..<80).map { Float(sin(Double($0) / 5)) }
        try NumpyArray(floats: series, shape: [80]).write(to: "\(dir)/series.npy")
        let kinds: [(kind: String, data: String, model: String, keys: [String])] = [
            ("char_lm", "paths = [\"\(dir)/text.txt\"]", "embedding = 4", ["layers"]),
            ("sequence_classifier", "inputs = [\"\(dir)/x.npy\"]\nlabels = [\"\(dir)/y.npy\"]", "", ["layers"]),
            ("autoencoder", "inputs = [\"\(dir)/x.npy\"]", "latent = 2", ["encoder", "decoder"]),
            ("sequence_tagger", "inputs = [\"\(dir)/x.npy\"]\nlabels = [\"\(dir)/tags.npy\"]", "", ["layers"]),
            ("seq2seq", "paths = [\"\(dir)/text.txt\"]\nsequences = \"words\"\nunique = true",
             "embedding = 4\nlatent = 2", ["encoder", "decoder"]),
            ("forecaster", "inputs = [\"\(dir)/series.npy\"]", "horizon = 2", ["layers"]),
        ]
        let schemaKinds = ExperimentRegistry.kinds.filter { kind in
            kind.configKeys.contains { $0.type.describe.contains("layer stack") }
        }
        // Every kind the schema says reads a stack is fuzzed here.
        XCTAssertEqual(Set(schemaKinds.map(\.name)), Set(kinds.map(\.kind)))
        var refused = 0, trained = 0
        for (kind, data, model, keys) in kinds {
            for key in keys {
                for type in LayerStackConfig.types {
                    let fields = try XCTUnwrap(LayerStackConfig.fields[type]) + ["type", "activation", "hiden"]
                    for field in fields {
                        for value in Self.values {
                            let entry = (Self.required[type] ?? "").split(separator: "\n")
                                .filter { !$0.hasPrefix("\(field) =") }.joined(separator: "\n")
                            let text = """
                                [job]
                                run_dir = "\(dir)/run"
                                [data]
                                \(data)
                                [training]
                                batch_size = 4
                                [model]
                                kind = "\(kind)"
                                hidden = 3
                                \(model)
                                [[model.\(key)]]
                                \(field == "type" ? "" : "type = \"\(type)\"")
                                \(entry)
                                \(field) = \(value)
                                """
                            let place = "\(kind) \(key) \(type).\(field) = \(value)"
                            do {
                                let config = try ExperimentConfig.parse(text, source: "fuzz.toml")
                                let experiment = try XCTUnwrap(ExperimentRegistry.kind(named: kind)).make(config, 0, 1)
                                let (total, _) = try experiment.accumulateGradient(batch: 0, epoch: 0, step: 0)
                                XCTAssertTrue(total.mean.isFinite, "\(place): loss \(total.mean)")
                                trained += 1
                            } catch {
                                let message = "\(error)"
                                XCTAssertTrue(message.contains("model.\(key)"), "\(place): \(message)")
                                XCTAssertFalse(message.contains("Fatal") || message.isEmpty, "\(place): \(message)")
                                refused += 1
                            }
                        }
                    }
                }
            }
        }
        print("layer stack fuzz: \(refused) refused, \(trained) trained")
        XCTAssertGreaterThan(refused, 0)
        XCTAssertGreaterThan(trained, 0)
    }

    /// `--set model.layers.K.FIELD=VALUE` with every field of every type (and a type change, an unknown
    /// field, entries out of range) and every value class, also as bare words: the stack is either
    /// changed to an entry that parses back the same, or refused naming the override and the key.
    func testEveryFieldOverrideOfEveryLayerType() throws {
        var refused = 0, accepted = 0
        for type in LayerStackConfig.types {
            let fields = try XCTUnwrap(LayerStackConfig.fields[type]) + ["type", "hiden"]
            let entry = (Self.required[type] ?? "").split(separator: "\n").joined(separator: ", ")
            let stack = "model.layers=[{type = \"\(type)\", \(entry)}, {type = \"lstm\", hidden = 3}]"
            for field in fields {
                for index in ["0", "1", "2", "-1", "9223372036854775807"] {
                    for value in Self.values + ["causal", "relu", ""] {
                        let override = "model.layers.\(index).\(field)=\(value)"
                        do {
                            let config = try ExperimentConfig.parse("[model]\nkind = \"sequence_classifier\"\n",
                                                                    source: "fuzz.toml", overrides: [stack, override])
                            let specs = try XCTUnwrap(config.layerStack("model.layers"), override)
                            XCTAssertEqual(specs.count, 2, override)
                            accepted += 1
                        } catch let error as SeqTrainError {
                            XCTAssertTrue(error.message.contains("--set model.layers."), "\(override): \(error)")
                            refused += 1
                        }
                    }
                }
            }
        }
        print("stack field override fuzz: \(accepted) accepted, \(refused) refused")
        XCTAssertGreaterThan(accepted, 0)
        XCTAssertGreaterThan(refused, 0)
    }
}
