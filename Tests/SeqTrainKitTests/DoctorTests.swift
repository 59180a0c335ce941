import Foundation
import XCTest
import SeqTrainKit

/// The doctor's rules that watch training (overfitting, a classifier at chance level, posterior
/// collapse): each on planted figures, end to end on runs made to show it, silenced by
/// `doctor.silence`, and quiet on the shipped configs.
final class DoctorTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static let overfitted = "the model looks overfitted", atChance = "the classifier is no better than chance"
    static let collapsed = "posterior collapse"

    // MARK: planted figures

    func testOverfittingNeedsTheValidationFigureToWorsenWhileTheTrainingLossFalls() {
        var watch = OverfittingDetector(monitor: "val_loss", mode: .min, patience: 3, stopping: .off)
        let validation = [1.0, 0.8, 0.7, 0.75, 0.8, 0.9, 1.0], training = [2.0, 1.5, 1.2, 1.0, 0.8, 0.6, 0.5]
        var found: [(Int, DoctorFinding)] = []
        for (k, (value, loss)) in zip(validation, training).enumerated() {
            if let finding = watch.observe(step: 100 * (k + 1), value: value, trainingLoss: loss) {
                found.append((k, finding))
            }
        }
        XCTAssertEqual(found.count, 1, "once per run, though the figure keeps worsening")
        XCTAssertEqual(found.first?.0, 5, "the third worsening in a row (0.7 → 0.75 → 0.8 → 0.9)")
        let text = found.first?.1.text ?? ""
        XCTAssertEqual(found.first?.1.rule, .overfitting)
        XCTAssertTrue(text.hasPrefix("\(Self.overfitted): val_loss got worse at 3 validations in a row"
            + " (steps 300 to 600: 0.7 → 0.75 → 0.8 → 0.9) while the training loss fell from 1.2 to 0.6."), text)
        for words in ["[training.early_stopping] patience = 3 with restore_best = true", "checkpoint.keep_best",
                      "model.dropout", "optimizer.weight_decay", "doctor.silence = [\"overfitting\"]"] {
            XCTAssertTrue(text.contains(words), "\(words): \(text)")
        }

        // The training loss rising too is no overfitting (the run diverges, or the rate is too high).
        var rising = OverfittingDetector(monitor: "val_loss", mode: .min, patience: 3, stopping: .off)
        for (k, value) in [0.7, 0.75, 0.8, 0.9].enumerated() {
            XCTAssertNil(rising.observe(step: k, value: value, trainingLoss: 1 + Double(k)))
        }
        // One better validation inside the span breaks the run of worsenings.
        var noisy = OverfittingDetector(monitor: "val_loss", mode: .min, patience: 3, stopping: .off)
        for (k, value) in [0.7, 0.75, 0.74, 0.8, 0.78].enumerated() {
            XCTAssertNil(noisy.observe(step: k, value: value, trainingLoss: 1 - 0.1 * Double(k)))
        }
        // A drift under 1% of the figure is noise.
        var flat = OverfittingDetector(monitor: "val_loss", mode: .min, patience: 3, stopping: .off)
        for (k, value) in [0.7, 0.7001, 0.7002, 0.7003].enumerated() {
            XCTAssertNil(flat.observe(step: k, value: value, trainingLoss: 1 - 0.1 * Double(k)))
        }
        // Higher is better for F1: a falling F1 is the worsening.
        var f1 = OverfittingDetector(monitor: "val_macro_f1", mode: .max, patience: 2, stopping: .off)
        let f1Found = [0.8, 0.7, 0.6].enumerated().compactMap { k, value in
            f1.observe(step: k + 1, value: value, trainingLoss: 1 - 0.1 * Double(k))
        }
        XCTAssertEqual(f1Found.count, 1)
        XCTAssertTrue(f1Found.first?.text.contains("val_macro_f1 got worse at 2 validations in a row") == true)
        // Early stopping that restores the best weights already acts on it; without restoring, the
        // warning says the run ends with the worse weights.
        var restoring = OverfittingDetector(monitor: "val_loss", mode: .min, patience: 2, stopping: .restoresBest)
        var lastWeights = OverfittingDetector(monitor: "val_loss", mode: .min, patience: 2,
                                              stopping: .stopsWithLastWeights)
        var kept: [DoctorFinding] = []
        for (k, value) in [0.7, 0.8, 0.9].enumerated() {
            XCTAssertNil(restoring.observe(step: k, value: value, trainingLoss: 1 - 0.1 * Double(k)))
            if let finding = lastWeights.observe(step: k, value: value, trainingLoss: 1 - 0.1 * Double(k)) {
                kept.append(finding)
            }
        }
        XCTAssertEqual(kept.count, 1)
        XCTAssertTrue(kept.first?.text.contains("training.early_stopping.restore_best = true") == true, "\(kept)")
    }

    func testChanceLevelsOfSingleAndMultiLabelCounts() throws {
        // Single-label, 3 classes, 10 samples of supports 6, 3, 1 (rows: true class).
        var single = ClassificationCounts(multiLabel: false, classes: ["a", "b", "c"])
        single.samples = 10
        single.exact = 6
        single.counts = [6, 0, 0, 3, 0, 0, 1, 0, 0]
        let levels = single.chanceLevels(plainLoss: true)
        XCTAssertEqual(levels["val_accuracy"] ?? 0, 0.6, accuracy: 1e-12)
        XCTAssertEqual(levels["val_macro_f1"] ?? 0, 1.0 / 3, accuracy: 1e-12)
        let priorEntropy: Double = -(0.6 * log(0.6) + 0.3 * log(0.3) + 0.1 * log(0.1))
        XCTAssertEqual(levels["val_loss"] ?? 0, priorEntropy, accuracy: 1e-12)
        XCTAssertNil(single.chanceLevels(plainLoss: false)["val_loss"], "a weighted loss has no known chance level")
        // Predicting the majority class, as such a model does, scores at most the chance levels.
        XCTAssertEqual(single.accuracy, 0.6, accuracy: 1e-12)
        XCTAssertLessThanOrEqual(single.macroF1, levels["val_macro_f1"] ?? 0)

        // Multi-label, 2 labels over 10 samples, positive in 5 and 2: (tp, fp, fn, support) per label.
        var multi = ClassificationCounts(multiLabel: true, classes: ["x", "y"])
        multi.samples = 10
        multi.counts = [0, 0, 5, 5, 0, 0, 2, 2]
        let multiLevels = multi.chanceLevels(plainLoss: true)
        let allPositive: Double = (2 * 0.5 / 1.5 + 2 * 0.2 / 1.2) / 2
        XCTAssertEqual(multiLevels["val_macro_f1"] ?? 0, allPositive, accuracy: 1e-12)
        XCTAssertEqual(multiLevels["val_micro_f1"] ?? 0, 2 * 0.35 / 1.35, accuracy: 1e-12)
        let entropy = { (p: Double) in -(p * log(p) + (1 - p) * log(1 - p)) }
        XCTAssertEqual(multiLevels["val_loss"] ?? 0, (entropy(0.5) + entropy(0.2)) / 2, accuracy: 1e-12)
        XCTAssertNil(multiLevels["val_exact_match"])
    }

    func testChanceLevelWaitsForAThirdOfTheRunAndNeedsEveryFigureAtChance() {
        func figures(_ accuracy: Double, _ loss: Double) -> [ChanceLevelDetector.Figure] {
            [.init(name: "val_accuracy", value: accuracy, chance: 0.6),
             .init(name: "val_loss", value: loss, chance: 0.9)]
        }
        var watch = ChanceLevelDetector()
        func see(_ step: Int, _ accuracy: Double, _ loss: Double, _ causes: String) -> DoctorFinding? {
            watch.observe(step: step, totalSteps: 100, figures: figures(accuracy, loss), causes: causes)
        }
        XCTAssertNil(see(30, 0.6, 0.95, "C."), "before a third")
        XCTAssertNil(see(40, 0.7, 0.95, "C."), "accuracy above")
        XCTAssertNil(see(40, 0.6, 0.8, "C."), "loss below")
        let finding = see(50, 0.61, 0.89, "Likely causes: C.")
        XCTAssertEqual(finding?.rule, .chanceLevel)
        XCTAssertEqual(finding?.text, "\(Self.atChance) at step 50 of 100: val_accuracy 0.6100 (chance 0.6000),"
            + " val_loss 0.8900 (chance 0.9000). A model that learned nothing but the class shares scores this."
            + " Likely causes: C. (silence this with doctor.silence = [\"chance_level\"])")
        XCTAssertNil(see(60, 0.6, 0.95, "C."), "once per run")
        var none = ChanceLevelDetector()
        XCTAssertNil(none.observe(step: 60, totalSteps: 100, figures: [], causes: "C."), "no figure, no finding")
    }

    func testPosteriorCollapseNeedsALowKLAndTheSameOutputsAfterTheWarmUp() {
        var watch = PosteriorCollapseDetector()
        func see(_ step: Int, _ kl: Double, _ same: Double) -> DoctorFinding? {
            watch.observe(step: step, totalSteps: 600, warmupSteps: 300, klPerSequence: kl, sameOutputPairs: same,
                          pairs: 20)
        }
        XCTAssertNil(see(150, 0.17, 19), "during the warm-up")
        XCTAssertNil(see(300, 3.2, 19), "the latent is used")
        XCTAssertNil(see(300, 0.17, 5), "different inputs give different outputs")
        let finding = see(400, 0.17, 19)
        XCTAssertEqual(finding?.rule, .posteriorCollapse)
        let text = finding?.text ?? ""
        XCTAssertTrue(text.hasPrefix("\(Self.collapsed): at step 400 the KL term is 0.170 nats per sequence"), text)
        for words in ["95% of the validation inputs", "loss.kl_warmup_steps (now 300", "model.hidden", "model.dropout",
                      "doctor.silence = [\"posterior_collapse\"]"] {
            XCTAssertTrue(text.contains(words), "\(words): \(text)")
        }
        XCTAssertFalse(text.contains("free_bits"), "no key seqtrain does not have")
        XCTAssertNil(see(500, 0.1, 20), "once per run")
    }

    // MARK: end to end

    /// Inputs of uniform noise and labels drawn independently of them: nothing to learn.
    func writeNoise(_ name: String, samples: Int, features: Int, labels: (Int, inout UInt64) -> [Float]?,
                    ids: (Int, inout UInt64) -> Int64?) throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53)
        }
        let inputs = (0..<(samples * features)).map { _ in Float(next() * 2 - 1) }
        try NumpyArray(floats: inputs, shape: [samples, features]).write(to: "\(dir)/\(name)-x.npy")
        var labelState: UInt64 = 12_345
        let matrix = (0..<samples).compactMap { labels($0, &labelState) }
        if !matrix.isEmpty {
            try NumpyArray(floats: matrix.flatMap { $0 }, shape: [samples, matrix[0].count])
                .write(to: "\(dir)/\(name)-y.npy")
        } else {
            let classIds = (0..<samples).compactMap { ids($0, &labelState) }
            try NumpyArray(integers: classIds, shape: [samples]).write(to: "\(dir)/\(name)-y.npy")
        }
    }

    static func draw(_ state: inout UInt64) -> Double {
        state = state &* 2_862_933_555_777_941_757 &+ 3_037_000_493
        return Double(state >> 11) / Double(1 << 53)
    }

    func train(_ body: String, overrides: [String] = []) throws -> (Trainer, TrainingSummary) {
        let config = try ExperimentConfig.parse("""
            [job]
            name = "doctor"
            seed = 5
            run_dir = "\(dir)/run-\(UUID().uuidString)"
            \(body)
            """, source: "\(dir)/doctor.toml", overrides: overrides)
        var options = TrainerOptions()
        options.quiet = true
        options.doctor = false
        let trainer = try Trainer(config: config, options: options)
        return (trainer, try trainer.run())
    }

    func findings(_ trainer: Trainer, _ prefix: String) -> [String] {
        trainer.diagnoses.filter { $0.hasPrefix(prefix) }
    }

    func testAnMLPOnNoiseLabelsIsAtChanceAndASequenceClassifierToo() throws {
        // Single-label, classes of shares 0.6, 0.3, 0.1 drawn regardless of the inputs.
        try writeNoise("single", samples: 160, features: 16, labels: { _, _ in nil }, ids: { _, state in
            let u = Self.draw(&state)
            return u < 0.6 ? 0 : u < 0.9 ? 1 : 2
        })
        let (mlp, _) = try train("""
            [data]
            inputs = ["\(dir)/single-x.npy"]
            labels = ["\(dir)/single-y.npy"]
            validation_fraction = 0.25
            [model]
            kind = "mlp_classifier"
            hidden_sizes = [16]
            [training]
            batch_size = 16
            max_steps = 60
            eval_every = 10
            [optimizer]
            lr = 0.003
            [checkpoint]
            interval = 0
            """)
        let single = findings(mlp, Self.atChance)
        XCTAssertEqual(single.count, 1, "\(mlp.diagnoses)")
        for words in ["val_accuracy", "val_macro_f1", "val_loss", "model.hidden_sizes = [16]", "optimizer.lr = 0.003"] {
            XCTAssertTrue(single.first?.contains(words) == true, "\(words): \(single)")
        }
        XCTAssertFalse(single.first?.contains("model.pooling") == true, "an MLP has no pooling")

        // Multi-label, three labels each positive in 30% of the samples, read by two GRU layers
        // whose last state alone is used.
        try writeNoise("multi", samples: 160, features: 12, labels: { _, state in
            (0..<3).map { _ in Self.draw(&state) < 0.3 ? 1 : 0 }
        }, ids: { _, _ in nil })
        let (gru, _) = try train("""
            [data]
            inputs = ["\(dir)/multi-x.npy"]
            labels = ["\(dir)/multi-y.npy"]
            validation_fraction = 0.25
            [model]
            kind = "sequence_classifier"
            cell = "gru"
            hidden = 8
            layers = 2
            pooling = "last"
            [training]
            batch_size = 16
            max_steps = 60
            eval_every = 10
            [checkpoint]
            interval = 0
            """)
        let multi = findings(gru, Self.atChance)
        XCTAssertEqual(multi.count, 1, "\(gru.diagnoses)")
        for words in ["val_macro_f1", "val_micro_f1", "val_loss", "model.layers = 2", "over 12 steps",
                      "model.pooling = \"last\""] {
            XCTAssertTrue(multi.first?.contains(words) == true, "\(words): \(multi)")
        }
    }

    func testAnMLPThatLearnsItsTinyTrainingSetByHeartOverfitsAndTheSettingsSilenceIt() throws {
        try writeNoise("tiny", samples: 60, features: 32, labels: { _, _ in nil }, ids: { _, state in
            Self.draw(&state) < 0.5 ? 0 : 1
        })
        let body = """
            [data]
            inputs = ["\(dir)/tiny-x.npy"]
            labels = ["\(dir)/tiny-y.npy"]
            validation_fraction = 0.25
            [model]
            kind = "mlp_classifier"
            hidden_sizes = [64, 64]
            [training]
            batch_size = 15
            max_steps = 150
            eval_every = 5
            [optimizer]
            lr = 0.01
            [checkpoint]
            interval = 0
            keep_best = false
            """
        let (run, _) = try train(body)
        let found = findings(run, Self.overfitted)
        XCTAssertEqual(found.count, 1, "\(run.diagnoses)")
        XCTAssertTrue(found.first?.contains("val_loss got worse at 3 validations in a row") == true, "\(found)")
        XCTAssertTrue(found.first?.contains("[training.early_stopping] patience = 3") == true, "\(found)")

        let (silenced, _) = try train(body, overrides: ["doctor.silence=[\"overfitting\", \"chance_level\"]"])
        XCTAssertEqual(findings(silenced, Self.overfitted), [])
        XCTAssertEqual(findings(silenced, Self.atChance), [])

        // Early stopping with restore_best stops there with the best weights: nothing to warn about.
        let (stopping, summary) = try train(body + "\n[training.early_stopping]\npatience = 3\n")
        XCTAssertEqual(findings(stopping, Self.overfitted), [], "\(stopping.diagnoses)")
        XCTAssertNotNil(summary.earlyStoppedStep)
        XCTAssertNotNil(summary.restoredStep)

        XCTAssertThrowsError(try train(body, overrides: ["doctor.silence=[\"overfiting\"]"])) { error in
            XCTAssertEqual("\(error)", "doctor.silence: \"overfiting\" is not a doctor rule; the rules that can be"
                + " silenced are \"frozen_learning\", \"overfitting\", \"chance_level\", \"posterior_collapse\"")
        }
    }

    func testAVariationalSeq2SeqWhoseLatentIsIgnoredIsCalledCollapsed() throws {
        // At a rate of 0 the decoder's free-running output is the same whatever the (tiny) latent
        // says and the KL term stays under 0.5 nats: the figures of a collapsed posterior.
        let words = SyntheticSets.words(count: 200, seed: 3)
        try (words.joined(separator: "\n") + "\n").write(toFile: "\(dir)/words.txt", atomically: true, encoding: .utf8)
        let body = """
            [data]
            paths = ["\(dir)/words.txt"]
            validation_fraction = 0.2
            [model]
            kind = "seq2seq"
            hidden = 16
            embedding = 8
            latent = 2
            variational = true
            [training]
            batch_size = 16
            max_steps = 30
            eval_every = 10
            [loss]
            kl_warmup_steps = 10
            [optimizer]
            lr = 0
            [checkpoint]
            interval = 0
            """
        let (run, summary) = try train(body)
        let found = findings(run, Self.collapsed)
        let kl = summary.validation?.metrics.first { $0.name == "val_kl" }?.value ?? .nan
        XCTAssertLessThan(kl, 0.5)
        XCTAssertEqual(found.count, 1, "KL \(kl); \(run.diagnoses)")
        XCTAssertTrue(found.first?.contains("at step 10 the KL term is") == true, "after the warm-up: \(found)")
        XCTAssertTrue(found.first?.contains("loss.kl_warmup_steps (now 10") == true, "\(found)")
        let (silenced, _) = try train(body, overrides: ["doctor.silence=posterior_collapse"])
        XCTAssertEqual(findings(silenced, Self.collapsed), [])
    }

    // MARK: the shipped configs

    /// Every shipped config, briefly, on the data its first lines say how to make (smaller): none
    /// of the three rules fires. Runs are cut to `steps` with a validation every tenth of them;
    /// schedules keep their shape (warm-up scaled to the short run).
    func testTheShippedConfigsGetNoneOfTheseWarnings() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: "\(dir)/curves", withIntermediateDirectories: true)
        let (curves, curveLabels) = SyntheticSets.curves(count: 600, length: 150, seed: 1)
        try NumpyArray(floats: curves, shape: [600, 150]).write(to: "\(dir)/curves/inputs.npy")
        try NumpyArray(floats: curveLabels, shape: [600, 7]).write(to: "\(dir)/curves/labels.npy")
        let (pixels, letters) = SyntheticSets.letters(count: 1200, seed: 1)
        try NumpyArray(shape: [1200, 28, 28], dtype: .uint8, data: Data(pixels)).write(to: "\(dir)/images.npy")
        try (letters.joined(separator: "\n") + "\n")
            .write(toFile: "\(dir)/letters.csv", atomically: true, encoding: .utf8)
        let series = SyntheticSets.series(length: 2000, features: 2, season: 24, seed: 1)
        let rows = (0..<2000).map { t in "\(series[2 * t]),\(series[2 * t + 1])" }
        try (["y0,y1"] + rows).joined(separator: "\n").appending("\n")
            .write(toFile: "\(dir)/series.csv", atomically: true, encoding: .utf8)
        let runs: [(config: String, steps: Int, sets: [String])] = [
            ("charlm", 60, ["data.paths=[\"\(root)/Sources/SeqTrainKit/Training/*.swift\"]", "model.hidden=64"]),
            ("curves_lstm", 150, ["data.inputs=\(dir)/curves/inputs.npy", "data.labels=\(dir)/curves/labels.npy",
                                  "lr_scheduler.warmup_steps=15"]),
            ("curves_fft_mlp", 150, ["data.inputs=\(dir)/curves/inputs.npy", "data.labels=\(dir)/curves/labels.npy"]),
            ("letters_mlp", 150, ["data.inputs=\(dir)/images.npy", "data.labels=\(dir)/letters.csv"]),
            ("autoencoder", 100, ["data.inputs=\(dir)/curves/inputs.npy"]),
            ("forecast", 100, ["data.inputs=\(dir)/series.csv"]),
            ("seq2seq_words", 100, ["data.paths=\(root)/README.md"]),
        ]
        for (name, steps, sets) in runs {
            let config = try ExperimentConfig.load(path: "\(root)/configs/\(name).toml", overrides: sets + [
                "training.max_steps=\(steps)", "training.epochs=auto", "training.eval_every=\(steps / 10)",
                "checkpoint.interval=0", "training.workers=1", "job.run_dir=\(dir)/runs/\(name)",
            ])
            var options = TrainerOptions()
            options.quiet = true
            options.doctor = false
            let trainer = try Trainer(config: config, options: options)
            let summary = try trainer.run()
            let watched = trainer.diagnoses.filter {
                $0.hasPrefix(Self.overfitted) || $0.hasPrefix(Self.atChance) || $0.hasPrefix(Self.collapsed)
            }
            XCTAssertEqual(watched, [], "\(name): \(summary.steps) steps, val_loss \(summary.validation?.loss ?? .nan)")
            print("\(name): \(summary.steps) steps, val_loss \(summary.validation?.loss ?? .nan),"
                + " \(summary.validation?.metrics.map { "\($0.name) \($0.value)" }.joined(separator: ", ") ?? "")")
        }
    }
}
