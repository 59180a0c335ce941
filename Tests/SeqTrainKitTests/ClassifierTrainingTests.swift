import Foundation
import XCTest
import SeqTrainKit

/// End-to-end runs of the classifier kinds on generated curves and on small hand-made sets.
final class ClassifierTrainingTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try temporaryDirectory()
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Writes curves to DIR/name/{inputs,labels}.npy.
    func writeCurves(_ name: String, count: Int, length: Int, seed: UInt64, variableLength: Bool = false) throws {
        try FileManager.default.createDirectory(atPath: "\(dir)/\(name)", withIntermediateDirectories: true)
        let (inputs, labels) = SyntheticSets.curves(count: count, length: length, seed: seed, variableLength: variableLength)
        try NumpyArray(floats: inputs, shape: [count, length]).write(to: "\(dir)/\(name)/inputs.npy")
        try NumpyArray(floats: labels, shape: [count, 7]).write(to: "\(dir)/\(name)/labels.npy")
    }

    func config(_ body: String, overrides: [String] = []) throws -> ExperimentConfig {
        try ExperimentConfig.parse("""
            [job]
            name = "test"
            seed = 3
            run_dir = "\(dir)/run"
            \(body)
            """, source: "\(dir)/test.toml", overrides: overrides)
    }

    func quiet(_ change: (inout TrainerOptions) -> Void = { _ in }) -> TrainerOptions {
        var options = TrainerOptions()
        options.quiet = true
        change(&options)
        return options
    }

    func metrics() throws -> [[String: Any]] {
        let text = try String(contentsOfFile: "\(dir)/run/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    static let curvesSection = """
        label_names = ["rising", "falling", "convex", "concave", "oscillating", "spike", "plateau"]
        """

    func testMultiLabelLSTMLearnsCurvesAndEvalRepeatsTheLoggedMetrics() throws {
        try writeCurves("train", count: 800, length: 150, seed: 1)
        try writeCurves("held", count: 200, length: 150, seed: 2)
        let config = try config("""
            [data]
            inputs = ["\(dir)/train/inputs.npy"]
            labels = ["\(dir)/train/labels.npy"]
            validation_inputs = ["\(dir)/held/inputs.npy"]
            validation_labels = ["\(dir)/held/labels.npy"]
            \(Self.curvesSection)
            [model]
            kind = "sequence_classifier"
            hidden = 64
            pooling = "max"
            [training]
            batch_size = 32
            epochs = 20
            eval_every = 0
            clip_norm = 1.0
            [optimizer]
            lr = 0.01
            [lr_scheduler]
            kind = "cosine"
            warmup_steps = 50
            """)
        // The recipe of configs/curves_lstm.toml: at a constant rate the held-out F1 swings by 0.1
        // from one validation to the next (0.95 to 0.85 over the last 25 steps in one run).
        let summary = try Trainer(config: config, options: quiet()).run()
        let validation = try XCTUnwrap(summary.validation)
        let f1 = try XCTUnwrap(validation.metrics.first { $0.name == "val_macro_f1" }?.value)
        XCTAssertGreaterThan(f1, 0.9, "held-out macro F1 of the LSTM")
        let last = try XCTUnwrap(metrics().last)
        for key in ["val_loss", "val_macro_f1", "val_micro_f1", "val_exact_match", "samples_per_s"] { XCTAssertNotNil(last[key], key) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/run/report.txt"))
        XCTAssertTrue(try String(contentsOfFile: "\(dir)/run/per_class.csv", encoding: .utf8).contains("oscillating,"))

        // eval of the checkpoint on the validation files gives the logged figures.
        let report = try LoadedClassifier(path: "\(dir)/run").evaluate(data: ["\(dir)/held/inputs.npy"], labels: ["\(dir)/held/labels.npy"])
        let fields = Dictionary(uniqueKeysWithValues: report.fields.map { ($0.name, $0.value) })
        XCTAssertEqual(fields["loss"] as? Double ?? .nan, validation.loss, accuracy: 1e-9)
        for (name, value) in validation.metrics {
            XCTAssertEqual(fields[String(name.dropFirst(4))] as? Double ?? .nan, value, accuracy: 1e-12, name)
        }
        let json = try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any]
        XCTAssertEqual(Set(json?.keys.map { $0 } ?? []).isSuperset(of: ["loss", "macro_f1", "micro_f1", "exact_match"]), true)

        // predict: probabilities and labels, as CSV and as .npy.
        let loaded = try LoadedClassifier(path: "\(dir)/run")
        _ = try loaded.predict(data: ["\(dir)/held/inputs.npy"], out: "\(dir)/p.csv")
        let lines = try String(contentsOfFile: "\(dir)/p.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 201)
        XCTAssertEqual(lines[0], "sample,predicted,p_rising,p_falling,p_convex,p_concave,p_oscillating,p_spike,p_plateau")
        _ = try loaded.predict(data: ["\(dir)/held/inputs.npy"], out: "\(dir)/p.npy")
        XCTAssertEqual(try NumpyArray(contentsOf: "\(dir)/p.npy").shape, [200, 7])
        XCTAssertEqual(try NumpyArray(contentsOf: "\(dir)/p.labels.npy").shape, [200, 7])
    }

    func testSpectralMLPLearnsCurves() throws {
        try writeCurves("train", count: 2000, length: 400, seed: 1)
        let config = try config("""
            [data]
            inputs = ["\(dir)/train/inputs.npy"]
            labels = ["\(dir)/train/labels.npy"]
            \(Self.curvesSection)
            features = "rfft"
            [model]
            kind = "mlp_classifier"
            hidden_sizes = [128, 64]
            dropout = 0.2
            [training]
            epochs = 40
            eval_every = 0
            [optimizer]
            kind = "adamw"
            """)
        let summary = try Trainer(config: config, options: quiet()).run()
        let f1 = try XCTUnwrap(summary.validation?.metrics.first { $0.name == "val_macro_f1" }?.value)
        XCTAssertGreaterThan(f1, 0.9, "held-out macro F1 of the FFT MLP")
    }

    /// Feature blocks end to end: the checkpoint keeps them, so eval reads held-out files of another
    /// length as training did and repeats the logged validation loss.
    func testFeatureBlocksTrainAndTheCheckpointReadsNewFilesTheSameWay() throws {
        try writeCurves("train", count: 600, length: 200, seed: 1)
        try writeCurves("held", count: 150, length: 200, seed: 2)
        try writeCurves("longer", count: 50, length: 260, seed: 3)
        let config = try config("""
            [data]
            inputs = ["\(dir)/train/inputs.npy"]
            labels = ["\(dir)/train/labels.npy"]
            validation_inputs = ["\(dir)/held/inputs.npy"]
            validation_labels = ["\(dir)/held/labels.npy"]
            \(Self.curvesSection)
            features = ["downsample", "stats", "rfft"]
            downsample = 20
            rfft_bins = 16
            [model]
            kind = "mlp_classifier"
            hidden_sizes = [64]
            [training]
            epochs = 30
            eval_every = 0
            [optimizer]
            kind = "adamw"
            """)
        let summary = try Trainer(config: config, options: quiet()).run()
        let validation = try XCTUnwrap(summary.validation)
        let f1 = try XCTUnwrap(validation.metrics.first { $0.name == "val_macro_f1" }?.value)
        XCTAssertGreaterThan(f1, 0.8, "held-out macro F1 of the MLP on downsample + stats + rfft")
        let loaded = try LoadedClassifier(path: "\(dir)/run")
        XCTAssertEqual(loaded.preprocessing.inputFeatures, 20 + 6 + 16)
        let report = try loaded.evaluate(data: ["\(dir)/held/inputs.npy"], labels: ["\(dir)/held/labels.npy"])
        let loss = report.fields.first { $0.name == "loss" }?.value as? Double
        XCTAssertEqual(loss ?? .nan, validation.loss, accuracy: 1e-9)
        // The blocks do not depend on the length, so longer curves read too.
        XCTAssertNoThrow(try loaded.evaluate(data: ["\(dir)/longer/inputs.npy"], labels: ["\(dir)/longer/labels.npy"]))
    }

    /// A small single-label CSV set with string labels: class weights, label smoothing, the balanced
    /// sampler, dropout and a plateau schedule, killed and resumed.
    func writeSingleLabelCSV(variableLength: Bool = false) throws -> String {
        let random = CounterRandom(seed: 8, purpose: .synthetic)
        var text = "label,a,b,c,d,e,f\n"
        for i in 0..<150 {
            let k = i % 10 < 6 ? 0 : i % 10 < 9 ? 1 : 2
            let name = ["cat", "dog", "eel"][k]
            let values = (0..<6).map { j -> String in
                if variableLength && j >= 3 + i % 4 { return "NaN" }
                return String(Float(k) * 0.8 + sin(Float(j) * Float(k + 1)) + random.uniform(stream: UInt64(i), index: UInt64(j)))
            }
            text += name + "," + values.joined(separator: ",") + "\n"
        }
        let path = "\(dir)/set\(variableLength ? "-variable" : "").csv"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testResumeContinuesBitForBitForClassifiers() throws {
        // The MLP reads complete rows; the sequence classifier rows that end early in NaN.
        let csvs = [try writeSingleLabelCSV(), try writeSingleLabelCSV(variableLength: true),
                    try writeSingleLabelCSV(variableLength: true)]
        let kinds = [
            """
            [model]
            kind = "mlp_classifier"
            hidden_sizes = [16]
            dropout = 0.3
            """,
            """
            [model]
            kind = "sequence_classifier"
            cell = "gru"
            hidden = 12
            layers = 2
            dropout = 0.2
            pooling = "mean"
            [loss]
            class_weights = "balanced"
            label_smoothing = 0.1
            """,
            // A conv1d + bidirectional stack with dropout, as [[model.layers]] tables.
            """
            [model]
            kind = "sequence_classifier"
            pooling = "last"
            [[model.layers]]
            type = "conv1d"
            filters = 6
            kernel_size = 3
            padding = "same"
            activation = "relu"
            [[model.layers]]
            type = "gru"
            hidden = 6
            layers = 2
            bidirectional = true
            dropout = 0.3
            [[model.layers]]
            type = "dropout"
            p = 0.2
            """,
        ]
        for (index, kind) in kinds.enumerated() {
            let text = """
                \(kind)
                [data]
                inputs = ["\(csvs[index])"]
                label_columns = ["label"]
                header = true
                sampler = "\(index == 0 ? "balanced" : "shuffle")"
                [training]
                batch_size = 16
                max_steps = 40
                epochs = 10
                eval_every = 10
                [lr_scheduler]
                kind = "plateau"
                [checkpoint]
                keep_best = false
                interval = 25
                """
            let whole = try Trainer(config: try config(text), options: quiet { $0.overwrite = true })
            let full = try whole.run()
            let weights = whole.experiment.trainableModel.parameters.values.array
            let interrupted = try Trainer(config: try config(text), options: quiet { $0.overwrite = true; $0.failure = (0, 33, .raise) })
            XCTAssertThrowsError(try interrupted.run())
            let resumed = try Trainer(config: try config(text), options: quiet { $0.resume = true })
            let rest = try resumed.run()
            XCTAssertEqual(rest.losses, Array(full.losses[25...]), "kind \(index)")
            XCTAssertEqual(resumed.experiment.trainableModel.parameters.values.array, weights, "kind \(index)")
            XCTAssertEqual(rest.validation?.metrics.map(\.value), full.validation?.metrics.map(\.value), "kind \(index)")
        }
    }

    func testSingleLabelCSVWithStringLabels() throws {
        let csv = try writeSingleLabelCSV()
        let config = try config("""
            [data]
            inputs = ["\(csv)"]
            label_columns = ["label"]
            header = true
            [model]
            kind = "mlp_classifier"
            hidden_sizes = [16]
            [training]
            epochs = 30
            eval_every = 0
            [optimizer]
            lr = 0.01
            """)
        let trainer = try Trainer(config: config, options: quiet())
        let summary = try trainer.run()
        let experiment = try XCTUnwrap(trainer.experiment as? ClassifierExperiment)
        XCTAssertEqual(experiment.classes, ["cat", "dog", "eel"], "string labels in sorted order")
        XCTAssertGreaterThan(summary.validation?.metrics.first { $0.name == "val_accuracy" }?.value ?? 0, 0.8)
        let confusion = try String(contentsOfFile: "\(dir)/run/confusion_matrix.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(confusion.first, "true\\predicted,cat,dog,eel")
        XCTAssertEqual(confusion.count, 4)
        // eval reads the checkpoint's columns and standardization; an unknown label is named.
        try "label,a,b,c,d,e,f\nfox,1,2,3,4,5,6\n".write(toFile: "\(dir)/fox.csv", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LoadedClassifier(path: "\(dir)/run").evaluate(data: ["\(dir)/fox.csv"], labels: [])) { error in
            XCTAssertTrue("\(error)".contains("sample 0: label \"fox\" is not one of the 3 classes the model was trained on (cat, dog, eel)"), "\(error)")
        }
        try "label,a,b,c\ncat,1,2,3\n".write(toFile: "\(dir)/narrow.csv", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LoadedClassifier(path: "\(dir)/run").evaluate(data: ["\(dir)/narrow.csv"], labels: [])) { error in
            XCTAssertTrue("\(error)".contains("narrow.csv has no column d, e, f; the model reads the columns a, b, c, d, e, f"),
                          "\(error)")
        }
        // Columns are found by their header names: the same rows with the columns reversed and an
        // extra column give the same loss.
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",") }
        let reordered = rows.enumerated().map { k, row in ([k == 0 ? "id" : "x"] + row.reversed()).joined(separator: ",") }
        try (reordered.joined(separator: "\n") + "\n").write(toFile: "\(dir)/reordered.csv", atomically: true, encoding: .utf8)
        let loaded = try LoadedClassifier(path: "\(dir)/run")
        func loss(_ path: String) throws -> Double {
            try XCTUnwrap(loaded.evaluate(data: [path], labels: []).fields.first { $0.name == "loss" }?.value as? Double)
        }
        XCTAssertEqual(try loss("\(dir)/reordered.csv"), try loss(csv), accuracy: 1e-9)
    }

    /// data.class_names names integer ids: the run, its reports, eval and predict speak of "eel"
    /// where the files say 2, and an id without a name is refused naming it.
    func testClassNamesNameIntegerIdsInReportsEvalAndPredict() throws {
        let named = try writeSingleLabelCSV()
        let csv = "\(dir)/ids.csv"
        let ids = try String(contentsOfFile: named, encoding: .utf8)
            .replacingOccurrences(of: "cat,", with: "0,").replacingOccurrences(of: "dog,", with: "1,")
            .replacingOccurrences(of: "eel,", with: "2,")
        try ids.write(toFile: csv, atomically: true, encoding: .utf8)
        let body = """
            [data]
            inputs = ["\(csv)"]
            label_columns = ["label"]
            header = true
            class_names = ["cat", "dog", "eel"]
            [model]
            kind = "mlp_classifier"
            hidden_sizes = [16]
            [training]
            epochs = 30
            eval_every = 0
            [optimizer]
            lr = 0.01
            """
        let trainer = try Trainer(config: try config(body), options: quiet())
        let summary = try trainer.run()
        XCTAssertEqual((trainer.experiment as? ClassifierExperiment)?.classes, ["cat", "dog", "eel"])
        let confusion = try String(contentsOfFile: "\(dir)/run/confusion_matrix.csv", encoding: .utf8)
        XCTAssertEqual(confusion.split(separator: "\n").first, "true\\predicted,cat,dog,eel")
        XCTAssertTrue(try String(contentsOfFile: "\(dir)/run/per_class.csv", encoding: .utf8).contains("eel,"))
        // The checkpoint reads new files of ids and names what it predicts.
        let loaded = try LoadedClassifier(path: "\(dir)/run")
        XCTAssertEqual(loaded.preprocessing.classes, ["cat", "dog", "eel"])
        let report = try loaded.evaluate(data: [csv], labels: [])
        let loss = report.fields.first { $0.name == "loss" }?.value as? Double
        XCTAssertEqual(loss ?? .nan, try loaded.evaluate(data: [named], labels: []).fields.first { $0.name == "loss" }
            .flatMap { $0.value as? Double } ?? .nan, accuracy: 0, "files may give the ids or their names")
        XCTAssertGreaterThan(summary.validation?.metrics.first { $0.name == "val_accuracy" }?.value ?? 0, 0.8)
        _ = try loaded.predict(data: [csv], out: "\(dir)/p.csv")
        let predicted = try String(contentsOfFile: "\(dir)/p.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(predicted.first, "sample,predicted,p_cat,p_dog,p_eel")
        XCTAssertTrue(predicted.dropFirst().allSatisfy { ["cat", "dog", "eel"].contains($0.split(separator: ",")[1]) })
        // Two names for three ids.
        XCTAssertThrowsError(try Trainer(config: try config(body.replacingOccurrences(
            of: #"["cat", "dog", "eel"]"#, with: #"["cat", "dog"]"#)), options: quiet())) { error in
            XCTAssertTrue("\(error)".contains("data.class_names gives 2 names (ids 0 to 1), but the labels hold \"2\""),
                          "\(error)")
        }
    }

    /// A classifier trained from JSON records (nested fields, 1-based class lists) reads new records
    /// through its checkpoint the same way.
    func testJSONRecordsTrainAndEvaluate() throws {
        let (inputs, labels) = SyntheticSets.curves(count: 300, length: 60, seed: 5)
        func records(_ range: Range<Int>) -> String {
            range.map { n -> String in
                let length = 40 + n % 21
                let y = (0..<length).map { String(inputs[n * 60 + $0]) }.joined(separator: ", ")
                let classes = (0..<7).filter { labels[n * 7 + $0] > 0.5 }.map { String($0 + 1) }.joined(separator: ", ")
                return #"{"data": {"y": [\#(y)]}, "classifier": [\#(classes)]}"#
            }.joined(separator: "\n")
        }
        try records(0..<240).write(toFile: "\(dir)/train.jsonl", atomically: true, encoding: .utf8)
        try ("[" + records(240..<300).replacingOccurrences(of: "}\n{", with: "},\n{") + "]")
            .write(toFile: "\(dir)/held.json", atomically: true, encoding: .utf8)
        let config = try config("""
            [data]
            inputs = ["\(dir)/train.jsonl"]
            validation_inputs = ["\(dir)/held.json"]
            input_field = "data.y"
            label_field = "classifier"
            [model]
            kind = "sequence_classifier"
            hidden = 16
            pooling = "mean"
            [training]
            epochs = 2
            eval_every = 0
            """)
        let summary = try Trainer(config: config, options: quiet()).run()
        let validation = try XCTUnwrap(summary.validation)
        let loaded = try LoadedClassifier(path: "\(dir)/run")
        XCTAssertEqual(loaded.preprocessing.classes, ["1", "2", "3", "4", "5", "6", "7"])
        let report = try loaded.evaluate(data: ["\(dir)/held.json"], labels: [])
        let loss = report.fields.first { $0.name == "loss" }?.value as? Double
        XCTAssertEqual(loss ?? .nan, validation.loss, accuracy: 1e-9)
    }

    /// Explicit weight lists (one per class, one per label) through the binary: train, gradcheck
    /// and debug finish. The doctor once read such a list as a word and trapped (SIGILL).
    func testExplicitClassAndPositiveWeightListsTrainCheckAndDebug() throws {
        let cases = try ClassifierCases.write(in: dir)
        let lists = [("mlp", "loss.class_weights=[1, 1, 1]"), ("lstm", "loss.pos_weight=[1, 1, 1, 1, 1, 1, 1]")]
        for (name, weights) in lists {
            let (_, config, sets) = try XCTUnwrap(cases.first { $0.name == name })
            let fixed = (sets + [weights, "training.max_steps=2", "training.eval_every=0", "training.workers=1"])
                .flatMap { ["--set", $0] }
            let binary = MultiRankTests.binary
            let commands = [
                [binary, "train", config, "--quiet", "--set", "job.run_dir=\(dir)/\(name)"] + fixed,
                [binary, "gradcheck", config, "--samples", "2"] + fixed,
                [binary, "debug", config, "-n", "2", "--steps", "2"] + fixed,
            ]
            for command in commands {
                let run = try MultiRankTests.execute(command, timeout: 120)
                XCTAssertEqual(run.status, 0, "\(name) \(command[1]) with \(weights): \(run.errors.suffix(600))")
                if command[1] == "debug" { XCTAssertTrue(run.output.contains("verdict: the 2 ranks agree"), run.output) }
            }
        }
    }

    func testCertainMistakesAreRefusedWithTheReason() throws {
        try writeCurves("train", count: 50, length: 20, seed: 1)
        let data = "[data]\ninputs = [\"\(dir)/train/inputs.npy\"]\nlabels = [\"\(dir)/train/labels.npy\"]\n[model]\nkind = \"sequence_classifier\"\n"
        let cases: [([String], String)] = [
            (["loss.kind=cross_entropy"], "loss.kind = \"cross_entropy\" with multi-label targets: a softmax makes the labels compete"),
            (["loss.kind=mse"], "loss.kind = \"mse\": sigmoid + mean squared error for classification has a vanishing gradient"),
            (["model.output_activation=softmax"], "model.output_activation = \"softmax\": the loss takes raw logits"),
            (["model.output_activation=sigmoid"], "model.output_activation = \"sigmoid\": the loss takes raw logits"),
            (["loss.label_smoothing=0.1"], "loss.label_smoothing applies to softmax cross-entropy"),
            (["loss.class_weights=balanced"], "loss.class_weights applies to single-label cross-entropy"),
            (["model.task=single_label"], "(N, C) labels (several per sample) with model.task = \"single_label\""),
            (["loss.pos_weight=[1, 2]"], "loss.pos_weight: 2 weights for 7 classes"),
        ]
        for (overrides, expected) in cases {
            XCTAssertThrowsError(try Trainer(config: try config(data, overrides: overrides), options: quiet()).run(), "\(overrides)") { error in
                XCTAssertTrue("\(error)".contains(expected), "\(overrides): \(error)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/run"), "nothing written for a refused config")
    }

    /// What is probably wrong is a doctor's warning, with the reason and the fix; the right setting
    /// silences it.
    func testTheDoctorWarnsAboutUnbalancedClassesAndLongSequencesReadByTheirLastState() throws {
        func diagnoses(_ body: String, _ overrides: [String] = []) throws -> [String] {
            try Trainer(config: try config(body, overrides: overrides), options: quiet()).experiment.diagnoses
        }
        // Single-label, 60 to 4.
        var rows = ["label,a,b"]
        for k in 0..<64 { rows.append("\(k < 60 ? "common" : "rare"),\(k % 7),\(k % 5)") }
        try (rows.joined(separator: "\n") + "\n").write(toFile: "\(dir)/unbalanced.csv", atomically: true, encoding: .utf8)
        let csv = "[data]\ninputs = [\"\(dir)/unbalanced.csv\"]\nlabel_columns = [\"label\"]\nheader = true\nvalidation_fraction = 0.25\n[model]\nkind = \"mlp_classifier\"\n"
        let unbalanced = try diagnoses(csv)
        XCTAssertEqual(unbalanced.count, 1)
        XCTAssertTrue(unbalanced.first?.hasPrefix("the classes are badly unbalanced: \"common\" has 45 training samples, \"rare\" 3 (15 to 1)") ?? false, "\(unbalanced)")
        XCTAssertEqual(try diagnoses(csv, ["loss.class_weights=balanced"]), [])
        XCTAssertEqual(try diagnoses(csv, ["data.sampler=balanced"]), [])
        // Multi-label with a label positive in 2 of 80 samples.
        try FileManager.default.createDirectory(atPath: "\(dir)/multi", withIntermediateDirectories: true)
        try NumpyArray(floats: (0..<(80 * 6)).map { Float($0 % 11) }, shape: [80, 6]).write(to: "\(dir)/multi/inputs.npy")
        try NumpyArray(floats: (0..<80).flatMap { [Float($0 % 2), $0 < 2 ? 1 : 0] }, shape: [80, 2]).write(to: "\(dir)/multi/labels.npy")
        let multi = "[data]\ninputs = [\"\(dir)/multi/inputs.npy\"]\nlabels = [\"\(dir)/multi/labels.npy\"]\nvalidation_fraction = 0\n[model]\nkind = \"mlp_classifier\"\n"
        let rare = try diagnoses(multi)
        XCTAssertTrue(rare.first?.hasPrefix("label \"1\" is positive in 2 of 80 training samples (2.5%)") ?? false, "\(rare)")
        XCTAssertEqual(try diagnoses(multi, ["loss.pos_weight=balanced"]), [])
        // 600 steps read by an LSTM whose last state alone is used.
        try writeCurves("long", count: 24, length: 600, seed: 2)
        let long = "[data]\ninputs = [\"\(dir)/long/inputs.npy\"]\nlabels = [\"\(dir)/long/labels.npy\"]\n[model]\nkind = \"sequence_classifier\"\nhidden = 8\n"
        XCTAssertTrue(try diagnoses(long, ["model.pooling=last", "loss.pos_weight=balanced"]).first?
            .hasPrefix("a recurrent layer reads 600 steps and only its last state is used") ?? false)
        XCTAssertEqual(try diagnoses(long, ["model.pooling=max", "loss.pos_weight=balanced"]), [])
    }

    /// Sizes from a config or a checkpoint are checked before anything is allocated.
    func testHugeSizesAndDamagedCheckpointsAreErrorsNotTraps() throws {
        try writeCurves("train", count: 40, length: 20, seed: 1)
        let data = "[data]\ninputs = [\"\(dir)/train/inputs.npy\"]\nlabels = [\"\(dir)/train/labels.npy\"]\n"
        let cases: [(String, [String], String)] = [
            ("mlp_classifier", ["model.hidden_sizes=[4294967296, 4294967296]"], "model.hidden_sizes: 4294967296 × 4294967296 is too large to allocate"),
            ("mlp_classifier", ["model.hidden_sizes=[1000000, 1000000]"], "an MLP of widths [20, 1000000, 1000000, 7] would need"),
            ("sequence_classifier", ["model.hidden=4294967296", "model.layers=4294967296"],
             "the buffers per step of the layer stack (model.hidden, model.layers): "
                + "8 × 4 × 4294967296 × 4294967296 × 1 "
                + "is too large to allocate"),
            ("sequence_classifier", ["model.hidden=1000000"],
             "the layer buffers of a batch of 32 sequences of 20 steps would need"),
            ("mlp_classifier", ["data.features=rfft", "data.rfft_bins=70000"], "data.rfft_bins = 70000: at most 65536"),
        ]
        for (kind, overrides, expected) in cases {
            XCTAssertThrowsError(try Trainer(config: try config(data + "[model]\nkind = \"\(kind)\"\n", overrides: overrides), options: quiet()).run()) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(overrides): \(error)")
            }
        }
        // A checkpoint whose kind and config disagree is refused by both loaders.
        _ = try Trainer(config: try config(data + "[model]\nkind = \"mlp_classifier\"\n[training]\nmax_steps = 2\n"), options: quiet()).run()
        var file = try Checkpoint.resolve("\(dir)/run").weights
        file.metadata["seqtrain.config"] = try ExperimentConfig.parse("", source: "x").resolvedTOML
        try file.write(to: "\(dir)/damaged.safetensors")
        XCTAssertThrowsError(try LoadedClassifier(path: "\(dir)/damaged.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("model.kind of its seqtrain.config (char_lm) differ"), "\(error)")
        }
        file.metadata["seqtrain.kind"] = "char_lm"
        file.metadata["seqtrain.vocabulary"] = "ab"
        file.metadata["seqtrain.config"] = try config(data + "[model]\nkind = \"mlp_classifier\"\n").resolvedTOML
        try file.write(to: "\(dir)/damaged-lm.safetensors")
        XCTAssertThrowsError(try LoadedCharLM(path: "\(dir)/damaged-lm.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("its seqtrain.config says model.kind = \"mlp_classifier\""), "\(error)")
        }
    }

    func testConfigKeysFollowTheKind() throws {
        XCTAssertThrowsError(try ExperimentConfig.parse("[model]\nkind = \"mlp_classifier\"\nembedding = 3\n", source: "c.toml")) { error in
            XCTAssertEqual("\(error)", "c.toml:3: model.embedding: unknown key for model.kind = \"mlp_classifier\" (it is a key of \"char_lm\", \"seq2seq\"); [model] accepts kind, hidden_sizes, activation, dropout, task, output_activation")
        }
        XCTAssertThrowsError(try ExperimentConfig.parse("[model]\nkind = \"rnn\"\n", source: "c.toml")) { error in
            XCTAssertEqual("\(error)", "c.toml:2: model.kind: expected one of \"char_lm\", \"sequence_classifier\", "
                           + "\"mlp_classifier\", \"autoencoder\", \"seq2seq\", \"forecaster\", \"sequence_tagger\", "
                           + "got \"rnn\"")
        }
        XCTAssertThrowsError(try ExperimentConfig.parse("[loss]\nkind = \"auto\"\n", source: "c.toml")) { error in
            XCTAssertTrue("\(error)".hasPrefix("c.toml:1: unknown section [loss] for model.kind = \"char_lm\""), "\(error)")
        }
        let sequence = try ExperimentConfig.parse("", source: "c.toml", overrides: ["model.kind=sequence_classifier", "model.hidden=8"])
        XCTAssertEqual(sequence.kind, "sequence_classifier")
        XCTAssertEqual(sequence.text("model.pooling"), "max")
        XCTAssertEqual(sequence.integer("model.hidden"), 8)
        let again = try ExperimentConfig.parse(sequence.resolvedTOML, source: "resolved.toml")
        XCTAssertEqual(again.resolvedPairs.map(\.1), sequence.resolvedPairs.map(\.1))
        let mlp = try ExperimentConfig.parse("[model]\nkind = \"mlp_classifier\"\nhidden_sizes = []\n[loss]\nclass_weights = [1, 2.5]\n[data]\nlabel_columns = [0, \"y\"]\n", source: "c.toml")
        XCTAssertEqual(mlp.integers("model.hidden_sizes"), [])
        XCTAssertEqual(mlp.value("loss.class_weights"), .numbers([1, 2.5]))
        XCTAssertEqual(mlp.texts("data.label_columns"), ["0", "y"])
        XCTAssertThrowsError(try ExperimentConfig.parse("[model]\nkind = \"mlp_classifier\"\nhidden_sizes = [64, 0]\n", source: "c.toml")) { error in
            XCTAssertEqual("\(error)", "c.toml:3: model.hidden_sizes: expected a list of positive integers, got [64, 0]")
        }
    }
}
