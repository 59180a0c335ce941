import Foundation
import XCTest
import SeqTrainKit

/// `seqtrain sweep`: SPEC parsing, seeded draws, the successive-halving rule on planted metrics,
/// and small end-to-end sweeps of the real binary (a 3-class MLP of a few dozen steps).
final class SweepTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    // MARK: SPEC

    func testSpecsParseChoicesNestedListsAndDistributions() throws {
        XCTAssertEqual(try SweepParameter(parsing: "model.hidden=[64, 128, 256]").distribution,
                       .choices(["64", "128", "256"]))
        XCTAssertEqual(try SweepParameter(parsing: "model.hidden_sizes = [[128], [256, 128]]").distribution,
                       .choices(["[128]", "[256, 128]"]))
        XCTAssertEqual(try SweepParameter(parsing: "model.hidden_sizes=[[128], [256, 128]]").key, "model.hidden_sizes")
        XCTAssertEqual(try SweepParameter(parsing: "model.activation=[\"relu\", \"tanh\"]").distribution,
                       .choices(["\"relu\"", "\"tanh\""]))
        XCTAssertEqual(try SweepParameter(parsing: "model.bidirectional=[true, false]").distribution,
                       .choices(["true", "false"]))
        XCTAssertEqual(try SweepParameter(parsing: "model.dropout=[0.1, 0.25]").distribution, .choices(["0.1", "0.25"]))
        XCTAssertEqual(try SweepParameter(parsing: "optimizer.lr=log(1e-4, 1e-2)").distribution,
                       .logUniform(low: 1e-4, high: 1e-2))
        XCTAssertEqual(try SweepParameter(parsing: "model.dropout=uniform(0, 0.5)").distribution,
                       .uniform(low: 0, high: 0.5))
        XCTAssertEqual(try SweepParameter(parsing: "model.layers=int(1, 4)").distribution, .integers(low: 1, high: 4))
    }

    func testBadSpecsAreRefusedNamingTheParamTheProblemAndTheFix() {
        let cases: [(text: String, problem: String, fix: String)] = [
            ("optimizer.lr", "expected KEY=SPEC", "e.g. --param"),
            ("=[1, 2]", "no key before =", "name a config key"),
            ("optimizer.lr=", "no SPEC after =", "give a list of choices"),
            ("optimizer.lr=0.01", "\"0.01\" is not a SPEC", "give a list of choices"),
            ("optimizer.lr=[]", "the list of choices is empty", "write the choices as a TOML list"),
            ("optimizer.lr=[0.1, ", "is not a TOML list", "write the choices as a TOML list"),
            ("model.x=[{ a = 1 }]", "a choice is a table", "write the choices as a TOML list"),
            ("optimizer.lr=log(0, 1)", "log needs 0 < low", "give positive bounds"),
            ("optimizer.lr=log(1e-2, 1e-4)", "log needs low < high", "e.g. log("),
            ("optimizer.lr=uniform(0)", "uniform takes two numbers", "e.g. uniform("),
            ("optimizer.lr=uniform(0, nan)", "two finite numbers", "e.g. uniform("),
            ("model.layers=int(1.5, 4)", "int needs two integers", "e.g. int(1, 4)"),
            ("model.layers=int(4, 4)", "int needs low < high", "e.g. int(1, 4)"),
            ("model.layers=int(-9223372036854775808, 9223372036854775807)", "more integers than can be counted",
             "narrower"),
            ("model.layers=normal(0, 1)", "normal(...) is not a distribution", "use log(low, high)"),
        ]
        for (text, problem, fix) in cases {
            XCTAssertThrowsError(try SweepParameter(parsing: text), text) { error in
                let message = (error as? SeqTrainError)?.message ?? "\(error)"
                XCTAssertTrue(message.hasPrefix("--param \(text):"), message)
                XCTAssertTrue(message.contains(problem), "\(text): \(message)")
                XCTAssertTrue(message.contains(fix), "\(text): \(message)")
            }
        }
    }

    /// The key and each value go through the config's own checks (those of --set), said of the --param.
    func testParamsAreCheckedAgainstTheConfigSchema() throws {
        let (config, sets) = try tinyClassifier()
        func refusal(_ parameter: String, extraSets: [String] = []) -> String {
            do {
                _ = try Sweep(config: config, parameters: [parameter], overrides: sets + extraSets, trials: 2, seed: 1,
                              metric: nil, out: "\(dir)/s", eta: 3)
                return "accepted"
            } catch {
                return (error as? SeqTrainError)?.message ?? "\(error)"
            }
        }
        XCTAssertTrue(refusal("model.hiden_sizes=[[8]]")
                        .hasPrefix("--param model.hiden_sizes=[[8]]: unknown key model.hiden_sizes"))
        XCTAssertTrue(refusal("model.hiden_sizes=[[8]]").contains("did you mean model.hidden_sizes?"))
        XCTAssertTrue(refusal("model.hidden=[8]").contains("it is a key of"), refusal("model.hidden=[8]"))
        XCTAssertTrue(refusal("optimizer.beta1=[0.9, 1.5]")
                        .contains("optimizer.beta1 = 1.5 is refused: optimizer.beta1: expected a number in [0, 1)"),
                      refusal("optimizer.beta1=[0.9, 1.5]"))
        XCTAssertTrue(refusal("model.activation=[\"relu\", \"swish\"]")
                        .contains("model.activation = \"swish\" is refused"))
        XCTAssertTrue(refusal("data.batch=uniform(0.2, 0.7)").contains("unknown key"))
        XCTAssertTrue(refusal("training.batch_size=uniform(0.2, 0.7)")
                        .contains("takes integers and the range holds none"))
        XCTAssertTrue(refusal("job.run_dir=[\"a\"]").contains("is set by the sweep"))
        XCTAssertTrue(refusal("optimizer.lr=[0.1]", extraSets: ["optimizer.lr=0.2"]).contains("also given with --set"))
        XCTAssertEqual(refusal("optimizer.lr=log(1e-3, 1e-1)"), "accepted")
        XCTAssertThrowsError(try Sweep(config: config, parameters: ["optimizer.lr=[0.1]"], overrides: sets, trials: 2,
                                       seed: 1,
                                       metric: "val_perplexity", out: "\(dir)/s", eta: 3)) { error in
            XCTAssertTrue("\(error)".contains("--metric val_perplexity: model.kind = \"mlp_classifier\" logs no such"
                + " validation figure; use one of val_loss, val_accuracy, val_macro_f1"), "\(error)")
        }
    }

    /// `--param model.layers.0.hidden=...` reaches into the stack the config gives: each trial's model
    /// has the drawn width there, the other entries untouched; a stack field is checked as the entry is.
    func testParamsReachIntoALayerStack() throws {
        guard let lstm = try ClassifierCases.write(in: dir).first(where: { $0.name == "lstm" }) else {
            return XCTFail("no lstm case in ClassifierCases")
        }
        let stack = "model.layers=[{type = \"gru\", hidden = 4}, {type = \"dense\", units = 3}]"
        let sets = lstm.sets.filter { !$0.hasPrefix("model.layers=") } + [stack]
        func sweep(_ parameter: String) throws -> Sweep {
            try Sweep(config: lstm.config, parameters: [parameter], overrides: sets, trials: 4, seed: 1, metric: nil,
                      out: "\(dir)/s", eta: 3)
        }
        let widths = try sweep("model.layers.0.hidden=[5, 7]")
        for trial in 0..<4 {
            let specs = try XCTUnwrap(try widths.config(of: trial).layerStack("model.layers"))
            let drawn = try XCTUnwrap(widths.values(of: trial).first?.value)
            XCTAssertEqual(specs[0], .recurrent(RecurrentSpec(cell: .gru, hidden: Int(drawn)!)), "trial \(trial)")
            XCTAssertEqual(specs[1], .dense(units: 3, activation: .identity))
        }
        let integers = try sweep("model.layers.1.units=uniform(2.2, 6.8)")
        for trial in 0..<4 { XCTAssertNotNil(Int(try XCTUnwrap(integers.values(of: trial).first?.value))) }
        func refusal(_ parameter: String) -> String {
            do { _ = try sweep(parameter); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(refusal("model.layers.2.hidden=[5]").contains("entry 2 does not exist; the stack has 2"))
        XCTAssertTrue(refusal("model.layers.0.hiden=[5]").contains("did you mean hidden?"))
        XCTAssertTrue(refusal("model.layers.0.hidden=uniform(0.2, 0.7)").contains("takes integers"))
        XCTAssertTrue(refusal("model.layers.0.dropout=[0.5, 1.5]").contains("model.layers[0].dropout"))
    }

    func testDrawsAreSeededInsideTheirBoundsAndRoundedForIntegerKeys() throws {
        let lr = try SweepParameter(parsing: "optimizer.lr=log(1e-4, 1e-2)")
        let layers = try SweepParameter(parsing: "model.layers=int(1, 4)")
        let hidden = try SweepParameter(parsing: "model.hidden=log(8, 256)")
        let sizes = try SweepParameter(parsing: "model.hidden_sizes=[[128], [256, 128]]")
        let draws = (0..<400).map { lr.value(trial: $0, index: 0, seed: 7, integerKey: false) }
        XCTAssertEqual(draws, (0..<400).map { lr.value(trial: $0, index: 0, seed: 7, integerKey: false) },
                       "the same seed, the same draws")
        XCTAssertNotEqual(draws, (0..<400).map { lr.value(trial: $0, index: 0, seed: 8, integerKey: false) })
        let values = draws.compactMap(Double.init)
        XCTAssertEqual(values.count, 400)
        XCTAssertTrue(values.allSatisfy { $0 >= 1e-4 && $0 <= 1e-2 })
        // Log-uniform: about half of the draws below the geometric middle 1e-3.
        let below = values.filter { $0 < 1e-3 }.count
        XCTAssertTrue((150...250).contains(below), "\(below) of 400 below 1e-3")
        let counts = (0..<400).map { layers.value(trial: $0, index: 1, seed: 7, integerKey: true) }
        XCTAssertEqual(Set(counts), ["1", "2", "3", "4"])
        let widths = (0..<100).map { hidden.value(trial: $0, index: 2, seed: 7, integerKey: true) }
        XCTAssertTrue(widths.allSatisfy { Int($0).map { (8...256).contains($0) } ?? false }, "\(widths)")
        XCTAssertEqual(Set((0..<50).map { sizes.value(trial: $0, index: 3, seed: 7, integerKey: false) }),
                       ["[128]", "[256, 128]"])
        // Another parameter index is another stream: the draws of two keys are not the same sequence.
        XCTAssertNotEqual((0..<20).map { lr.value(trial: $0, index: 0, seed: 7, integerKey: false) },
                          (0..<20).map { lr.value(trial: $0, index: 1, seed: 7, integerKey: false) })
    }

    // MARK: successive halving, on planted metrics

    func testRungsGrowByEtaAndEndAtValidations() {
        XCTAssertEqual(SuccessiveHalving.rungSteps(maxSteps: 900, evalEvery: 10, trials: 9, eta: 3), [100, 300])
        XCTAssertEqual(SuccessiveHalving.rungSteps(maxSteps: 900, evalEvery: 40, trials: 9, eta: 3), [80, 280])
        XCTAssertEqual(SuccessiveHalving.rungSteps(maxSteps: 900, evalEvery: 10, trials: 27, eta: 3), [30, 100, 300])
        XCTAssertEqual(SuccessiveHalving.rungSteps(maxSteps: 900, evalEvery: 10, trials: 8, eta: 2), [110, 220, 450])
        XCTAssertEqual(SuccessiveHalving.rungSteps(maxSteps: 900, evalEvery: 10, trials: 2, eta: 3), [],
                       "fewer trials than eta")
        XCTAssertEqual(SuccessiveHalving.rungSteps(maxSteps: 0, evalEvery: 10, trials: 9, eta: 3), [], "no step limit")
        XCTAssertEqual(SuccessiveHalving.rungSteps(maxSteps: 900, evalEvery: 0, trials: 9, eta: 3), [],
                       "no validations")
        XCTAssertEqual(SuccessiveHalving.rungSteps(maxSteps: 20, evalEvery: 10, trials: 9, eta: 3), [],
                       "budgets below one validation interval are dropped")
        XCTAssertEqual(SuccessiveHalving.rungSteps(maxSteps: 30, evalEvery: 3, trials: 9, eta: 3), [3, 9])
    }

    func testHalvingKeepsTheBestThirdOfPlantedFigures() {
        // Losses: lower is better; trial 4 failed (nil), trial 7 diverged (NaN).
        let losses: [(trial: Int, value: Double?)] = [(0, 2.0), (1, 0.5), (2, 1.5), (3, 0.9), (4, nil), (5, 3.0),
                                                       (6, 0.7), (7, .nan), (8, 1.1)]
        XCTAssertEqual(SuccessiveHalving.survivors(losses, eta: 3, mode: .min), [1, 6, 3])
        // Accuracies: higher is better.
        let accuracies: [(trial: Int, value: Double?)] = [(0, 0.2), (1, 0.9), (2, 0.95), (3, 0.4), (4, 0.1), (5, 0.3)]
        XCTAssertEqual(SuccessiveHalving.survivors(accuracies, eta: 3, mode: .max), [2, 1])
        XCTAssertEqual(SuccessiveHalving.survivors(accuracies, eta: 2, mode: .max), [2, 1, 3])
        // Ties go to the lower trial number; at least one survives; failed trials never do.
        XCTAssertEqual(SuccessiveHalving.survivors([(3, 1.0), (1, 1.0), (2, 1.0)], eta: 3, mode: .min), [1])
        XCTAssertEqual(SuccessiveHalving.survivors([(0, 1.0), (1, 2.0)], eta: 3, mode: .min), [0])
        XCTAssertEqual(SuccessiveHalving.survivors([(0, nil), (1, nil), (2, nil)], eta: 3, mode: .min), [])
        XCTAssertEqual(SuccessiveHalving.survivors([(0, nil), (1, nil), (2, 5.0)], eta: 3, mode: .min), [2])
        XCTAssertEqual(SuccessiveHalving.keptCount(of: 9, eta: 3), 3)
        XCTAssertEqual(SuccessiveHalving.keptCount(of: 2, eta: 3), 1)
        XCTAssertEqual(SuccessiveHalving.keptCount(of: 0, eta: 3), 0)
        XCTAssertEqual(SuccessiveHalving.best([2, .nan, 1.5, 3], mode: .min), 1.5)
        XCTAssertEqual(SuccessiveHalving.best([0.2, .nan, 0.9], mode: .max), 0.9)
        XCTAssertNil(SuccessiveHalving.best([.nan], mode: .max))
    }

    // MARK: end to end

    /// A 3-class MLP on 90 curves: 72 to train (9 batches of 8), 18 to validate.
    func tinyClassifier() throws -> (config: String, sets: [String]) {
        guard let mlp = try ClassifierCases.write(in: dir).first(where: { $0.name == "mlp" }) else {
            throw SeqTrainError("no mlp case in ClassifierCases")
        }
        return (mlp.config, mlp.sets)
    }

    func sweep(_ words: [String], timeout: Double = 240) throws -> MultiRankTests.Run {
        try MultiRankTests.execute([MultiRankTests.binary, "sweep"] + words, timeout: timeout)
    }

    static func csvRows(_ path: String) throws -> [[String]] {
        // Fields of these sweeps hold no commas.
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: ",").map(String.init) }
    }

    /// Trial configs without what names their directory (their run_dir, the header lines).
    func trialConfig(_ sweepDirectory: String, _ trial: Int) throws -> [String] {
        let text = try String(contentsOfFile: "\(sweepDirectory)/trials/\(Sweep.trialName(trial))/config.toml",
                              encoding: .utf8)
        return text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") && !$0.hasPrefix("run_dir = ") }
    }

    func testAFixedSeedSweepWritesTheSameTrialsTwice() throws {
        let (config, sets) = try tinyClassifier()
        let words = [config, "--trials", "4", "--param", "optimizer.lr=log(1e-3, 1e-1)", "--param",
                     "optimizer.weight_decay=[0.0, 0.01, 0.1]",
                     "--seed", "21", "--parallel", "2"]
            + (sets + ["training.max_steps=6", "training.eval_every=3", "checkpoint.interval=0"]).flatMap { ["--set",
                                                                                                             $0] }
        let first = try sweep(words + ["--out", "\(dir)/a"]), second = try sweep(words + ["--out", "\(dir)/b"])
        XCTAssertEqual(first.status, 0, first.errors + first.output)
        XCTAssertEqual(second.status, 0, second.errors + second.output)
        let a = try Self.csvRows("\(dir)/a/sweep.csv"), b = try Self.csvRows("\(dir)/b/sweep.csv")
        XCTAssertEqual(a.first, ["trial", "optimizer.lr", "optimizer.weight_decay", "val_loss", "steps", "seconds",
                                 "status"])
        XCTAssertEqual(a.count, 5)
        XCTAssertEqual(a.map { Array($0.prefix(5)) }, b.map { Array($0.prefix(5)) }, "the same draws and figures")
        XCTAssertEqual(Set(a.dropFirst().map { $0[1] }).count, 4, "four different learning rates")
        for trial in 0..<4 {
            let config = try trialConfig("\(dir)/a", trial)
            XCTAssertEqual(config, try trialConfig("\(dir)/b", trial), "trial \(trial)")
            XCTAssertTrue(config.contains("lr = \(a[trial + 1][1])"), "trial \(trial)'s config holds its drawn lr")
        }
        // Another seed draws other trials; the same command again continues (here: finds done) the sweep.
        let reseeded = try sweep(words.map { $0 == "21" ? "22" : $0 } + ["--out", "\(dir)/c"])
        XCTAssertEqual(reseeded.status, 0, reseeded.errors)
        XCTAssertNotEqual(try Self.csvRows("\(dir)/c/sweep.csv").map { $0[1] }, a.map { $0[1] })
        let again = try sweep(words + ["--out", "\(dir)/a"])
        XCTAssertEqual(again.status, 0, again.errors)
        XCTAssertEqual(try Self.csvRows("\(dir)/a/sweep.csv").map { Array($0.prefix(5)) },
                       a.map { Array($0.prefix(5)) })
        // A different sweep, or a folder that is no sweep, is refused before anything is written.
        let other = try sweep(words.map { $0 == "4" ? "5" : $0 } + ["--out", "\(dir)/a"])
        XCTAssertEqual(other.status, 2)
        XCTAssertTrue(other.errors.contains("--out \(dir)/a: it holds another sweep: its trials is \"4\","
                                            + " this command's \"5\""),
                      other.errors)
        try FileManager.default.createDirectory(atPath: "\(dir)/mine", withIntermediateDirectories: true)
        try "keep".write(toFile: "\(dir)/mine/notes.txt", atomically: true, encoding: .utf8)
        let foreign = try sweep(words + ["--out", "\(dir)/mine"])
        XCTAssertEqual(foreign.status, 2)
        XCTAssertTrue(foreign.errors.contains("--out \(dir)/mine: not empty (it holds notes.txt)"
                                              + " and is no sweep seqtrain wrote"),
                      foreign.errors)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/mine"), ["notes.txt"])
    }

    /// 9 trials, rungs at steps 3 and 9 of 30 (eta 3): the planted learning rates 0 (never learns)
    /// lose the first rung; the pruned and kept trials are exactly those the rule picks from the
    /// figures each trial logged; the survivor trains on with --resume to step 30 and ends as an
    /// uninterrupted run of its config does, bit for bit (the cosine schedule kept its 30 steps).
    func testSuccessiveHalvingPrunesWhatTheRuleSaysAndSurvivorsTrainAsOneRun() throws {
        let (config, sets) = try tinyClassifier()
        let words = [config, "--trials", "9", "--param", "optimizer.lr=[0.0, 0.03, 0.03]", "--param",
                     "job.seed=int(1, 1000)",
                     "--seed", "3", "--parallel", "1", "--out", "\(dir)/halving", "--json"]
            + (sets + ["training.max_steps=30", "training.epochs=10", "training.eval_every=3", "checkpoint.interval=0",
                       "lr_scheduler.kind=cosine"]).flatMap { ["--set", $0] }
        let run = try sweep(words)
        XCTAssertEqual(run.status, 0, run.errors)
        XCTAssertTrue(run.errors.contains("successive halving at steps 3, 9 of 30 (eta 3);"
                                          + " ranked by val_loss (lower is better)"),
                      run.errors)
        guard let json = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any],
              let trials = json["trials"] as? [[String: Any]] else {
            return XCTFail("no JSON on stdout: \(run.output)")
        }
        XCTAssertEqual(json["metric"] as? String, "val_loss")
        XCTAssertEqual(trials.count, 9)
        func lr(_ t: [String: Any]) -> Double {
            ((t["parameters"] as? [String: Any])?["optimizer.lr"] as? Double) ?? -1
        }
        func status(_ t: [String: Any]) -> String { t["status"] as? String ?? "" }
        let learning = trials.filter { lr($0) > 0 }
        XCTAssertGreaterThanOrEqual(learning.count, 3, "the planted draws give at least 3 learning trials of 9")
        // Rung 1 (step 3) keeps 3 of 9, rung 2 (step 9) keeps 1 of 3.
        XCTAssertEqual(trials.filter { status($0) == "completed" }.count, 1)
        XCTAssertEqual(trials.filter { status($0) == "pruned" }.count, 8)
        XCTAssertEqual(trials.filter { $0["steps"] as? Int == 3 }.count, 6)
        XCTAssertEqual(trials.filter { $0["steps"] as? Int == 9 }.count, 2)
        XCTAssertTrue(trials.filter { lr($0) == 0 }.allSatisfy { status($0) == "pruned" && $0["steps"] as? Int == 3 },
                      "a trial that does not learn never passes the first rung")
        // Each rung's decision is the rule's on the figures the trials logged through the rung's step.
        func figure(_ trial: Int, through step: Int) throws -> Double? {
            let text = try String(contentsOfFile: "\(dir)/halving/trials/\(Sweep.trialName(trial))/metrics.jsonl",
                                  encoding: .utf8)
            let values = text.split(separator: "\n").compactMap { line -> Double? in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let at = object["step"] as? Int, at <= step, object["event"] == nil else { return nil }
                return object["val_loss"] as? Double
            }
            return SuccessiveHalving.best(values, mode: .min)
        }
        let rung1 = try (0..<9).map { (trial: $0, value: try figure($0, through: 3)) }
        let kept1 = SuccessiveHalving.survivors(rung1, eta: 3, mode: .min)
        let continued = trials.filter { ($0["steps"] as? Int ?? 0) > 3 }.map { $0["trial"] as? Int ?? -1 }
        XCTAssertEqual(Set(kept1), Set(continued))
        let rung2 = try kept1.map { (trial: $0, value: try figure($0, through: 9)) }
        let kept2 = SuccessiveHalving.survivors(rung2, eta: 3, mode: .min)
        guard let winner = kept2.first else { return XCTFail("no survivor of rung 2") }
        XCTAssertEqual(json["best_run_dir"] as? String, "\(dir)/halving/trials/\(Sweep.trialName(winner))")
        XCTAssertEqual(trials[winner]["steps"] as? Int, 30)
        let csv = try Self.csvRows("\(dir)/halving/sweep.csv")
        XCTAssertEqual(csv.count, 10)
        XCTAssertEqual(csv.dropFirst().map { $0.last ?? "" }, trials.map(status), "sweep.csv marks what --json says")
        let log = try String(contentsOfFile: "\(dir)/halving/trials/\(Sweep.trialName(winner))/train.log",
                             encoding: .utf8)
        XCTAssertTrue(log.contains("paused at step 3 (--pause-at)") && log.contains("paused at step 9 (--pause-at)"),
                      log)
        XCTAssertTrue(log.contains("at step 9 of 30"), log)

        // best.toml trains the winner again, uninterrupted: the same losses and validations.
        let best = "\(dir)/halving/best.toml"
        let bestText = try String(contentsOfFile: best, encoding: .utf8)
        XCTAssertTrue(bestText.hasPrefix("# seqtrain sweep: the best trial \(Sweep.trialName(winner))"), bestText)
        let winnerMetrics = try String(contentsOfFile: "\(dir)/halving/trials/\(Sweep.trialName(winner))/metrics.jsonl",
                                       encoding: .utf8)
        let firstLine = winnerMetrics.split(separator: "\n").first
            .flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let workers = firstLine?["workers"] as? Int ?? 1
        let again = try MultiRankTests.execute([MultiRankTests.binary, "train", best, "--quiet", "--set",
                                                "training.workers=\(workers)"])
        XCTAssertEqual(again.status, 0, again.errors)
        func losses(_ run: String) throws -> [String] {
            try String(contentsOfFile: "\(run)/metrics.jsonl",
                       encoding: .utf8).split(separator: "\n").compactMap { line in
                guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let step = object["step"] as? Int, object["event"] == nil else { return nil }
                return "\(step) \(object["loss"] ?? "") \(object["val_loss"] ?? "") \(object["lr"] ?? "")"
            }
        }
        XCTAssertEqual(try losses("\(dir)/halving/trials/\(Sweep.trialName(winner))"),
                       try losses("\(dir)/halving/best"))

        // The report overlays every trial, with a chart of the ranking figure's curves.
        let report = try MultiRankTests.execute([MultiRankTests.binary, "report", "\(dir)/halving", "--out",
                                                 "\(dir)/report.html"])
        XCTAssertEqual(report.status, 0, report.errors)
        let html = try String(contentsOfFile: "\(dir)/report.html", encoding: .utf8)
        for trial in 0..<9 { XCTAssertTrue(html.contains("<title>trial \(Sweep.trialName(trial)): validation</title>"),
                                           "trial \(trial)") }
    }

    /// A trial that fails is a row of sweep.csv, not the end of the sweep.
    func testAFailedTrialIsReportedAndTheOthersComplete() throws {
        let (config, sets) = try tinyClassifier()
        // lr 1e30 diverges at once (training.on_nonfinite = "stop"): that trial fails.
        // Seed 1 draws 1e30 for trials 0 and 3, 0.01 for trials 1 and 2.
        let run = try sweep([config, "--trials", "4", "--param", "optimizer.lr=[0.01, 1e30]", "--seed", "1",
                             "--out", "\(dir)/failing"]
                            + (sets + ["training.max_steps=6", "training.eval_every=3",
                                       "optimizer.kind=sgd"]).flatMap { ["--set", $0] })
        XCTAssertEqual(run.status, 0, run.errors + run.output)
        let rows = try Self.csvRows("\(dir)/failing/sweep.csv").dropFirst()
        let failed = rows.filter { $0.last == "failed" }, completed = rows.filter { $0.last == "completed" }
        XCTAssertEqual(failed.map { $0[0] }, ["000", "003"], rows.description)
        XCTAssertTrue(failed.allSatisfy { $0[1] == "1e+30" }, rows.description)
        XCTAssertEqual(completed.map { $0[0] }, ["001", "002"], rows.description)
        XCTAssertTrue(run.output.contains("trial 000 failed: step "), run.output)
        XCTAssertTrue(run.output.contains("training diverged"), run.output)
        XCTAssertTrue(run.output.contains("best: trial 00"), run.output)
    }
}
