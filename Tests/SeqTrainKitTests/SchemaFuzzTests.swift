import Foundation
import XCTest
import SeqTrainKit

/// Every config key of every kind, and every option of every command, driven from the schema and
/// from the command tree (`seqtrain --experimental-dump-help`) rather than from a hand-picked list:
/// each value class below goes through the real binary in a child process, which must train (or
/// run), or refuse with an error; never a signal, never past the time limit.
///
/// CI runs a seeded sample of the value classes for each key (`SEQTRAIN_FUZZ_CLASSES`, default 2;
/// `all` runs every class of every key, about 20,000 runs).
final class SchemaFuzzTests: XCTestCase {
    var dir = ""
    typealias Case = InputFuzzTests.Case

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// The classes of value a user can type, as TOML.
    static let valueClasses: [(name: String, toml: String)] = [
        ("zero", "0"), ("minus one", "-1"), ("one", "1"), ("a million", "1000000"),
        ("largest integer", "9223372036854775807"), ("smallest integer", "-9223372036854775808"),
        ("2^31", "2147483648"), ("2^32", "4294967296"), ("2^62", "4611686018427387904"),
        ("NaN", "nan"), ("infinity", "inf"), ("minus infinity", "-inf"), ("1e308", "1e308"), ("a half", "0.5"),
        ("empty string", "\"\""), ("empty list", "[]"), ("a list", "[1, 2]"), ("a list of strings", "[\"a\", \"b\"]"),
        ("a boolean", "true"), ("a table", "{ x = 1 }"), ("unicode", "\"ü€😀\\u0000\""),
        ("a 5 kB string", "\"" + String(repeating: "x", count: 5_000) + "\""), ("a word", "\"auto\""),
    ]

    /// How many value classes each key gets: all of them, or a seeded sample.
    static var classesPerKey: Int {
        let setting = ProcessInfo.processInfo.environment["SEQTRAIN_FUZZ_CLASSES"] ?? "2"
        return setting == "all" ? valueClasses.count : min(valueClasses.count, max(1, Int(setting) ?? 2))
    }

    /// The value classes of one key: a rotation of a seeded shuffle, so that over the keys every
    /// class is used about equally often.
    static func classes(forKeyAt index: Int, _ draws: inout InputFuzzTests.Draws) -> [(name: String, toml: String)] {
        var order = Array(valueClasses.indices)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, draws.below(i + 1)) }
        return order.prefix(classesPerKey).map { valueClasses[$0] }
    }

    /// One small, fast base run per kind (and per mode where a kind has two): config, overrides.
    func baseRuns() throws -> [(name: String, kind: String, config: String, sets: [String])] {
        let corpus = "\(dir)/corpus.txt"
        try TrainingTests.grammarText(sentences: 60, seed: 2).write(toFile: corpus, atomically: true, encoding: .utf8)
        try """
            [data]
            paths = ["\(corpus)"]
            [model]
            embedding = 8
            hidden = 16
            [training]
            batch_size = 4
            seq_len = 8
            """.write(toFile: "\(dir)/char.toml", atomically: true, encoding: .utf8)
        var runs: [(String, String, String, [String])] = [("char_lm", "char_lm", "\(dir)/char.toml", [])]
        for (name, config, sets) in try ClassifierCases.write(in: dir) where name != "gru-variable" {
            let kind = sets.first { $0.hasPrefix("model.kind=") }.map { String($0.dropFirst("model.kind=".count)) } ?? ""
            runs.append((name, kind, config, sets))
        }
        for (name, config, sets) in try SequenceKindCases.write(in: dir)
        where ["autoencoder", "seq2seq-variational", "forecaster-windows", "forecaster-stateful"].contains(name) {
            let kind = sets.first { $0.hasPrefix("model.kind=") }.map { String($0.dropFirst("model.kind=".count)) } ?? ""
            runs.append((name, kind, config, sets))
        }
        for (name, config, sets) in try TaggerCases.write(in: dir) where name == "tagger-ids" {
            runs.append((name, "sequence_tagger", config, sets))
        }
        // A few steps, one validation, no checkpoint before the end: each case stays short.
        let quick = ["training.max_steps=3", "training.eval_every=0", "checkpoint.interval=0", "training.workers=1"]
        return runs.map { ($0.0, $0.1, $0.2, $0.3 + quick) }
    }

    func testEveryConfigKeyOfEveryKindWithEveryValueClass() throws {
        var draws = InputFuzzTests.Draws(state: 2_101)
        var cases: [Case] = []
        // The key each case sets, which a refusal must name.
        var keyOf: [String: String] = [:]
        let bases = try baseRuns()
        for (name, kind, config, sets) in bases {
            let fixed = sets.flatMap { ["--set", $0] }
            for (index, key) in ConfigSchema.keys(for: kind).enumerated() where key.path != "model.kind" {
                for (position, value) in Self.classes(forKeyAt: index, &draws).enumerated() {
                    let run = "\(dir)/runs/\(name)-\(index)-\(position)"
                    // gradcheck on every fifth case: the model's own backward, once per key on average.
                    let command = position == 0 && index % 5 == 0 ? ["gradcheck", config, "--samples", "2"]
                        : ["train", config, "--quiet", "--set", "job.run_dir=\(run)"]
                    cases.append(Case(name: "\(name): \(key.path) = \(value.name) (\(command[0]))",
                                      command: command + fixed + ["--set", "\(key.path)=\(value.toml)"]))
                    keyOf[cases[cases.count - 1].name] = key.path
                }
            }
        }
        // Whatever the sample draws: the sizes whose products once overflowed, through train.
        let pinned = [("char_lm", "training.epochs"), ("char_lm", "training.batch_size"), ("char_lm", "training.workers"),
                      ("forecaster-windows", "eval.season")]
        for (name, path) in pinned {
            let (_, _, config, sets) = try XCTUnwrap(bases.first { $0.name == name })
            for (label, value) in [("2^62", "4611686018427387904"), ("largest integer", "9223372036854775807")] {
                let run = "\(dir)/runs/pinned-\(name)-\(path)-\(value)"
                cases.append(Case(name: "\(name): \(path) = \(label) (train, pinned)",
                                  command: ["train", config, "--quiet", "--set", "job.run_dir=\(run)"]
                                    + sets.flatMap { ["--set", $0] } + ["--set", "\(path)=\(value)"]))
                keyOf[cases[cases.count - 1].name] = path
            }
        }
        let outcomes = InputFuzzTests.run(cases, binary: MultiRankTests.binary, in: dir, timeout: 60)
        Self.list(outcomes)
        let (ok, refused) = InputFuzzTests.assertNoCrash(outcomes, expectCases: cases.count)
        // A refusal names the key it refuses, so a user knows which line to change.
        let unnamed = outcomes.filter { $0.status == 2 && !$0.signaled && !$0.errors.contains(keyOf[$0.name] ?? "") }
        for outcome in unnamed.prefix(20) {
            XCTFail("\(outcome.name): refused without naming \(keyOf[outcome.name] ?? "?"): \(outcome.errors.prefix(400))")
        }
        if unnamed.count > 20 { XCTFail("\(unnamed.count) refusals in all do not name their key") }
        print("schema fuzz: \(cases.count) keys × value classes: \(ok) trained, \(refused) refused, none crashed")
        XCTAssertGreaterThan(ok, cases.count / 10)
        XCTAssertGreaterThan(refused, cases.count / 3)
    }

    /// The values an option or argument may be given on the command line.
    func optionValues() -> [String] {
        ["0", "-1", "1", "1000000", "9223372036854775807", "-9223372036854775808", "2147483648", "4294967296",
         "4611686018427387904", "nan", "inf", "-inf", "1e308", "0.5", "", "[]", "a,b", "ü€😀", String(repeating: "x", count: 5_000),
         "\(dir)/missing/x", dir, "model.hidden=4", "="]
    }

    /// Every subcommand's options and arguments, read from the parser's own description of itself.
    func commandTree() throws -> [(path: [String], options: [String], positionals: Int)] {
        let run = try MultiRankTests.execute([MultiRankTests.binary, "--experimental-dump-help"])
        guard let json = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any],
              let root = json["command"] as? [String: Any] else { throw SeqTrainError("the command tree is not JSON") }
        var found: [([String], [String], Int)] = []
        func walk(_ command: [String: Any], _ path: [String]) {
            let name = command["commandName"] as? String ?? ""
            let here = path.isEmpty ? [] : path + [name]
            let arguments = command["arguments"] as? [[String: Any]] ?? []
            let options = arguments.filter { $0["kind"] as? String == "option" }.compactMap { argument -> String? in
                let names = argument["names"] as? [[String: Any]] ?? []
                guard let first = names.first, let word = first["name"] as? String else { return nil }
                return (first["kind"] as? String == "short" ? "-" : "--") + word
            }
            let groups = !(command["subcommands"] as? [[String: Any]] ?? []).isEmpty
            if !here.isEmpty, here.last != "help", !groups {
                found.append((here, options, arguments.filter { $0["kind"] as? String == "positional" }.count))
            }
            for sub in command["subcommands"] as? [[String: Any]] ?? [] { walk(sub, path.isEmpty ? [""] : here) }
        }
        walk(root, [])
        return found.map { (Array($0.0.drop { $0.isEmpty }), $0.1, $0.2) }
    }

    func testEveryOptionOfEveryCommandWithEveryValueClass() throws {
        let bases = try baseRuns()
        // Checkpoints of every kind to give the commands that read one.
        var runs: [String: String] = [:]
        for (name, _, config, sets) in bases where ["char_lm", "mlp", "autoencoder", "seq2seq-variational", "forecaster-stateful"].contains(name) {
            let trained = try MultiRankTests.execute([MultiRankTests.binary, "train", config, "--quiet", "--set", "job.run_dir=\(dir)/\(name)"]
                                                     + sets.flatMap { ["--set", $0] })
            XCTAssertEqual(trained.status, 0, trained.errors)
            runs[name] = "\(dir)/\(name)"
        }
        let char = bases[0].config, curves = "\(dir)/fixed-x.npy", ids = "\(dir)/ids.npy"
        // A valid invocation of each command, which the cases then vary one option or argument at a time.
        let valid: [String: [String]] = [
            "train": ["train", char, "--quiet", "--set", "training.max_steps=2", "--set", "training.workers=1"],
            "sample": ["sample", runs["char_lm"] ?? "", "--length", "20"],
            "eval": ["eval", runs["mlp"] ?? "", "--data", curves, "--labels", ids],
            "predict": ["predict", runs["mlp"] ?? "", "--data", curves, "--out", "\(dir)/predicted.csv"],
            "encode": ["encode", runs["autoencoder"] ?? "", "--data", "\(dir)/ae.npy", "--out", "\(dir)/z.npy"],
            "score": ["score", runs["autoencoder"] ?? "", "--data", "\(dir)/ae.npy", "--out", "\(dir)/scores.csv"],
            "generate": ["generate", runs["seq2seq-variational"] ?? "", "--prior", "2", "--max-length", "8"],
            "forecast": ["forecast", runs["forecaster-stateful"] ?? "", "--data", "\(dir)/series.npy", "--steps", "3"],
            "config": ["config", char],
            "data curves": ["data", "curves", "--count", "10", "--length", "8", "--out", "\(dir)/curves"],
            "data letters": ["data", "letters", "--count", "10", "--out", "\(dir)/letters"],
            "data series": ["data", "series", "--length", "50", "--out", "\(dir)/series"],
            "data tags": ["data", "tags", "--count", "10", "--length", "8", "--out", "\(dir)/tags"],
            "bench": ["bench", "--only", "3", "--repeats", "1"],
            "system": ["system"],
            "gradcheck": ["gradcheck", char, "--samples", "2"],
            "report": ["report", runs["char_lm"] ?? "", "--out", "\(dir)/report.html"],
            "debug": ["debug", char, "-n", "2", "--steps", "2"],
            // Two trials of two steps; every case shares the --out folder (the same sweep continues,
            // another is refused).
            "sweep": ["sweep", char, "--trials", "2", "--param", "optimizer.lr=[0.01, 0.02]",
                      "--set", "training.max_steps=2", "--out", "\(dir)/sweep", "--parallel", "1"],
        ]
        var cases: [Case] = []
        for (path, options, positionals) in try commandTree() {
            let name = path.joined(separator: " ")
            guard let base = valid[name] else {
                XCTFail("seqtrain \(name) has no valid invocation in this test: add one so its options are fuzzed")
                continue
            }
            for value in optionValues() {
                // Each option in turn, replaced where the base gives it and added where it does not.
                // The hidden test hooks (--test-*) make a run fail on purpose; they are not user options.
                for option in options where !option.hasPrefix("--test-") {
                    var command = base
                    if let at = command.firstIndex(of: option), at + 1 < command.count { command[at + 1] = value } else { command += [option, value] }
                    cases.append(Case(name: "seqtrain \(name) \(option) \(value.prefix(40))", command: command))
                }
                // The first positional argument (a config, checkpoint or run directory).
                if positionals > 0 {
                    var command = base
                    command[path.count] = value
                    cases.append(Case(name: "seqtrain \(name) <\(value.prefix(40))>", command: command))
                }
            }
        }
        let outcomes = InputFuzzTests.run(cases, binary: MultiRankTests.binary, in: dir, timeout: 60)
        // The parser's own refusals (exit 64, "Error:" and the usage) count as refusals here.
        let usage = outcomes.map { o in o.status == 64 && o.errors.contains("Error: ") && !o.signaled
            ? InputFuzzTests.Outcome(name: o.name, status: 2, signaled: false, errors: "error: " + o.errors, timedOut: o.timedOut) : o }
        let (ok, refused) = InputFuzzTests.assertNoCrash(usage, expectCases: cases.count)
        Self.list(usage)
        print("option fuzz: \(cases.count) options and arguments × value classes: \(ok) ran, \(refused) refused, none crashed")
        XCTAssertGreaterThan(refused, cases.count / 3)
    }

    /// Every failing case on one line each (assertNoCrash names only the first five).
    static func list(_ outcomes: [InputFuzzTests.Outcome]) {
        for outcome in outcomes where outcome.signaled || outcome.timedOut || ![0, 2].contains(outcome.status) {
            let how = outcome.timedOut ? "timed out" : outcome.signaled ? "signal \(outcome.status)" : "exit \(outcome.status)"
            let said = outcome.errors.split(separator: "\n").first { $0.contains("Fatal") || $0.contains("error") } ?? ""
            print("schema fuzz: \(outcome.name): \(how): \(said.prefix(300))")
        }
    }
}
