import Foundation
import XCTest
import SeqTrainKit

/// seqtrain deletes and overwrites only files it wrote: `--overwrite` removes only its own files
/// and refuses a folder that is not its run directory, commands with `--out` never replace a run's
/// files and replace their outputs all at once, `--resume` never truncates metrics it cannot read.
/// The real binary in child processes.
final class FileSafetyTests: XCTestCase {
    var dir = ""
    var binary: String { MultiRankTests.binary }

    override func setUpWithError() throws {
        dir = try temporaryDirectory()
        try TrainingTests.grammarText(sentences: 200, seed: 3)
            .write(toFile: "\(dir)/corpus.txt", atomically: true, encoding: .utf8)
        try """
            [job]
            name = "file-safety"
            seed = 5
            [data]
            paths = ["\(dir)/corpus.txt"]
            validation_fraction = 0.1
            [model]
            embedding = 8
            hidden = 16
            layers = 1
            [training]
            batch_size = 4
            seq_len = 16
            epochs = 10
            max_steps = 6
            eval_every = 3
            [checkpoint]
            keep_best = false
            interval = 3
            keep_last = 5
            [metrics]
            log_every = 1
            timeline = true
            tensorboard = true
            """.write(toFile: "\(dir)/config.toml", atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func train(_ run: String, _ args: [String] = [], config: String? = nil) throws -> MultiRankTests.Run {
        try MultiRankTests.execute([binary, "train", config ?? "\(dir)/config.toml", "--progress", "lines",
                                    "--set", "job.run_dir=\(dir)/\(run)"] + args, timeout: 120)
    }

    func seqtrain(_ args: [String]) throws -> MultiRankTests.Run {
        try MultiRankTests.execute([binary] + args, timeout: 120)
    }

    func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    func names(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    // MARK: --overwrite

    func testOverwriteRemovesOnlySeqtrainsFilesAndSaysWhat() throws {
        let first = try train("r")
        XCTAssertEqual(first.status, 0, first.errors)
        let run = "\(dir)/r"
        // The user's own files, beside and inside seqtrain's folders.
        try "my notes\n".write(toFile: "\(run)/checkpoints/notes.txt", atomically: true, encoding: .utf8)
        try "mine\n".write(toFile: "\(run)/tensorboard/mine.txt", atomically: true, encoding: .utf8)
        try "kept\n".write(toFile: "\(run)/analysis.py", atomically: true, encoding: .utf8)
        let timelines = names(run).filter { $0.hasPrefix("timeline-rank-") }.count  // one per worker
        XCTAssertGreaterThanOrEqual(timelines, 1)
        let oldEvents = names("\(run)/tensorboard").filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(oldEvents.count, 1, names("\(run)/tensorboard").description)
        let timeline = "\(run)/timeline-rank-0.json"
        let stepsInTimeline = {
            let text = (try? String(contentsOfFile: timeline, encoding: .utf8)) ?? ""
            return text.components(separatedBy: "\"args\": {\"step\": 1}").count - 1
        }
        let firstRunSteps = stepsInTimeline()
        XCTAssertGreaterThan(firstRunSteps, 1)

        let again = try train("r", ["--overwrite"])
        XCTAssertEqual(again.status, 0, again.errors)
        let said = "--overwrite: removed from \(run): 2 checkpoints (6 files), metrics.jsonl, config.toml, \(timelines)"
            + " timeline file\(timelines == 1 ? "" : "s"), 1 TensorBoard event file; kept 2 other files in its"
            + " checkpoints/ and tensorboard/ folders"
        XCTAssertTrue(again.output.contains(said), again.output)
        XCTAssertEqual(try String(contentsOfFile: "\(run)/checkpoints/notes.txt", encoding: .utf8), "my notes\n")
        XCTAssertEqual(try String(contentsOfFile: "\(run)/tensorboard/mine.txt", encoding: .utf8), "mine\n")
        XCTAssertEqual(try String(contentsOfFile: "\(run)/analysis.py", encoding: .utf8), "kept\n")
        // The new run's events are its own: the old event file is gone, the timeline not doubled.
        let events = names("\(run)/tensorboard").filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(events.count, 1, events.description)
        XCTAssertFalse(events.contains(oldEvents[0]), "the previous run's event file was removed")
        XCTAssertEqual(stepsInTimeline(), firstRunSteps, "the timeline holds the new run's steps only")
        XCTAssertEqual(Checkpoint.list(run).count, 2)
    }

    func testOverwriteRefusesARunNestedInside() throws {
        let first = try train("r")
        XCTAssertEqual(first.status, 0, first.errors)
        let run = "\(dir)/r", nested = "\(dir)/r/checkpoints/b"
        try FileManager.default.createDirectory(atPath: nested, withIntermediateDirectories: true)
        try "{\"step\": 1, \"loss\": 2.0}\n".write(toFile: "\(nested)/metrics.jsonl", atomically: true, encoding: .utf8)
        // Held as a running seqtrain holds its run directory: an flock on its .lock with its identity.
        let descriptor = open("\(nested)/.lock", O_RDWR | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(descriptor, 0)
        XCTAssertEqual(flock(descriptor, LOCK_EX | LOCK_NB), 0)
        let holder = "process \(getpid()) on host test, started now\n"
        _ = Array(holder.utf8).withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        let checkpoints = names("\(run)/checkpoints")

        let live = try train("r", ["--overwrite"])
        XCTAssertEqual(live.status, 2, live.output)
        let refusal = "\(run): --overwrite refused: \(nested) inside it is the run directory of a live seqtrain run"
            + " (process \(getpid()) on host test"
        XCTAssertTrue(live.errors.contains(refusal), live.errors)
        XCTAssertEqual(names("\(run)/checkpoints"), checkpoints, "nothing removed")
        XCTAssertEqual(try String(contentsOfFile: "\(nested)/metrics.jsonl", encoding: .utf8),
                       "{\"step\": 1, \"loss\": 2.0}\n")

        // Ended (the lock released), it is still another run's directory.
        close(descriptor)
        let ended = try train("r", ["--overwrite"])
        XCTAssertEqual(ended.status, 2, ended.output)
        let another = "\(nested) inside it is another run's directory (it holds \(nested)/.lock);"
            + " move \(nested) out of \(run)"
        XCTAssertTrue(ended.errors.contains(another), ended.errors)
        XCTAssertEqual(names("\(run)/checkpoints"), checkpoints, "nothing removed")
    }

    func testAConfigSeqtrainDidNotWriteIsNeverReplaced() throws {
        // The user's experiment folder as the run directory: its config.toml is theirs.
        let mine = "\(dir)/mine"
        try FileManager.default.createDirectory(atPath: mine, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(dir)/config.toml", toPath: "\(mine)/config.toml")
        let original = bytes("\(mine)/config.toml")
        for flags in [[], ["--overwrite"], ["--resume"]] {
            let result = try train("mine", flags, config: "\(mine)/config.toml")
            XCTAssertEqual(result.status, 2, "\(flags): \(result.output)")
            let refusal = "\(mine)/config.toml: this config.toml was not written by seqtrain"
            XCTAssertTrue(result.errors.contains(refusal), "\(flags): \(result.errors)")
            XCTAssertTrue(result.errors.contains("set job.run_dir to a folder of its own"), result.errors)
            XCTAssertEqual(bytes("\(mine)/config.toml"), original, "\(flags): the user's config is untouched")
            XCTAssertEqual(names(mine), ["config.toml"], "\(flags): nothing written beside it")
        }
    }

    // MARK: --out

    func testReportAndOutputsNeverReplaceARunsFiles() throws {
        let first = try train("r")
        XCTAssertEqual(first.status, 0, first.errors)
        let run = "\(dir)/r"
        let metrics = bytes("\(run)/metrics.jsonl"), config = bytes("\(run)/config.toml")
        let checkpoint = try XCTUnwrap(Checkpoint.list(run).last)
        let weights = bytes(checkpoint)
        for target in ["\(run)/metrics.jsonl", "\(run)/../r/metrics.jsonl", "\(run)/config.toml", "\(run)/.lock",
                       checkpoint, "\(run)/checkpoints/step-00000099.manifest.json", "\(run)/timeline-rank-0.json"] {
            let report = try seqtrain(["report", run, "--out", target])
            XCTAssertEqual(report.status, 2, "\(target): \(report.output)")
            XCTAssertTrue(report.errors.contains("--out \(target): that is "), report.errors)
            XCTAssertTrue(report.errors.contains(", which seqtrain never replaces; give the output another name"),
                          report.errors)
        }
        XCTAssertEqual(bytes("\(run)/metrics.jsonl"), metrics)
        XCTAssertEqual(bytes("\(run)/config.toml"), config)
        XCTAssertEqual(bytes(checkpoint), weights)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(run)/checkpoints/step-00000099.manifest.json"))
        // Any other name in a run directory is the user's to choose.
        let beside = try seqtrain(["report", run, "--out", "\(run)/report.html"])
        XCTAssertEqual(beside.status, 0, beside.errors)
    }

    /// encode and score (an autoencoder run) and forecast (a forecaster run) refuse `--out` onto
    /// the run's metrics before anything is computed, and leave its bytes as they were.
    func testEncodeScoreAndForecastNeverReplaceARunsMetrics() throws {
        let cases = try SequenceKindCases.write(in: dir)
        var options = TrainerOptions()
        options.quiet = true
        var runs: [String: String] = [:]
        for name in ["autoencoder", "forecaster-windows"] {
            let (_, config, sets) = try XCTUnwrap(cases.first { $0.name == name })
            let run = "\(dir)/\(name)"
            let overrides = sets + ["job.run_dir=\(run)", "training.max_steps=2", "training.eval_every=0", "training.workers=1"]
            _ = try Trainer(config: try ExperimentConfig.load(path: config, overrides: overrides), options: options).run()
            runs[name] = run
        }
        let commands: [(run: String, args: [String])] = [
            (runs["autoencoder"]!, ["encode", "--data", "\(dir)/ae.npy"]),
            (runs["autoencoder"]!, ["score", "--data", "\(dir)/ae.npy"]),
            (runs["forecaster-windows"]!, ["forecast", "--data", "\(dir)/series.npy", "--steps", "3"]),
        ]
        for (run, args) in commands {
            let target = "\(run)/metrics.jsonl"
            let before = try XCTUnwrap(bytes(target))
            let result = try seqtrain([args[0], run] + args.dropFirst() + ["--out", target])
            XCTAssertEqual(result.status, 2, "\(args[0]): \(result.output)")
            XCTAssertTrue(result.errors.contains("--out \(target): that is the metrics of the run in \(run)"), result.errors)
            XCTAssertTrue(result.errors.contains("which seqtrain never replaces"), result.errors)
            XCTAssertEqual(bytes(target), before, "\(args[0]): the metrics are untouched")
        }
    }

    func testPredictReplacesBothOutputsOrNeither() throws {
        let made = try seqtrain(["data", "curves", "--out", "\(dir)/curves", "--count", "40", "--length", "24"])
        XCTAssertEqual(made.status, 0, made.errors)
        try """
            [job]
            run_dir = "\(dir)/mlp-run"
            [data]
            inputs = ["\(dir)/curves/inputs.npy"]
            labels = ["\(dir)/curves/labels.npy"]
            [model]
            kind = "mlp_classifier"
            hidden_sizes = [8]
            [training]
            batch_size = 8
            max_steps = 2
            eval_every = 0
            """.write(toFile: "\(dir)/mlp.toml", atomically: true, encoding: .utf8)
        let trained = try seqtrain(["train", "\(dir)/mlp.toml", "--quiet"])
        XCTAssertEqual(trained.status, 0, trained.errors)
        let predict = { (out: String) in
            let inputs = "\(self.dir)/curves/inputs.npy"
            return try self.seqtrain(["predict", "\(self.dir)/mlp-run", "--data", inputs, "--out", out])
        }
        let written = try predict("\(dir)/p.npy")
        XCTAssertEqual(written.status, 0, written.errors)
        XCTAssertNotNil(bytes("\(dir)/p.labels.npy"))

        // Old outputs; the labels path is a directory, so the second file cannot be written.
        try Data("old probabilities".utf8).write(to: URL(fileURLWithPath: "\(dir)/q.npy"))
        try FileManager.default.createDirectory(atPath: "\(dir)/q.labels.npy", withIntermediateDirectories: true)
        try Data("old labels".utf8).write(to: URL(fileURLWithPath: "\(dir)/q.labels.npy/old.npy"))
        let failed = try predict("\(dir)/q.npy")
        XCTAssertEqual(failed.status, 2, failed.output)
        XCTAssertTrue(failed.errors.contains("\(dir)/q.labels.npy: is a directory"), failed.errors)
        XCTAssertEqual(bytes("\(dir)/q.npy"), Data("old probabilities".utf8), "the old probabilities are untouched")
        XCTAssertEqual(bytes("\(dir)/q.labels.npy/old.npy"), Data("old labels".utf8))
        XCTAssertFalse(names(dir).contains { $0.hasPrefix(".tmp-") }, names(dir).description)

        // Onto a run's own file: refused before anything is computed or written.
        let metrics = bytes("\(dir)/mlp-run/metrics.jsonl")
        let onto = try predict("\(dir)/mlp-run/metrics.jsonl")
        XCTAssertEqual(onto.status, 2, onto.output)
        XCTAssertTrue(onto.errors.contains("that is the metrics of the run in \(dir)/mlp-run"), onto.errors)
        XCTAssertEqual(bytes("\(dir)/mlp-run/metrics.jsonl"), metrics)
    }

    /// The rename phase of a multi-file replacement: a rename that fails puts back the files the
    /// earlier renames replaced.
    func testAFailedRenamePutsTheEarlierOutputsBack() throws {
        let first = "\(dir)/a.csv", second = "\(dir)/b.csv"
        try Data("old a".utf8).write(to: URL(fileURLWithPath: first))
        try Data("old b".utf8).write(to: URL(fileURLWithPath: second))
        XCTAssertThrowsError(try DurableFile.replace([(first, Data("new a".utf8)), (second, Data("new b".utf8))]) {
            // After every new file is written, the second target turns into a directory.
            unlink(second)
            mkdir(second, 0o755)
            _ = FileManager.default.createFile(atPath: "\(second)/inside", contents: Data())
        }) { error in
            XCTAssertTrue("\(error)".contains("\(second): cannot rename"), "\(error)")
            XCTAssertTrue("\(error)".contains("no output was replaced"), "\(error)")
        }
        XCTAssertEqual(bytes(first), Data("old a".utf8), "the first output is put back")
        XCTAssertEqual(names(dir).filter { $0.hasPrefix(".tmp-") }, [])
        try DurableFile.replace([(first, Data("new a".utf8)), ("\(dir)/c.csv", Data("new c".utf8))])
        XCTAssertEqual(bytes(first), Data("new a".utf8))
        XCTAssertEqual(bytes("\(dir)/c.csv"), Data("new c".utf8))
        XCTAssertEqual(names(dir).filter { $0.hasPrefix(".tmp-") }, [])
    }

    // MARK: --resume

    func testResumeRefusesMetricsItCannotParse() throws {
        let first = try train("r", ["--set", "training.max_steps=3"])
        XCTAssertEqual(first.status, 0, first.errors)
        let path = "\(dir)/r/metrics.jsonl"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3)
        // A line that is not seqtrain's (another program wrote it): refused with its number.
        lines[1] = "<p>not metrics</p>"
        let damaged = Data((lines.joined(separator: "\n") + "\n").utf8)
        try damaged.write(to: URL(fileURLWithPath: path))
        let resumed = try train("r", ["--resume", "--set", "training.max_steps=3"])
        XCTAssertEqual(resumed.status, 2, resumed.output)
        let refusal = "\(path):2: not a metrics line seqtrain wrote (\"<p>not metrics</p>\");"
            + " --resume leaves it as it is"
        XCTAssertTrue(resumed.errors.contains(refusal), resumed.errors)
        XCTAssertEqual(bytes(path), damaged, "the metrics are unchanged")

        // What `report --out RUN/metrics.jsonl` did before it was refused: an HTML page there.
        let page = Data("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<html>\n</html>\n".utf8)
        try page.write(to: URL(fileURLWithPath: path))
        let again = try train("r", ["--resume", "--set", "training.max_steps=3"])
        XCTAssertEqual(again.status, 2, again.output)
        XCTAssertTrue(again.errors.contains("\(path):1: not a metrics line seqtrain wrote"), again.errors)
        XCTAssertEqual(bytes(path), page, "the file is not truncated")

        // A last line cut short by a crash is still dropped.
        try Data((text + "{\"step\": 4, \"lo").utf8).write(to: URL(fileURLWithPath: path))
        let torn = try train("r", ["--resume", "--set", "training.max_steps=3"])
        XCTAssertEqual(torn.status, 0, torn.errors)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), text)
    }
}
