import Foundation
import XCTest
import SeqTrainKit

/// The autoencoder kind through the binary: learning generated curves, eval repeating the logged
/// figures, encode and score, and the refusals of impossible requests.
final class AutoencoderTrainingTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func seqtrain(_ arguments: [String], timeout: Double = 300) throws -> MultiRankTests.Run {
        try MultiRankTests.execute([MultiRankTests.binary] + arguments, timeout: timeout)
    }

    func writeCurves(_ name: String, count: Int, length: Int, seed: UInt64) throws -> String {
        let (inputs, _) = SyntheticSets.curves(count: count, length: length, seed: seed)
        try NumpyArray(floats: inputs, shape: [count, length]).write(to: "\(dir)/\(name).npy")
        return "\(dir)/\(name).npy"
    }

    func config(_ extra: String = "") throws -> String {
        let path = "\(dir)/ae.toml"
        try """
            [job]
            name = "ae"
            seed = 2
            run_dir = "\(dir)/run"
            [data]
            inputs = ["\(dir)/train.npy"]
            validation_inputs = ["\(dir)/held.npy"]
            [model]
            kind = "autoencoder"
            cell = "gru"
            hidden = 64
            latent = 32
            [training]
            batch_size = 32
            epochs = 60
            eval_every = 500
            [optimizer]
            lr = 0.01
            [lr_scheduler]
            kind = "cosine"
            warmup_steps = 100
            [metrics]
            log_every = 50
            \(extra)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Below 10% of the data's variance on held-out curves; eval of those files gives the figures
    /// the trainer logged; encode writes one latent vector per sample; score ranks damaged curves
    /// above every intact one.
    func testAutoencoderLearnsCurvesAndEvalEncodeAndScoreWork() throws {
        let train = try writeCurves("train", count: 1600, length: 100, seed: 1)
        let held = try writeCurves("held", count: 300, length: 100, seed: 2)
        let run = try seqtrain(["train", try config(), "--quiet"], timeout: 600)
        XCTAssertEqual(run.status, 0, run.errors)
        let last = try XCTUnwrap(try metrics().last)
        let ratio = try XCTUnwrap(last["val_variance_ratio"] as? Double)
        print(String(format: "autoencoder test: held-out reconstruction error %.4f of the data's variance after %d steps", ratio, last["step"] as? Int ?? 0))
        XCTAssertLessThan(ratio, 0.1, "held-out reconstruction MSE below 10% of the variance")
        _ = train

        let eval = try seqtrain(["eval", "\(dir)/run", "--data", held, "--json"])
        XCTAssertEqual(eval.status, 0, eval.errors)
        let fields = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(eval.output.utf8)) as? [String: Any])
        for (key, logged) in [("reconstruction_mse", "val_reconstruction_mse"), ("variance_ratio", "val_variance_ratio"), ("loss", "val_loss")] {
            let a = try XCTUnwrap(fields[key] as? Double), b = try XCTUnwrap(last[logged] as? Double)
            XCTAssertEqual(a, b, accuracy: 1e-5 * abs(b), "eval's \(key) is the logged \(logged)")
        }
        XCTAssertEqual(fields["samples"] as? Int, 300)

        let encoded = try seqtrain(["encode", "\(dir)/run", "--data", held, "--out", "\(dir)/z.npy"])
        XCTAssertEqual(encoded.status, 0, encoded.errors)
        let latents = try NumpyArray(contentsOf: "\(dir)/z.npy")
        XCTAssertEqual(latents.shape, [300, 32])
        XCTAssertTrue(latents.floats().allSatisfy { $0.isFinite } && Set(latents.floats()).count > 300)
        let csv = try seqtrain(["encode", "\(dir)/run", "--data", held, "--out", "\(dir)/z.csv"])
        XCTAssertEqual(csv.status, 0, csv.errors)
        let rows = try String(contentsOfFile: "\(dir)/z.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rows.count, 301)
        XCTAssertEqual(rows[0], "sample," + (0..<32).map { "z\($0)" }.joined(separator: ","))

        // Ten curves of the held set with a burst of noise in the middle: the anomalies.
        var damaged = try NumpyArray(contentsOf: held).floats()
        let random = CounterRandom(seed: 8, purpose: .synthetic)
        for s in 0..<10 { for t in 40..<60 { damaged[s * 100 + t] += 3 * random.normal(stream: UInt64(s), index: UInt64(t)) } }
        try NumpyArray(floats: damaged, shape: [300, 100]).write(to: "\(dir)/damaged.npy")
        let scored = try seqtrain(["score", "\(dir)/run", "--data", "\(dir)/damaged.npy", "--out", "\(dir)/scores.csv"])
        XCTAssertEqual(scored.status, 0, scored.errors)
        let scores = try String(contentsOfFile: "\(dir)/scores.csv", encoding: .utf8).split(separator: "\n").dropFirst()
            .map { Double($0.split(separator: ",")[1])! }
        XCTAssertEqual(scores.count, 300)
        let intact = scores[10...].max()!
        XCTAssertTrue(scores[..<10].allSatisfy { $0 > intact }, "every damaged curve scores above every intact one: \(scores[..<10]) vs \(intact)")
    }

    /// A checkpoint trained on a CSV with a header reads new files by column name: the same rows
    /// with the columns reversed (and an id column in front) evaluate to the same loss; a file
    /// without one of the columns is an error naming it.
    func testCSVColumnsAreReadByTheirHeaderNames() throws {
        let (count, length) = (40, 12)
        let (inputs, _) = SyntheticSets.curves(count: count, length: length, seed: 1)
        let names = (0..<length).map { "t\($0)" }
        func write(_ name: String, columns: [Int], id: Bool = false) throws -> String {
            var lines = [((id ? ["id"] : []) + columns.map { names[$0] }).joined(separator: ",")]
            for row in 0..<count {
                lines.append(((id ? ["\(row)"] : []) + columns.map { "\(inputs[row * length + $0])" }).joined(separator: ","))
            }
            try (lines.joined(separator: "\n") + "\n").write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8)
            return "\(dir)/\(name)"
        }
        let original = try write("original.csv", columns: Array(0..<length))
        let reversed = try write("reversed.csv", columns: Array((0..<length).reversed()), id: true)
        let narrow = try write("narrow.csv", columns: Array(0..<length).filter { $0 != 5 })
        let sets = ["data.inputs=\(original)", "data.validation_inputs=[]", "data.header=true", "training.max_steps=2",
                    "model.hidden=8", "model.latent=4", "training.batch_size=8", "training.workers=1"]
        let trained = try seqtrain(["train", try config(), "--quiet"] + sets.flatMap { ["--set", $0] })
        XCTAssertEqual(trained.status, 0, trained.errors)
        func loss(_ path: String) throws -> Double {
            let run = try seqtrain(["eval", "\(dir)/run", "--data", path, "--json"])
            XCTAssertEqual(run.status, 0, run.errors)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any])
            return try XCTUnwrap(json["loss"] as? Double, run.output)
        }
        let expected = try loss(original)
        XCTAssertEqual(try loss(reversed), expected, accuracy: 1e-9 * max(1, abs(expected)))
        let missing = try seqtrain(["eval", "\(dir)/run", "--data", narrow])
        XCTAssertEqual(missing.status, 2, missing.output)
        XCTAssertTrue(missing.errors.contains("narrow.csv has no column t5"), missing.errors)
    }

    func metrics() throws -> [[String: Any]] {
        try String(contentsOfFile: "\(dir)/run/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    /// `[[model.encoder]]` / `[[model.decoder]]` stacks (two LSTMs of different widths each way, as a
    /// PyTorch user's 16 → 8): the shorthand keys left beside them are named as ignored, the
    /// checkpoint holds the ModuleList names, and an interrupted run resumes bit for bit.
    func testLayerStacksNameTheIgnoredShorthandAndResumeBitForBit() throws {
        _ = try writeCurves("train", count: 48, length: 20, seed: 1)
        _ = try writeCurves("held", count: 16, length: 20, seed: 2)
        let stacks = """
            [[model.encoder]]
            type = "lstm"
            hidden = 16
            [[model.encoder]]
            type = "lstm"
            hidden = 8
            dropout = 0.1
            [[model.decoder]]
            type = "lstm"
            hidden = 8
            [[model.decoder]]
            type = "dropout"
            p = 0.2
            [[model.decoder]]
            type = "lstm"
            hidden = 16
            """
        // The stacks go under [model]; the sections config() writes after it follow them.
        let text = try String(contentsOfFile: try config(), encoding: .utf8)
            .replacingOccurrences(of: "latent = 32\n", with: "latent = 4\n\(stacks)\n")
            .replacingOccurrences(of: "epochs = 60", with: "epochs = 20\nmax_steps = 30")
            .replacingOccurrences(of: "eval_every = 500", with: "eval_every = 10\n[checkpoint]\ninterval = 15")
        func parsed() throws -> ExperimentConfig { try ExperimentConfig.parse(text, source: "\(dir)/ae.toml") }
        XCTAssertEqual(try parsed().warnings, ["model.cell, model.hidden are ignored: model.encoder and model.decoder "
                                               + "give the layer stacks, and each of its layers its own sizes"])
        var options = TrainerOptions()
        options.quiet = true
        options.overwrite = true
        let whole = try Trainer(config: try parsed(), options: options)
        let full = try whole.run()
        let names = whole.experiment.trainableModel.parameters.layout.entries.map(\.name)
        for name in ["encoder.0.weight_ih_l0", "encoder.1.weight_hh_l0", "to_latent.weight", "decoder.0.weight_ih_l0",
                     "decoder.2.bias_hh_l0", "head.weight"] {
            XCTAssertTrue(names.contains(name), "\(name) not in \(names)")
        }
        let weights = whole.experiment.trainableModel.parameters.values.array
        options.failure = (0, 22, .raise)
        XCTAssertThrowsError(try Trainer(config: try parsed(), options: options).run())
        options.failure = nil
        options.overwrite = false
        options.resume = true
        let resumed = try Trainer(config: try parsed(), options: options)
        let rest = try resumed.run()
        XCTAssertEqual(rest.losses, Array(full.losses[15...]))
        XCTAssertEqual(resumed.experiment.trainableModel.parameters.values.array, weights)
    }

    /// Mistakes are errors naming the key or file, before anything is written.
    func testImpossibleRequestsAreRefusedNamingTheKey() throws {
        _ = try writeCurves("train", count: 40, length: 20, seed: 1)
        let path = try config()
        try NumpyArray(floats: [Float](repeating: 1, count: 40 * 20 * 2), shape: [40, 20, 2]).write(to: "\(dir)/two.npy")
        let cases: [([String], String)] = [
            (["data.inputs=[]"], "data.inputs: no input files"),
            (["data.ignore_columns=[0]", "data.validation_inputs=[]"], "data.ignore_columns: \(dir)/train.npy is a .npy file, which has no columns"),
            (["data.validation_inputs=\(dir)/two.npy"], "data.validation_inputs: sequences have 2 features per step, the training inputs 1"),
            (["loss.kind=bce"], "loss.kind: expected one of \"mse\", \"l1\""),
            (["model.decoder_input=teacher"], "model.decoder_input: expected one of \"repeat\", \"previous_output\""),
            (["model.latent=4294967296", "data.validation_inputs=[]"], "model.latent = 4294967296 exceeds the 2147483647 rows or columns a BLAS matrix may have"),
            (["data.validation_inputs=[]", "model.decoder_input=previous_output",
              "model.decoder=[{type = \"lstm\", hidden = 4}, "
                + "{type = \"dense\", units = 3}]"],
             "model.decoder: with model.decoder_input = \"previous_output\" the decoder runs one step at a time"),
            (["data.validation_inputs=[]", "model.decoder=[{type = \"conv1d\", filters = 4, kernel_size = 3}]"],
             "model.decoder[0] (conv1d): padding = \"valid\" drops"),
            (["model.encoder=[{type = \"conv1d\", filters = 4, kernel_size = 30}]", "data.validation_inputs=[]"],
             "model.encoder: the shortest training sequence has 20 steps, too few for the stack's convolutions"),
            (["model.encoder=[{type = \"gru\", hidden = 4, activation = \"relu\"}]"],
             "model.encoder[0].activation: a GRU's cell activation is tanh"),
        ]
        for (sets, message) in cases {
            let result = try seqtrain(["train", path, "--quiet"] + sets.flatMap { ["--set", $0] })
            XCTAssertEqual(result.status, 2, "\(sets)")
            XCTAssertTrue(result.errors.contains(message), "\(sets): \(result.errors)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/run/metrics.jsonl"))
        }
        let wrongKind = try seqtrain(["encode", "\(dir)/nothing", "--data", "\(dir)/train.npy", "--out", "\(dir)/z.npy"])
        XCTAssertTrue(wrongKind.errors.contains("no such checkpoint file or run directory"), wrongKind.errors)
    }
}
