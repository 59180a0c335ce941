import Foundation
import XCTest
import SeqTrainKit

/// Small tagger runs for the rank, worker and resume tests (WorkerTests, MultiRankTests): per-step
/// class ids over a conv1d + bidirectional GRU with dropout, 0/1 labels per step over a 2-layer
/// GRU with dropout, and regression values with the L1 loss; all on variable-length sequences, so
/// the global count of valid steps (not of rows) normalizes the loss.
enum TaggerCases {
    static func write(in dir: String) throws -> [(name: String, config: String, sets: [String])] {
        let (count, length) = (70, 12)
        let (inputs, ids) = SyntheticSets.tags(count: count, length: length, seed: 3)
        try NumpyArray(floats: inputs, shape: [count, length, 2]).write(to: "\(dir)/tags-x.npy")
        try NumpyArray(integers: ids, shape: [count, length]).write(to: "\(dir)/tags-ids.npy")
        // Labels per step: "high" and "the input rose since the step before".
        var multi = [Float](repeating: .nan, count: count * length * 2)
        var values = [Float](repeating: .nan, count: count * length)
        for s in 0..<count {
            for t in 0..<length where ids[s * length + t] >= 0 {
                let x = inputs[(s * length + t) * 2], before = t > 0 ? inputs[(s * length + t - 1) * 2] : x
                multi[(s * length + t) * 2] = ids[s * length + t] == 2 ? 1 : 0
                multi[(s * length + t) * 2 + 1] = x > before ? 1 : 0
                values[s * length + t] = 40 + 10 * x + 5 * before
            }
        }
        try NumpyArray(floats: multi, shape: [count, length, 2]).write(to: "\(dir)/tags-multi.npy")
        try NumpyArray(floats: values, shape: [count, length]).write(to: "\(dir)/tags-values.npy")
        try """
            [job]
            seed = 5
            [training]
            batch_size = 8
            epochs = 3
            max_steps = 20
            eval_every = 10
            [optimizer]
            lr = 0.01
            [checkpoint]
            interval = 10
            [metrics]
            log_every = 1
            """.write(toFile: "\(dir)/tagger.toml", atomically: true, encoding: .utf8)
        let config = "\(dir)/tagger.toml"
        let data = ["model.kind=sequence_tagger", "data.inputs=\(dir)/tags-x.npy"]
        return [
            ("tagger-ids", config, data + ["data.labels=\(dir)/tags-ids.npy", """
                model.layers=[{type = "conv1d", filters = 5, kernel_size = 3, padding = "causal", \
                activation = "relu"}, {type = "gru", hidden = 6, layers = 2, bidirectional = true, dropout = 0.3}, \
                {type = "dropout", p = 0.2}]
                """]),
            ("tagger-multi", config, data + ["data.labels=\(dir)/tags-multi.npy", "model.cell=gru", "model.hidden=8",
                                             "model.layers=2", "model.dropout=0.2", "optimizer.kind=sgd",
                                             "optimizer.lr=0.5", "optimizer.momentum=0.9"]),
            ("tagger-values", config, data + ["data.labels=\(dir)/tags-values.npy", "model.task=regression",
                                              "model.loss=l1", "model.hidden=8"]),
        ]
    }
}

/// The sequence tagger: its model and loss against PyTorch (Fixtures/make_tagger.py), finite
/// differences through the experiment's own loss, training to better than chance, `eval` and
/// `predict` (outputs in the data's units, NaN past each length), and the config errors.
final class TaggerTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    // MARK: against PyTorch

    /// Outputs at the valid steps, the masked mean loss, every gradient, and 3 Adam steps.
    func checkReference(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = try ReferenceCase("tagger_\(name)")
        let sizesJSON = Data(try XCTUnwrap(ref.file.metadata["sizes"]).utf8)
        let sizes = try XCTUnwrap(try JSONSerialization.jsonObject(with: sizesJSON) as? [String: Int])
        let (I, C, B, T) = (sizes["I"]!, sizes["C"]!, sizes["B"]!, sizes["T"]!)
        let task = try XCTUnwrap(TaggingTask(rawValue: try XCTUnwrap(ref.file.metadata["task"])))
        let toml = "[model]\nkind = \"sequence_tagger\"\nlayers = \(try XCTUnwrap(ref.file.metadata["stack"]))\n"
        let specs = try XCTUnwrap(try ExperimentConfig.parse(toml, source: "\(name).toml").modelStack?.specs)
        let model = SequenceTagger(stack: specs, inputSize: I, outputs: C)
        try ref.load(into: model.parameters)
        let x = try ref.floats("x"), lengths = try ref.ids("lengths").map(Int.init)
        let y = task == .classification ? try ref.ids("y").map(Float.init) : try ref.floats("y")   // (B, T, W)
        // Step-major targets (T, B, W) and mask (T, B), as the experiment feeds the loss.
        let W = task == .classification ? 1 : C
        var targets = [Float](repeating: 0, count: T * B * W), mask = [Float](repeating: 0, count: T * B)
        for b in 0..<B {
            for t in 0..<lengths[b] {
                mask[t * B + b] = 1
                for k in 0..<W { targets[(t * B + b) * W + k] = y[(b * T + t) * W + k] }
            }
        }
        let loss = try TaggerLoss(task: task, regression: "mse")
        let dOutputs = FloatBuffer(count: T * B * C)            // (T, B, C)
        func step() throws -> LossTotal {
            pointer(x) { model.forward($0, batch: B, steps: T, lengths: lengths) }
            let total = try loss.evaluate(dOutputs.pointer, outputs: model.outputs.pointer, targets: targets,
                                          mask: mask, rows: T * B, width: C)
            model.backward(dOutputs.pointer)
            return total
        }
        model.parameters.zeroGradients()
        let total = try step()
        let expected = try ref.floats("outputs")                  // (B, T, C)
        var mine: [Float] = [], theirs: [Float] = []
        for b in 0..<B {
            for t in 0..<lengths[b] {
                for k in 0..<C {
                    mine.append(model.outputs[(t * B + b) * C + k])
                    theirs.append(expected[(b * T + t) * C + k])
                }
            }
        }
        assertClose(mine, theirs, "\(name) outputs at valid steps", file: file, line: line)
        let valid = lengths.reduce(0, +)
        XCTAssertEqual(total.count, Double(valid * (task == .classification ? 1 : C)), "\(name): counted valid steps",
                       file: file, line: line)
        assertClose([Float(total.mean)], try ref.floats("loss"), "\(name) loss", file: file, line: line)
        try ref.assertGradients(model.parameters, scale: Float(1 / total.count), file: file, line: line)

        try ref.assertThreeAdamSteps(model.parameters, file: file, line: line) {
            return try step()
        }
    }

    func testBidirectionalLSTMWithClassIdsOnPackedSequencesAgainstPyTorch() throws { try checkReference("bilstm_ids") }
    func testCausalConvAndGRUWithMultiLabelStepsAgainstPyTorch() throws { try checkReference("conv_gru_multilabel") }
    func testSameConvLSTMAndDenseRegressionAgainstPyTorch() throws { try checkReference("regression") }

    // MARK: finite differences

    /// The experiment's own loss of its first batch (variable lengths, masks, the step-major
    /// targets) against central differences for every parameter tensor; a head gradient scaled
    /// by 1.5 must fail the same check, so the check can see a wrong gradient.
    func testFiniteDifferencesOfTheTaggerLossAgreeWithBackward() throws {
        for (name, config, sets) in try TaggerCases.write(in: dir) {
            // Dropout off: finite differences need the same function at every evaluation.
            let extra = name == "tagger-ids"
                ? ["model.layers=[{type = \"conv1d\", filters = 5, kernel_size = 3, padding = \"causal\", "
                    + "activation = \"tanh\"}, {type = \"gru\", hidden = 6, layers = 2, bidirectional = true}]"]
                : ["model.dropout=0", "model.loss=auto"]
            let parsed = try ExperimentConfig.parse(try String(contentsOfFile: config, encoding: .utf8), source: config,
                                                    overrides: sets + extra)
            let results = try GradientCheck.run(config: parsed, samples: 8)
            XCTAssertTrue(results.contains { $0.name == "head.weight" }, name)
            for r in results { XCTAssertLessThan(r.error, 5e-2, "\(name): \(r.name)") }
            let distorted = try GradientCheck.run(config: parsed, samples: 8, distort: ("head.weight", 1.5))
            XCTAssertGreaterThan(try XCTUnwrap(distorted.first { $0.name == "head.weight" }).error, 0.2, name)
        }
    }

    // MARK: training, eval and predict

    func config(_ body: String, overrides: [String] = []) throws -> ExperimentConfig {
        try ExperimentConfig.parse("""
            [job]
            name = "tagger-test"
            seed = 3
            run_dir = "\(dir)/run"
            \(body)
            """, source: "\(dir)/test.toml", overrides: overrides)
    }

    func quiet(resume: Bool = false) -> TrainerOptions {
        var options = TrainerOptions()
        options.quiet = true
        options.overwrite = !resume
        options.resume = resume
        return options
    }

    /// Writes DIR/name/{inputs,labels}.npy from `seqtrain data tags`'s generator.
    func writeTags(_ name: String, count: Int, length: Int, seed: UInt64) throws -> (inputs: [Float], ids: [Int64]) {
        try FileManager.default.createDirectory(atPath: "\(dir)/\(name)", withIntermediateDirectories: true)
        let (inputs, ids) = SyntheticSets.tags(count: count, length: length, seed: seed)
        try NumpyArray(floats: inputs, shape: [count, length, 2]).write(to: "\(dir)/\(name)/inputs.npy")
        try NumpyArray(integers: ids, shape: [count, length]).write(to: "\(dir)/\(name)/labels.npy")
        return (inputs, ids)
    }

    func field(_ report: EvaluationReport, _ name: String) -> Double {
        (report.fields.first { $0.name == name }?.value as? Double) ?? .nan
    }

    /// The shipped config's model learns the tags well above chance (a third), eval on the
    /// validation files repeats the logged validation figures, and predict writes per-step
    /// probabilities and class ids that agree with them, NaN and -1 past each length.
    func testShippedStackLearnsTagsAndEvalAndPredictAgreeWithValidation() throws {
        _ = try writeTags("train", count: 600, length: 40, seed: 1)
        let (heldInputs, heldIds) = try writeTags("held", count: 150, length: 40, seed: 2)
        let shipped = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("configs/tagger.toml"),
                                 encoding: .utf8)
        let model = try XCTUnwrap(shipped.range(of: "[model]")).lowerBound
        let training = try XCTUnwrap(shipped.range(of: "[training]")).lowerBound
        let config = try config("""
            [data]
            inputs = ["\(dir)/train/inputs.npy"]
            labels = ["\(dir)/train/labels.npy"]
            validation_inputs = ["\(dir)/held/inputs.npy"]
            validation_labels = ["\(dir)/held/labels.npy"]
            label_names = ["low", "alternating", "high"]
            \(shipped[model..<training])
            [training]
            batch_size = 32
            epochs = 4
            eval_every = 0
            [optimizer]
            kind = "adam"
            lr = 0.01
            """)
        let trainer = try Trainer(config: config, options: quiet())
        let summary = try trainer.run()
        let validation = try XCTUnwrap(summary.validation)
        let accuracy = try XCTUnwrap(validation.metrics.first { $0.name == "val_accuracy" }).value
        XCTAssertGreaterThan(accuracy, 0.75, "per-step accuracy well above chance (about 0.33)")
        XCTAssertEqual(validation.metrics.map(\.name), ["val_accuracy", "val_macro_f1"])

        let loaded = try LoadedTagger(path: "\(dir)/run")
        let report = try loaded.evaluate(data: ["\(dir)/held/inputs.npy"], labels: ["\(dir)/held/labels.npy"])
        XCTAssertEqual(field(report, "loss"), validation.loss, accuracy: 1e-9)
        XCTAssertEqual(field(report, "accuracy"), accuracy, accuracy: 1e-12)
        let validSteps = heldIds.filter { $0 >= 0 }.count
        XCTAssertEqual(report.fields.first { $0.name == "steps" }?.value as? Int, validSteps)
        XCTAssertTrue(report.json.hasPrefix("{\"loss\": "), report.json)

        let message = try loaded.predict(data: ["\(dir)/held/inputs.npy"], out: "\(dir)/p.npy")
        XCTAssertTrue(message.contains("(150, 40, 3)"), message)
        let probabilities = try NumpyArray(contentsOf: "\(dir)/p.npy")
        let ids = try NumpyArray(contentsOf: "\(dir)/p.labels.npy")
        XCTAssertEqual(probabilities.shape, [150, 40, 3])
        XCTAssertEqual(ids.shape, [150, 40])
        let p = probabilities.floats(), predicted = ids.doubles()
        var right = 0
        for s in 0..<150 {
            for t in 0..<40 {
                let valid = !heldInputs[(s * 40 + t) * 2].isNaN
                XCTAssertEqual(valid, heldIds[s * 40 + t] >= 0)
                let row = Array(p[((s * 40 + t) * 3)..<((s * 40 + t + 1) * 3)])
                if !valid {
                    XCTAssertTrue(row.allSatisfy(\.isNaN), "sample \(s), step \(t): NaN past the length")
                    XCTAssertEqual(predicted[s * 40 + t], -1)
                    continue
                }
                XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5)
                let best = row.indices.max { row[$0] < row[$1] }!
                XCTAssertEqual(Int(predicted[s * 40 + t]), best)
                if Int64(best) == heldIds[s * 40 + t] { right += 1 }
            }
        }
        XCTAssertEqual(Double(right) / Double(validSteps), accuracy, accuracy: 1e-12, "predict agrees with eval")
    }

    /// Regression targets in data units far from 0: the model trains on standardized targets and
    /// reports RMSE and MAE in the data's units, which predict's values reproduce; it does much
    /// better than predicting the mean of the targets.
    func testRegressionReportsErrorsInDataUnitsAndPredictWritesThem() throws {
        let (inputs, ids) = try writeTags("train", count: 300, length: 30, seed: 4)
        var values = [Float](repeating: .nan, count: 300 * 30)
        for s in 0..<300 {
            for t in 0..<30 where ids[s * 30 + t] >= 0 {
                let x = inputs[(s * 30 + t) * 2], before = t > 0 ? inputs[(s * 30 + t - 1) * 2] : 0
                values[s * 30 + t] = 1000 + 50 * x + 30 * before
            }
        }
        try NumpyArray(floats: values, shape: [300, 30]).write(to: "\(dir)/train/values.npy")
        for loss in ["mse", "l1"] {
            let summary = try Trainer(config: try config("""
                [data]
                inputs = ["\(dir)/train/inputs.npy"]
                labels = ["\(dir)/train/values.npy"]
                validation_fraction = 0
                [model]
                kind = "sequence_tagger"
                task = "regression"
                loss = "\(loss)"
                cell = "gru"
                hidden = 16
                [training]
                batch_size = 20
                epochs = 15
                eval_every = 0
                [optimizer]
                lr = 0.01
                """), options: quiet()).run()
            XCTAssertLessThan(summary.losses.suffix(10).reduce(0, +) / 10, summary.losses.prefix(3).reduce(0, +) / 3,
                              loss)
            let loaded = try LoadedTagger(path: "\(dir)/run")
            XCTAssertEqual(loaded.preprocessing.task, .regression)
            let report = try loaded.evaluate(data: ["\(dir)/train/inputs.npy"], labels: ["\(dir)/train/values.npy"])
            let rmse = field(report, "rmse"), mae = field(report, "mae")
            let valid = values.filter { !$0.isNaN }.map(Double.init)
            let mean = valid.reduce(0, +) / Double(valid.count)
            let spread = (valid.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(valid.count)).squareRoot()
            XCTAssertGreaterThan(spread, 40, "the targets' own deviation, in data units")
            XCTAssertLessThan(rmse, 0.5 * spread, "\(loss): RMSE in data units well below the targets' deviation")
            _ = try loaded.predict(data: ["\(dir)/train/inputs.npy"], out: "\(dir)/values.npy")
            let predicted = try NumpyArray(contentsOf: "\(dir)/values.npy")
            XCTAssertEqual(predicted.shape, [300, 30, 1])
            var squared = 0.0, absolute = 0.0
            for (v, target) in zip(predicted.floats(), values) {
                XCTAssertEqual(v.isNaN, target.isNaN, "NaN exactly past each length")
                guard !v.isNaN else { continue }
                squared += Double(v - target) * Double(v - target)
                absolute += abs(Double(v - target))
            }
            XCTAssertEqual((squared / Double(valid.count)).squareRoot(), rmse, accuracy: 1e-3 * rmse, "\(loss): rmse")
            XCTAssertEqual(absolute / Double(valid.count), mae, accuracy: 1e-3 * mae, "\(loss): mae")
        }
    }

    /// (N, T, C) 0/1 labels: sigmoid BCE per step, per-label F1 in the metrics, probabilities and
    /// 0/1 labels from predict with NaN past each length.
    func testMultiLabelStepsReportPerLabelF1AndPredictLabels() throws {
        let cases = try TaggerCases.write(in: dir)
        let (_, path, sets) = try XCTUnwrap(cases.first { $0.name == "tagger-multi" })
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let config = try ExperimentConfig.parse(text, source: path, overrides: sets + [
            "job.run_dir=\(dir)/run", "data.label_names=[\"high\", \"rose\"]", "training.max_steps=40",
            "training.epochs=10", "optimizer.kind=adam", "optimizer.lr=0.01"])
        let summary = try Trainer(config: config, options: quiet()).run()
        let names = try XCTUnwrap(summary.validation).metrics.map(\.name)
        XCTAssertEqual(names, ["val_accuracy", "val_macro_f1", "val_micro_f1", "val_f1_high", "val_f1_rose"])
        let loaded = try LoadedTagger(path: "\(dir)/run")
        let report = try loaded.evaluate(data: ["\(dir)/tags-x.npy"], labels: ["\(dir)/tags-multi.npy"])
        XCTAssertEqual(report.fields.first { $0.name == "task" }?.value as? String, "multi_label")
        XCTAssertEqual(report.fields.first { $0.name == "outputs" }?.value as? [String], ["high", "rose"])
        XCTAssertGreaterThan(field(report, "accuracy"), 0.6)
        _ = try loaded.predict(data: ["\(dir)/tags-x.npy"], out: "\(dir)/m.npy")
        let labels = try NumpyArray(contentsOf: "\(dir)/m.labels.npy").floats()
        let probabilities = try NumpyArray(contentsOf: "\(dir)/m.npy").floats()
        let truth = try NumpyArray(contentsOf: "\(dir)/tags-multi.npy").floats()
        XCTAssertEqual(labels.count, 70 * 12 * 2)
        for i in labels.indices {
            XCTAssertEqual(labels[i].isNaN, truth[i].isNaN)
            if !labels[i].isNaN { XCTAssertEqual(labels[i], probabilities[i] > 0.5 ? 1 : 0) }
        }
    }

    /// The doctor warns of per-step figures at chance level for labels that do not depend on the
    /// inputs, naming the tagger's likely causes, and stays quiet for labels that do.
    func testTheDoctorWarnsOfATaggerAtChanceLevel() throws {
        let (_, ids) = try writeTags("train", count: 200, length: 20, seed: 5)
        let random = CounterRandom(seed: 9, purpose: .synthetic)
        let shuffled = ids.enumerated().map { i, id in
            id < 0 ? -1 : Int64(random.integer(below: 3, stream: 1, index: UInt64(i)))
        }
        try NumpyArray(integers: shuffled, shape: [200, 20]).write(to: "\(dir)/random.npy")
        try """
            [data]
            inputs = ["\(dir)/train/inputs.npy"]
            [model]
            kind = "sequence_tagger"
            cell = "gru"
            hidden = 8
            [training]
            batch_size = 20
            max_steps = 30
            eval_every = 10
            """.write(toFile: "\(dir)/doctor.toml", atomically: true, encoding: .utf8)
        for (labels, atChance) in [("\(dir)/random.npy", true), ("\(dir)/train/labels.npy", false)] {
            let run = try MultiRankTests.execute([MultiRankTests.binary, "train", "\(dir)/doctor.toml",
                                                  "--progress", "lines",
                                                  "--set", "job.run_dir=\(dir)/doctor-\(atChance)",
                                                  "--set", "data.labels=[\"\(labels)\"]"])
            XCTAssertEqual(run.status, 0, run.errors)
            let warned = (run.output + run.errors).contains("no better than chance")
            XCTAssertEqual(warned, atChance, "\(labels): \(run.errors.suffix(800))")
            if atChance {
                XCTAssertTrue(run.errors.contains("a stack that cannot see the steps a tag depends on"), run.errors)
            }
        }
    }

    // MARK: what users get wrong

    func refusal(_ body: String, _ overrides: [String] = []) -> String {
        do {
            _ = try Trainer(config: try config(body, overrides: overrides), options: quiet()).run()
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    func testBadLabelsAndShorteningStacksAreRefusedWithTheFix() throws {
        let (_, ids) = try writeTags("train", count: 40, length: 10, seed: 1)
        // Labels of one step too many, and real values where class ids belong.
        try NumpyArray(integers: (0..<(40 * 11)).map { Int64($0 % 3) }, shape: [40, 11]).write(to: "\(dir)/long.npy")
        try NumpyArray(floats: ids.map { $0 < 0 ? .nan : Float($0) + 0.25 }, shape: [40, 10])
            .write(to: "\(dir)/real.npy")
        try NumpyArray(floats: ids.map { $0 < 0 ? .nan : Float($0) }, shape: [40, 10]).write(to: "\(dir)/whole.npy")
        let data = { (labels: String) in
            "[data]\ninputs = [\"\(self.dir)/train/inputs.npy\"]\nlabels = [\"\(labels)\"]\n"
                + "[model]\nkind = \"sequence_tagger\"\n"
                + "hidden = 4\n[training]\nbatch_size = 8\nmax_steps = 2\n"
        }
        let train = data("\(dir)/train/labels.npy")
        let cases: [(String, [String], [String])] = [
            (data("\(dir)/long.npy"), [], ["data.labels: \(dir)/long.npy has shape (40, 11)",
                                           "data.inputs (\(dir)/train/inputs.npy) holds 40 samples of 10 steps, "
                                            + "shape (40, 10, 2)"]),
            (data("\(dir)/real.npy"), [], ["\(dir)/real.npy, sample 0, step 0 holds", "not a class id",
                                           "set model.task = \"regression\""]),
            (train, ["model.layers=[{type = \"conv1d\", filters = 4, kernel_size = 3, padding = \"causal\", "
                        + "stride = 2}]"],
             ["model.layers[0] (conv1d): stride = 2", "use stride = 1 with padding = \"same\""]),
            (train, ["model.layers=[{type = \"conv1d\", filters = 4, kernel_size = 3}, {type = \"lstm\", hidden = 4}]"],
             ["model.layers[0] (conv1d): padding = \"valid\" drops 2 steps", "padding = \"causal\""]),
            (train, ["model.loss=l1"], ["model.loss = \"l1\" applies to regression targets"]),
            (train, ["model.task=multi_label"], ["multi-label tagging needs (N, T, C) 0/1 labels"]),
            (train, ["data.label_names=[\"a\", \"b\"]"], ["data.label_names: 2 names for 3 classes"]),
        ]
        for (body, overrides, expected) in cases {
            let message = refusal(body, overrides)
            for part in expected { XCTAssertTrue(message.contains(part), "\(overrides) expects \(part): \(message)") }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/run/metrics.jsonl"),
                       "nothing trained for a refused config")
        // Whole numbers stored as floats are class ids; integer labels are fine for regression.
        XCTAssertEqual(refusal(data("\(dir)/whole.npy")), "accepted")
        XCTAssertEqual(refusal(train, ["model.task=regression"]), "accepted")
        XCTAssertEqual(try LoadedTagger(path: "\(dir)/run").preprocessing.task, .regression)
        // eval against labels of the wrong shape names both files.
        XCTAssertThrowsError(try LoadedTagger(path: "\(dir)/run").evaluate(data: ["\(dir)/train/inputs.npy"],
                                                                            labels: ["\(dir)/long.npy"])) { error in
            XCTAssertTrue("\(error)".contains("--labels: \(dir)/long.npy has shape (40, 11), but --data"), "\(error)")
        }
    }

    // MARK: hostile files

    /// Damaged and hostile tagger checkpoints (mutated bytes, metadata that lies) and mutated
    /// input and label files through eval and predict of the real binary: each ends with exit 0 or
    /// seqtrain's error, never a signal; a checkpoint whose metadata lies is refused.
    func testDamagedCheckpointsAndDataNeverCrashEvalOrPredict() throws {
        typealias Case = InputFuzzTests.Case
        let binary = MultiRankTests.binary
        var paths: [String: String] = [:]
        for (name, config, sets) in try TaggerCases.write(in: dir) {
            let command = [binary, "train", config, "--quiet", "--set", "job.run_dir=\(dir)/\(name)"]
                + sets.flatMap { ["--set", $0] } + ["--set", "training.max_steps=2"]
            let trained = try MultiRankTests.execute(command)
            XCTAssertEqual(trained.status, 0, trained.errors)
            paths[name] = try Checkpoint.resolve("\(dir)/\(name)").path
        }
        let inputs = "\(dir)/tags-x.npy"
        let labels = ["tagger-ids": "\(dir)/tags-ids.npy", "tagger-multi": "\(dir)/tags-multi.npy",
                      "tagger-values": "\(dir)/tags-values.npy"]
        func commands(_ kind: String, _ path: String, _ k: Int, data: String = inputs,
                      labels given: String? = nil) -> [String] {
            k % 2 == 0 ? ["eval", path, "--data", data, "--labels", given ?? labels[kind]!]
                : ["predict", path, "--data", data, "--out", "\(dir)/p-\(kind)-\(k).npy"]
        }
        func write(_ bytes: [UInt8], _ name: String) throws -> String {
            try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/\(name)"))
            return "\(dir)/\(name)"
        }
        var draws = InputFuzzTests.Draws(state: 2_020)
        var cases: [Case] = [], mustRefuse: Set<String> = []
        for (kind, original) in paths.sorted(by: { $0.key < $1.key }) {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: original)))
            for k in 0..<40 {
                let path = try write(InputFuzzTests.mutate(bytes, &draws), "\(kind)-\(k).safetensors")
                cases.append(Case(name: "\(kind) checkpoint \(k)", command: commands(kind, path, k)))
            }
            let file = try SafetensorsFile(contentsOf: original)
            let stored = file.metadata["seqtrain.tagger"] ?? "", configText = file.metadata["seqtrain.config"] ?? ""
            // Metadata that says something else than the training wrote.
            func tagger(_ old: String, _ new: String) -> (inout SafetensorsFile) -> Void {
                { $0.metadata["seqtrain.tagger"] = stored.replacingOccurrences(of: old, with: new) }
            }
            let hostile: [(String, (inout SafetensorsFile) -> Void)] = [
                ("tagger metadata not JSON", { $0.metadata["seqtrain.tagger"] = "{" }),
                ("no tagger metadata", { $0.metadata["seqtrain.tagger"] = nil }),
                ("another kind", { $0.metadata["seqtrain.kind"] = "forecaster" }),
                ("no outputs", tagger("\"outputs\":[", "\"outputs\":[],\"x\":[")),
                ("no input features", tagger("\"inputFeatures\":2", "\"inputFeatures\":0")),
                ("negative deviations", tagger("\"std\":[", "\"std\":[-1,")),
                ("an unknown task", tagger("\"task\":\"", "\"task\":\"x")),
                ("huge hidden", {
                    $0.metadata["seqtrain.config"] = configText.replacingOccurrences(of: "hidden = ",
                                                                                     with: "hidden = 42949672")
                }),
                ("NaN weights", { file in
                    for (name, t) in file.tensors {
                        let nan = [Float](repeating: .nan, count: t.bytes.count / 4)
                        file.tensors[name] = StoredTensor(floats: nan, shape: t.shape)
                    }
                }),
                ("a tensor missing", { file in
                    if let name = file.tensors.keys.sorted().last { file.tensors[name] = nil }
                }),
            ]
            for (k, (what, change)) in hostile.enumerated() {
                var copy = file
                change(&copy)
                copy.metadata[SafetensorsFile.checksumKey] = nil
                copy.addChecksums()
                let path = "\(dir)/hostile-\(kind)-\(k).safetensors"
                try copy.write(to: path)
                for variant in 0..<2 {
                    let name = "\(kind) checkpoint with \(what) (\(commands(kind, path, variant)[0]))"
                    cases.append(Case(name: name, command: commands(kind, path, variant)))
                    mustRefuse.insert(name)
                }
            }
            // Mutated inputs and labels.
            for (k, source) in [inputs, labels[kind]!].enumerated() {
                let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
                for j in 0..<30 {
                    let path = try write(InputFuzzTests.mutate(data, &draws), "\(kind)-file\(k)-\(j).npy")
                    cases.append(Case(name: "\(kind) \(k == 0 ? "inputs" : "labels") \(j)",
                                      command: k == 0 ? commands(kind, original, j, data: path)
                                        : commands(kind, original, 0, labels: path)))
                }
            }
        }
        let outcomes = InputFuzzTests.run(cases, binary: binary, in: dir, timeout: 60)
        let (ok, refused) = InputFuzzTests.assertNoCrash(outcomes, expectCases: cases.count)
        print("fuzz: \(cases.count) damaged or hostile tagger checkpoints and files through eval and predict: "
            + "\(ok) used, \(refused) refused with an error, none crashed")
        for outcome in outcomes where mustRefuse.contains(outcome.name) {
            XCTAssertEqual(outcome.status, 2, "\(outcome.name) was accepted: \(outcome.errors)")
        }
        XCTAssertGreaterThan(refused, 100)
        XCTAssertGreaterThan(ok, 10)
    }
}
