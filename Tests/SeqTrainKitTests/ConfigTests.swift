import Foundation
import XCTest
import SeqTrainKit

final class ConfigTests: XCTestCase {
    func assertConfigError(_ text: String, overrides: [String] = [], _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ExperimentConfig.parse(text, source: "configs/x.toml", overrides: overrides), file: file, line: line) { error in
            XCTAssertEqual("\(error)", expected, file: file, line: line)
        }
    }

    func testAutomaticProgressDrawsTheBarOnlyForOneProcessOnATerminal() {
        let terminal = ["TERM": "xterm-256color"]
        XCTAssertEqual(ProgressStyle.auto.resolved(environment: terminal, stdoutIsTerminal: true), .bar)
        XCTAssertEqual(ProgressStyle.auto.resolved(environment: terminal, stdoutIsTerminal: false), .lines)
        XCTAssertEqual(ProgressStyle.auto.resolved(environment: ["TERM": "dumb"], stdoutIsTerminal: true), .lines)
        XCTAssertEqual(ProgressStyle.auto.resolved(environment: [:], stdoutIsTerminal: true), .lines)
        // Launchers hand the ranks a pseudo-terminal whatever the user does with the output.
        for launcher in ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "SLURM_JOB_ID"] {
            XCTAssertEqual(ProgressStyle.auto.resolved(environment: terminal.merging([launcher: "0"]) { $1 }, stdoutIsTerminal: true), .lines, launcher)
        }
        for style in [ProgressStyle.bar, .lines, .none] {
            XCTAssertEqual(style.resolved(environment: ["OMPI_COMM_WORLD_SIZE": "2"], stdoutIsTerminal: false), style)
        }
    }

    func testDefaultsFillEveryKey() throws {
        let config = try ExperimentConfig.parse("", source: "empty.toml")
        for key in ConfigSchema.keys where key.path != "job.run_dir" {
            XCTAssertEqual(config.value(key.path), key.defaultValue, key.path)
        }
        XCTAssertEqual(config.text("job.run_dir"), "runs/experiment")
        XCTAssertEqual(config.integer("model.hidden"), 256)
        XCTAssertEqual(config.optimizerSettings.kind, .adam)
    }

    func testOptimizerDefaultsFollowTheKindAsInPyTorch() throws {
        let adamw = try ExperimentConfig.parse("[optimizer]\nkind = \"adamw\"\n", source: "a.toml")
        XCTAssertEqual(adamw.number("optimizer.weight_decay"), 0.01, accuracy: 1e-12)
        let adagrad = try ExperimentConfig.parse("[optimizer]\nkind = \"adagrad\"\n", source: "a.toml")
        XCTAssertEqual(adagrad.number("optimizer.eps"), 1e-10, accuracy: 1e-20)
        let explicit = try ExperimentConfig.parse("[optimizer]\nkind = \"adamw\"\nweight_decay = 0\n", source: "a.toml")
        XCTAssertEqual(explicit.number("optimizer.weight_decay"), 0)
    }

    func testPrecedenceCommandLineOverFileOverDefaults() throws {
        let text = "[model]\nhidden = 128\nlayers = 3\n[optimizer]\nlr = 1\n"
        let config = try ExperimentConfig.parse(text, source: "x.toml", overrides: ["model.hidden=64", "data.paths=a.txt", "training.stateful=false"])
        XCTAssertEqual(config.integer("model.hidden"), 64)
        XCTAssertEqual(config.integer("model.layers"), 3)
        XCTAssertEqual(config.integer("model.embedding"), 64)
        XCTAssertEqual(config.number("optimizer.lr"), 1)   // an integer where a number is expected
        XCTAssertEqual(config.texts("data.paths"), ["a.txt"])  // a bare string becomes a list
        XCTAssertFalse(config.boolean("training.stateful"))
    }

    func testResolvedConfigRepeatsTheRun() throws {
        let config = try ExperimentConfig.parse("[model]\nhidden = 32\n[data]\npaths = [\"a \\\"quoted\\\" name.txt\"]\nvocabulary = \"ab\\ncd\"\n", source: "x.toml",
                                                overrides: ["optimizer.kind=adamw"])
        let again = try ExperimentConfig.parse(config.resolvedTOML, source: "config.toml")
        XCTAssertEqual(again.resolvedPairs.map(\.0), config.resolvedPairs.map(\.0))
        XCTAssertEqual(again.resolvedPairs.map(\.1), config.resolvedPairs.map(\.1))
    }

    /// A softmax or a sigmoid on the output of a kind whose loss takes logits (or whose head is a
    /// regression head) is refused with the reason, in the file and through --set.
    func testAnOutputActivationIsRefusedWithTheReasonForEveryKindWithoutOne() {
        for kind in ["char_lm", "seq2seq", "autoencoder", "forecaster"] {
            let text = "[model]\nkind = \"\(kind)\"\noutput_activation = \"softmax\"\n"
            XCTAssertThrowsError(try ExperimentConfig.parse(text, source: "configs/x.toml")) { error in
                XCTAssertTrue("\(error)".hasPrefix("configs/x.toml:3: model.output_activation: there is no output "
                                                   + "activation to set"), "\(kind): \(error)")
            }
            XCTAssertThrowsError(try ExperimentConfig.parse("[model]\nkind = \"\(kind)\"\n", source: "configs/x.toml",
                                                            overrides: ["model.activation=sigmoid"])) { error in
                let regression = ["autoencoder", "forecaster"].contains(kind)
                XCTAssertTrue("\(error)".contains(regression ? "regression head" : "log-softmax"),
                              "\(kind): \(error)")
            }
        }
    }

    /// Optimizer values that can only diverge are refused before training, naming the key.
    func testOptimizerValuesThatCanOnlyDivergeAreRefusedNamingTheKey() {
        assertConfigError("[optimizer]\nkind = \"sgd\"\nmomentum = 1.5\n",
                          "configs/x.toml:3: optimizer.momentum = 1.5: at 1 or above the velocity never decays and "
                          + "the steps grow without bound; use a value below 1 (0.9 is usual)")
        assertConfigError("[optimizer]\nlr = 0.01\nweight_decay = 1e308\n",
                          "configs/x.toml:3: optimizer.weight_decay = 1e+308 with optimizer.lr = 0.01: "
                          + "lr × weight_decay "
                          + "= 1e+306 ≥ 1, so one step decays every weight past zero; use weight_decay well below "
                          + "1 / lr (1e-4 to 0.1 are usual)")
    }

    func testErrorsNameFileLineKeyAndWhatIsAccepted() {
        assertConfigError("[job]\nname = \"x\"\n\n[model]\nlayers = 2\nhidden = \"two\"\n",
                          "configs/x.toml:6: model.hidden: expected a positive integer, got \"two\"")
        assertConfigError("[model]\nhiden = 3\n",
                          "configs/x.toml:2: model.hiden: unknown key; [model] accepts kind, embedding, cell, hidden, layers, dropout (did you mean hidden?)")
        assertConfigError("[modle]\nhidden = 3\n",
                          "configs/x.toml:1: unknown section [modle]; the sections are [job], [data], [model], [training], [training.early_stopping], [optimizer], [lr_scheduler], [checkpoint], [metrics], [doctor] (did you mean model?)")
        assertConfigError("seed = 3\n",
                          "configs/x.toml:1: seed: a key outside any section; every key belongs under one of [job], [data], [model], [training], [training.early_stopping], [optimizer], [lr_scheduler], [checkpoint], [metrics], [doctor]")
        assertConfigError("[model]\ndropout = 1.5\n", "configs/x.toml:2: model.dropout: expected a number in [0, 1), got 1.5")
        assertConfigError("[optimizer]\nlr = -0.1\n", "configs/x.toml:2: optimizer.lr: expected a non-negative number, got -0.1")
        assertConfigError("[optimizer]\nkind = \"adamax\"\n",
                          "configs/x.toml:2: optimizer.kind: expected one of \"sgd\", \"adam\", \"adamw\", \"rmsprop\", \"adagrad\", got \"adamax\"")
        assertConfigError("[training]\nstateful = 1\n", "configs/x.toml:2: training.stateful: expected true or false, got 1")
        assertConfigError("[optimizer]\nnesterov = true\n",
                          "configs/x.toml:2: optimizer.nesterov: needs optimizer.kind = \"sgd\" and optimizer.momentum > 0 (as torch.optim.SGD)")
        assertConfigError("[data]\npaths = [1, 2]\n", "configs/x.toml:2: data.paths: expected a list of strings (or one string), got an array of integer")
        assertConfigError("", overrides: ["model.hidden"], "--set model.hidden: expected section.key=value, e.g. --set model.hidden=128")
        assertConfigError("", overrides: ["model.layers=0"],
                          "--set model.layers=0: model.layers: expected a positive integer (the shorthand's "
                            + "layer count) or a layer stack ([[model.layers]] tables: lstm, gru, rnn, conv1d, "
                            + "dense, dropout), got 0")
        XCTAssertThrowsError(try ExperimentConfig.parse("[model\nhidden = 3\n", source: "configs/x.toml")) { error in
            XCTAssertTrue("\(error)".hasPrefix("configs/x.toml:1: not valid TOML"), "\(error)")
        }
    }

    /// A `--set` value that starts like a TOML string or list must be one: an unterminated quote
    /// once became part of the value (a run directory named `'runs`). A bare word is still a string.
    func testOverridesThatStartLikeTOMLButAreNotAreRefusedNamingTheKey() throws {
        for (override, key) in [("job.run_dir='runs", "job.run_dir"), ("data.paths=[\"a\"", "data.paths"),
                                ("job.name=\"grammar", "job.name")] {
            XCTAssertThrowsError(try ExperimentConfig.parse("", source: "x.toml", overrides: [override]), override) { error in
                XCTAssertTrue("\(error)".hasPrefix("--set \(override): \(key): "), "\(override) -> \(error)")
                XCTAssertTrue("\(error)".contains("not a valid TOML value"), "\(override) -> \(error)")
            }
        }
        let bare = try ExperimentConfig.parse("", source: "x.toml", overrides: ["job.run_dir=runs/plain"])
        XCTAssertEqual(bare.text("job.run_dir"), "runs/plain")
    }

    /// File errors are said in words, never as "NSCocoaErrorDomain error 513"; a config that is
    /// missing or behind a folder this user may not open says which.
    func testFileErrorsAreWordsAndAnUnreadableConfigSaysWhy() throws {
        for (code, words) in [(513, "permission denied"), (260, "does not exist"), (4, "does not exist")] {
            let said = describeFileError(NSError(domain: NSCocoaErrorDomain, code: code))
            XCTAssertTrue(said.contains(words), "\(code): \(said)")
            XCTAssertFalse(said.contains("NSCocoaErrorDomain"), "\(code): \(said)")
        }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let missing = try MultiRankTests.execute([MultiRankTests.binary, "train", "\(dir)/missing.toml"], timeout: 30)
        XCTAssertEqual(missing.status, 2, missing.errors)
        XCTAssertTrue(missing.errors.contains("\(dir)/missing.toml: cannot read the config file: it does not exist"),
                      missing.errors)

        // A config in a folder of mode 000, read as user nobody (root reads through any mode).
        try FileManager.default.createDirectory(atPath: "\(dir)/closed", withIntermediateDirectories: true)
        try "[model]\nhidden = 8\n".write(toFile: "\(dir)/closed/c.toml", atomically: true, encoding: .utf8)
        XCTAssertEqual(chmod("\(dir)/closed", 0), 0)
        defer { chmod("\(dir)/closed", 0o755) }
        let denied = "\(dir)/closed/c.toml: cannot read the config file: permission denied on a folder of its path"
        let asRoot = getuid() == 0
        if !asRoot || FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") {
            let nobody = asRoot ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : []
            let run = try MultiRankTests.execute(nobody + [MultiRankTests.binary, "train", "\(dir)/closed/c.toml"], timeout: 30)
            XCTAssertEqual(run.status, 2, run.errors)
            XCTAssertTrue(run.errors.contains(denied), run.errors)
        }
        if asRoot {
            XCTAssertEqual(setegid(65534), 0)
            XCTAssertEqual(seteuid(65534), 0)
        }
        defer { if asRoot { seteuid(0); setegid(0) } }
        XCTAssertThrowsError(try ExperimentConfig.load(path: "\(dir)/closed/c.toml")) { error in
            XCTAssertEqual("\(error)", denied)
        }
    }

    /// toml++ stops on an `assert` (SIGABRT) for these shapes instead of returning a parse error; the config
    /// must get an error naming the line, and TOML that only looks alike must still parse.
    func testMalformedTOMLThatWouldAbortTheParserGetsAnErrorNamingTheLine() throws {
        let traps = [
            ("[model]\nhidden = 8\n[.early_stopping]\n", 3), ("[ =]\n", 1), ("\n\n[[#]]\n", 3), ("[\n]\n", 1),
            ("[data]\npaths = [}]\n", 2), ("[data]\npaths = [\"a\", }]\n", 2), ("[data]\npaths = [ # c\n}]\n", 3),
            ("[job]\nseed = 1979-05-27 1\n", 2), ("[job]\nseed = [1979-05-27 9, 1]\n", 2),
        ]
        for (text, line) in traps {
            XCTAssertThrowsError(try ExperimentConfig.parse(text, source: "configs/x.toml"), text) { error in
                XCTAssertTrue("\(error)".hasPrefix("configs/x.toml:\(line): not valid TOML: "), "\(text) -> \(error)")
            }
        }
        XCTAssertThrowsError(try ExperimentConfig.parse("", source: "x.toml", overrides: ["data.paths=[}]"])) { error in
            XCTAssertTrue("\(error)".hasPrefix("--set data.paths=[}]: data.paths: not a valid TOML value"), "\(error)")
        }
        // Brackets, braces and dates inside strings and comments, multi-line strings, a quoted header.
        let valid = #"""
            # [.not a header] [}]
            [ "model" ]
            hidden = 8 # 1979-05-27 1
            [data]
            paths = [ "a[}].txt", 'b }', """c
            [.x] ]""" ]
            vocabulary = "\" ] }"
            [job]
            run_dir = '''r [}]'''
            """#
        let config = try ExperimentConfig.parse(valid, source: "x.toml")
        XCTAssertEqual(config.integer("model.hidden"), 8)
        XCTAssertEqual(config.text("job.run_dir"), "r [}]")
    }

    func testNothingIsWrittenBeforeTheConfigAndDataAreValid() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("seqtrain-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try ExperimentConfig.parse("[job]\nrun_dir = \"\(dir)/run\"\n[data]\npaths = [\"\(dir)/missing/*.txt\"]\n", source: "x.toml")
        XCTAssertThrowsError(try Trainer(config: config).run()) { error in
            XCTAssertTrue("\(error)".contains("matches no file"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/run"))
    }

    func testTheREADMEListsEveryKeyAsTheSchemaDefinesIt() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertTrue(readme.contains(ConfigSchema.markdownTable), "README.md's key table differs from `seqtrain config --keys`; paste that output in")
    }
}
