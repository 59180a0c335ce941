import Foundation
import XCTest
import SeqTrainKit

/// The seq2seq kind through the binary: reconstructing words in free-running mode, eval repeating
/// the logged figures, generate from text, latents and the prior, and the refusals.
final class Seq2SeqTrainingTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func seqtrain(_ arguments: [String], timeout: Double = 300) throws -> MultiRankTests.Run {
        try MultiRankTests.execute([MultiRankTests.binary] + arguments, timeout: timeout)
    }

    /// 600 made-up words to learn and 100 others to validate on.
    func writeWords() throws -> (train: [String], held: [String]) {
        let words = SyntheticSets.words(count: 700, seed: 2)
        let train = Array(words[..<600]), held = Array(words[600...])
        try (train.joined(separator: "\n") + "\n").write(toFile: "\(dir)/train.txt", atomically: true, encoding: .utf8)
        try (held.joined(separator: "\n") + "\n").write(toFile: "\(dir)/held.txt", atomically: true, encoding: .utf8)
        return (train, held)
    }

    func config(_ extra: String = "") throws -> String {
        try """
            [job]
            name = "s2s"
            seed = 3
            run_dir = "\(dir)/run"
            [data]
            paths = ["\(dir)/train.txt"]
            validation_paths = ["\(dir)/held.txt"]
            [model]
            kind = "seq2seq"
            hidden = 128
            \(extra)
            [training]
            batch_size = 32
            epochs = 80
            eval_every = 0
            teacher_forcing = "inverse_sigmoid"
            teacher_forcing_k = 100
            teacher_forcing_min = 0.2
            [optimizer]
            lr = 0.003
            [lr_scheduler]
            kind = "cosine"
            warmup_steps = 30
            [metrics]
            log_every = 20
            """.write(toFile: "\(dir)/s2s.toml", atomically: true, encoding: .utf8)
        return "\(dir)/s2s.toml"
    }

    func metrics() throws -> [[String: Any]] {
        try String(contentsOfFile: "\(dir)/run/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    func json(_ run: MultiRankTests.Run) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any], run.output)
    }

    func testSeq2SeqReconstructsTrainingWordsFreeRunningAndGenerates() throws {
        let (train, _) = try writeWords()
        let run = try seqtrain(["train", try config(), "--quiet"])
        XCTAssertEqual(run.status, 0, run.errors)

        let onTraining = try seqtrain(["eval", "\(dir)/run", "--data", "\(dir)/train.txt", "--json"])
        XCTAssertEqual(onTraining.status, 0, onTraining.errors)
        let fields = try json(onTraining)
        let exact = try XCTUnwrap(fields["exact_match"] as? Double)
        print(String(format: "seq2seq test: %.4f of the 600 training words reconstructed exactly, free-running", exact))
        XCTAssertGreaterThanOrEqual(exact, 0.9, "training words reconstructed exactly in free-running mode")
        XCTAssertGreaterThanOrEqual(fields["token_accuracy_teacher_forced"] as? Double ?? 0, fields["token_accuracy_free_running"] as? Double ?? 1)
        XCTAssertNil(fields["kl"], "no KL term without model.variational")
        XCTAssertEqual(fields["sequences"] as? Int, 600)

        // eval of the validation file gives the figures the trainer logged at its end.
        let last = try XCTUnwrap(try metrics().last)
        let held = try json(try seqtrain(["eval", "\(dir)/run", "--data", "\(dir)/held.txt", "--json"]))
        for (key, logged) in [("loss", "val_loss"), ("token_accuracy_teacher_forced", "val_token_accuracy_teacher_forced"),
                              ("token_accuracy_free_running", "val_token_accuracy_free_running"), ("exact_match", "val_exact_match")] {
            let a = try XCTUnwrap(held[key] as? Double), b = try XCTUnwrap(last[logged] as? Double)
            XCTAssertEqual(a, b, accuracy: 1e-6 + 1e-5 * abs(b), "eval's \(key) is the logged \(logged)")
        }

        // generate --from spells training words back; --latent decodes any latent vectors.
        let some = Array(train.prefix(10))
        // The training text has a sequence per line, and so does --from.
        let spelled = try seqtrain(["generate", "\(dir)/run", "--from", some.joined(separator: "\n")])
        XCTAssertEqual(spelled.status, 0, spelled.errors)
        let lines = spelled.output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
        XCTAssertEqual(lines.count, 10)
        XCTAssertGreaterThanOrEqual(zip(lines, some).filter { $0 == $1 }.count, 8, "\(lines) for \(some)")
        let random = CounterRandom(seed: 4, purpose: .synthetic)
        try NumpyArray(floats: (0..<(3 * 32)).map { random.normal(stream: 0, index: UInt64($0)) }, shape: [3, 32]).write(to: "\(dir)/z.npy")
        let decoded = try seqtrain(["generate", "\(dir)/run", "--latent", "\(dir)/z.npy", "--temperature", "0.5", "--seed", "7"])
        XCTAssertEqual(decoded.status, 0, decoded.errors)
        XCTAssertEqual(decoded.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().count, 3)
        let again = try seqtrain(["generate", "\(dir)/run", "--latent", "\(dir)/z.npy", "--temperature", "0.5", "--seed", "7"])
        XCTAssertEqual(again.output, decoded.output, "the same seed draws the same sequences")

        // Refusals: the prior of a model that has none, a latent of the wrong width, a wrong kind.
        let prior = try seqtrain(["generate", "\(dir)/run", "--prior", "3"])
        XCTAssertEqual(prior.status, 2)
        XCTAssertTrue(prior.errors.contains("is not variational (model.variational = false)"), prior.errors)
        try NumpyArray(floats: [Float](repeating: 0, count: 8), shape: [2, 4]).write(to: "\(dir)/narrow.npy")
        let narrow = try seqtrain(["generate", "\(dir)/run", "--latent", "\(dir)/narrow.npy"])
        XCTAssertTrue(narrow.errors.contains("shape [2, 4]; the model decodes (N, 32) latent vectors"), narrow.errors)
        let both = try seqtrain(["generate", "\(dir)/run", "--prior", "3", "--from", "x"])
        XCTAssertTrue(both.errors.contains("give exactly one of --from TEXT, --latent FILE.npy and --prior N"), both.errors)

        // encode writes the latent means of given text; generate --latent spells them back as
        // generate --from does.
        try (some.joined(separator: "\n") + "\n").write(toFile: "\(dir)/some.txt", atomically: true, encoding: .utf8)
        let encode = try seqtrain(["encode", "\(dir)/run", "--data", "\(dir)/some.txt", "--out", "\(dir)/e.npy"])
        XCTAssertEqual(encode.status, 0, encode.errors)
        XCTAssertEqual(try NumpyArray(contentsOf: "\(dir)/e.npy").shape, [10, 32])
        let fromLatents = try seqtrain(["generate", "\(dir)/run", "--latent", "\(dir)/e.npy"])
        XCTAssertEqual(fromLatents.status, 0, fromLatents.errors)
        XCTAssertEqual(fromLatents.output, spelled.output, "the encoded means decode to what --from gives")
    }

    /// A variational model: the KL term is logged and evaluated, the prior can be sampled, and the
    /// same seed samples the same sequences.
    func testVariationalSeq2SeqSamplesFromThePrior() throws {
        _ = try writeWords()
        let path = try config("variational = true")
        let run = try seqtrain(["train", path, "--quiet", "--set", "training.epochs=20", "--set", "loss.kl_warmup_steps=200"])
        XCTAssertEqual(run.status, 0, run.errors)
        let last = try XCTUnwrap(try metrics().last)
        XCTAssertGreaterThan(last["val_kl"] as? Double ?? -1, 0)
        let fields = try json(try seqtrain(["eval", "\(dir)/run", "--data", "\(dir)/held.txt", "--json"]))
        XCTAssertEqual(fields["kl"] as? Double ?? .nan, last["val_kl"] as? Double ?? 0, accuracy: 1e-5 * (last["val_kl"] as? Double ?? 1))
        let sampled = try seqtrain(["generate", "\(dir)/run", "--prior", "5", "--temperature", "1", "--seed", "3"])
        XCTAssertEqual(sampled.status, 0, sampled.errors)
        XCTAssertEqual(sampled.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().count, 5)
        XCTAssertEqual(try seqtrain(["generate", "\(dir)/run", "--prior", "5", "--temperature", "1", "--seed", "3"]).output, sampled.output)
        XCTAssertNotEqual(try seqtrain(["generate", "\(dir)/run", "--prior", "5", "--temperature", "1", "--seed", "4"]).output, sampled.output)
    }

    /// `[[model.encoder]]` (a conv1d and a 2-level bidirectional GRU, its h_n to the latent) and a
    /// `[[model.decoder]]` of one 2-level LSTM entry, variational: the ModuleList names in the
    /// checkpoint, learning, eval repeating the logged figures, encode and generate (--from,
    /// --latent, --prior) on the stack checkpoint, and the shorthand keys named as ignored.
    func testLayerStacksTrainEvaluateEncodeAndGenerate() throws {
        let words = SyntheticSets.words(count: 240, seed: 6)
        try (words[..<200].joined(separator: "\n") + "\n").write(toFile: "\(dir)/train.txt", atomically: true,
                                                                 encoding: .utf8)
        try (words[200...].joined(separator: "\n") + "\n").write(toFile: "\(dir)/held.txt", atomically: true,
                                                                  encoding: .utf8)
        let stacks = """
            variational = true
            cell = "lstm"
            latent = 8
            [[model.encoder]]
            type = "conv1d"
            filters = 16
            kernel_size = 3
            padding = "same"
            activation = "relu"
            [[model.encoder]]
            type = "gru"
            hidden = 24
            layers = 2
            bidirectional = true
            [[model.decoder]]
            type = "lstm"
            hidden = 32
            layers = 2
            dropout = 0.1
            """
        let path = try config(stacks)
        let parsed = try ExperimentConfig.load(path: path)
        XCTAssertEqual(parsed.warnings, ["model.cell, model.hidden are ignored: model.encoder and model.decoder "
                                         + "give the layer stacks, and each of its layers its own sizes"])
        let resolved = try seqtrain(["config", path])
        XCTAssertTrue(resolved.output.contains("encoder = [{type = \"conv1d\", filters = 16, kernel_size = 3")
                        && resolved.output.contains("decoder = [{type = \"lstm\", hidden = 32, layers = 2"),
                      resolved.output)
        let run = try seqtrain(["train", path, "--quiet", "--set", "training.epochs=40", "--set", "optimizer.lr=0.01",
                                "--set", "training.teacher_forcing=constant", "--set", "metrics.log_every=5",
                                "--set", "loss.kl_warmup_steps=1000"])
        XCTAssertEqual(run.status, 0, run.errors)
        let logged = try metrics()
        let losses = logged.compactMap { $0["loss"] as? Double }, last = try XCTUnwrap(logged.last)
        XCTAssertLessThan(try XCTUnwrap(losses.last), 0.75 * (try XCTUnwrap(losses.first)),
                          "the stack model learns: \(losses)")
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/run/checkpoints")
        let file = try XCTUnwrap(checkpoints.filter { $0.hasSuffix(".safetensors") && !$0.contains(".state.") }.max())
        let names = Set(try SafetensorsFile(contentsOf: "\(dir)/run/checkpoints/\(file)").tensors.keys)
        for name in ["embedding.weight", "encoder.0.weight", "encoder.1.weight_ih_l1_reverse", "to_mean.weight",
                     "to_state.weight", "decoder.0.weight_hh_l1", "head.weight"] {
            XCTAssertTrue(names.contains(name), "\(name) not in \(names)")
        }
        XCTAssertFalse(names.contains("encoder.weight_ih_l0"), "no shorthand names beside the stacks")

        let held = try json(try seqtrain(["eval", "\(dir)/run", "--data", "\(dir)/held.txt", "--json"]))
        for (key, name) in [("loss", "val_loss"), ("exact_match", "val_exact_match"), ("kl", "val_kl")] {
            let a = try XCTUnwrap(held[key] as? Double), b = try XCTUnwrap(last[name] as? Double)
            XCTAssertEqual(a, b, accuracy: 1e-6 + 1e-5 * abs(b), "eval's \(key) is the logged \(name)")
        }
        let some = Array(words.prefix(6))
        try (some.joined(separator: "\n") + "\n").write(toFile: "\(dir)/some.txt", atomically: true, encoding: .utf8)
        let spelled = try seqtrain(["generate", "\(dir)/run", "--from", some.joined(separator: "\n")])
        XCTAssertEqual(spelled.status, 0, spelled.errors)
        XCTAssertEqual(spelled.output.split(separator: "\n").count, 6, spelled.output)
        let encode = try seqtrain(["encode", "\(dir)/run", "--data", "\(dir)/some.txt", "--out", "\(dir)/e.npy"])
        XCTAssertEqual(encode.status, 0, encode.errors)
        XCTAssertEqual(try NumpyArray(contentsOf: "\(dir)/e.npy").shape, [6, 8])
        let fromLatents = try seqtrain(["generate", "\(dir)/run", "--latent", "\(dir)/e.npy"])
        XCTAssertEqual(fromLatents.output, spelled.output, "the encoded means decode to what --from gives")
        let sampled = try seqtrain(["generate", "\(dir)/run", "--prior", "4", "--temperature", "1", "--seed", "5"])
        XCTAssertEqual(sampled.status, 0, sampled.errors)
        XCTAssertEqual(sampled.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().count, 4)
    }

    func testImpossibleRequestsAreRefusedNamingTheKey() throws {
        _ = try writeWords()
        let path = try config()
        try "".write(toFile: "\(dir)/empty.txt", atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["data.paths=[]"], "data.paths: no text files"),
            (["data.paths=\(dir)/empty.txt"], "data.paths: \(dir)/empty.txt holds no sequences of 1 to 64 tokens"),
            (["data.max_length=70000"], "data.max_length = 70000: at most 60000 tokens per sequence"),
            (["training.teacher_forcing=scheduled"], "training.teacher_forcing: expected one of \"constant\", \"linear\", \"exponential\", \"inverse_sigmoid\""),
            (["training.teacher_forcing_start=1.5"], "training.teacher_forcing_start and training.teacher_forcing_min are probabilities"),
            (["model.hidden=4294967296"], "steps would need"),
            // The decoder is stepped token by token: one unidirectional recurrent entry.
            (["model.decoder=[{type = \"gru\", hidden = 8, bidirectional = true}]"],
             "model.decoder[0]: a bidirectional layer reads every step's future"),
            (["model.decoder=[{type = \"conv1d\", filters = 4, kernel_size = 3, padding = \"causal\"}]"],
             "model.decoder[0]: a conv1d entry; the decoder runs one token at a time"),
            (["model.decoder=[{type = \"dense\", units = 4}]"], "model.decoder[0]: a dense entry; the decoder runs"),
            (["model.decoder=[{type = \"lstm\", hidden = 8}, {type = \"lstm\", hidden = 4}]"],
             "model.decoder: 2 entries; the decoder runs one token at a time (generation and scheduled sampling"),
            (["model.encoder=[{type = \"conv1d\", filters = 4, kernel_size = 40}]"],
             "model.encoder: the shortest training sequence has"),
        ]
        for (sets, message) in cases {
            let result = try seqtrain(["train", path, "--quiet"] + sets.flatMap { ["--set", $0] })
            XCTAssertEqual(result.status, 2, "\(sets)")
            XCTAssertTrue(result.errors.contains(message), "\(sets): \(result.errors)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/run/metrics.jsonl"))
        }
    }
}
