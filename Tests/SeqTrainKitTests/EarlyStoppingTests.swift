import Foundation
import XCTest
import SeqTrainKit

/// Early stopping, the best checkpoint and the step limits, through the real binary: a small MLP on
/// 300 generated letters overfits within a few validations, so early stopping fires in seconds.
final class EarlyStoppingTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try temporaryDirectory()
        let made = try seqtrain(["data", "letters", "--count", "300", "--out", "\(dir)/letters"])
        XCTAssertEqual(made.status, 0, made.errors)
        try """
            [job]
            seed = 1
            [data]
            inputs = ["\(dir)/letters/images.npy"]
            labels = ["\(dir)/letters/labels.csv"]
            [model]
            kind = "mlp_classifier"
            hidden_sizes = [64]
            [training]
            batch_size = 16
            max_steps = 400
            eval_every = 10
            workers = 1
            [training.early_stopping]
            patience = 3
            [optimizer]
            lr = 0.01
            [checkpoint]
            interval = 0
            keep_last = 1
            [metrics]
            log_every = 10
            """.write(toFile: "\(dir)/es.toml", atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func seqtrain(_ arguments: [String], timeout: Double = 120) throws -> MultiRankTests.Run {
        try MultiRankTests.execute([MultiRankTests.binary] + arguments, timeout: timeout)
    }

    func train(_ run: String, _ extra: [String] = []) throws -> MultiRankTests.Run {
        let result = try seqtrain(["train", "\(dir)/es.toml", "--quiet", "--set", "job.run_dir=\(run)"] + extra)
        XCTAssertEqual(result.status, 0, result.errors)
        return result
    }

    func metrics(_ run: String) throws -> [[String: Any]] {
        try String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// The early-stopping record (the last line) and the validation lines.
    func outcome(_ run: String) throws -> (record: [String: Any], validations: [[String: Any]]) {
        let lines = try metrics(run)
        let record = try XCTUnwrap(lines.last)
        XCTAssertEqual(record["event"] as? String, "early_stopping", "metrics.jsonl ends with the early-stopping record")
        return (record, lines.filter { $0["val_loss"] is Double })
    }

    func testStopsRestoresTheBestWeightsAndKeepsTheBestCheckpoint() throws {
        let run = "\(dir)/run"
        _ = try train(run)
        let (record, validations) = try outcome(run)
        let stopped = try XCTUnwrap(record["stopped_step"] as? Int), best = try XCTUnwrap(record["best_step"] as? Int)
        let bestValue = try XCTUnwrap(record["best"] as? Double)
        XCTAssertLessThan(stopped, 400, "early stopping ended the run before training.max_steps")
        XCTAssertEqual(stopped - best, 3 * 10, "patience 3 validations, every 10 steps")
        XCTAssertEqual(record["restored_best"] as? Bool, true)
        // The logged best is the lowest val_loss logged, at best_step, and nothing after it beats it.
        let losses = validations.compactMap { line in (line["step"] as? Int).map { ($0, line["val_loss"] as? Double ?? .nan) } }
        XCTAssertEqual(losses.min { $0.1 < $1.1 }?.0, best)
        XCTAssertEqual(losses.first { $0.0 == best }?.1, bestValue)

        // keep_last = 1 rotated every other checkpoint out; the best one stays beside the last.
        let record2 = try XCTUnwrap(BestCheckpointRecord.read(run))
        XCTAssertEqual(record2.step, best)
        let listed = Checkpoint.list(run).map { ($0 as NSString).lastPathComponent }
        XCTAssertEqual(Set(listed), Set([best, stopped].map { String(format: "step-%08d.safetensors", $0) }))

        // The last checkpoint holds the best weights, and evaluating them gives the logged best.
        let last = try Checkpoint.load(Checkpoint.weightsPath(run, step: stopped), state: false).weights
        let bestFile = try Checkpoint.load(Checkpoint.weightsPath(run, step: best), state: false).weights
        for name in bestFile.tensors.keys.sorted() {
            XCTAssertEqual(try last.tensor(name, in: "last").floats(), try bestFile.tensor(name, in: "best").floats(), name)
        }
        XCTAssertEqual(last.metadata["seqtrain.val_loss"].flatMap(Double.init) ?? .nan, bestValue, accuracy: 1e-9,
                       "the last checkpoint's validation, measured again on the restored weights")
        // eval on a run directory takes the best checkpoint and says so.
        let evaluated = try seqtrain(["eval", run, "--data", "\(dir)/letters/images.npy", "--labels", "\(dir)/letters/labels.csv", "--json"])
        XCTAssertEqual(evaluated.status, 0, evaluated.errors)
        XCTAssertTrue(evaluated.errors.contains("using checkpoint step-\(String(format: "%08d", best)) (best val_loss"), evaluated.errors)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(evaluated.output.utf8)) as? [String: Any])
        XCTAssertEqual((json["checkpoint"] as? String).map { ($0 as NSString).lastPathComponent },
                       String(format: "step-%08d.safetensors", best))
        let lastEval = try seqtrain(["eval", run, "--checkpoint", "last", "--data", "\(dir)/letters/images.npy",
                                     "--labels", "\(dir)/letters/labels.csv", "--json"])
        XCTAssertEqual(lastEval.status, 0, lastEval.errors)
        XCTAssertTrue(lastEval.errors.contains("(the newest)"), lastEval.errors)
    }

    func testEveryReplicaStopsAtTheSameStep() throws {
        _ = try train("\(dir)/w1")
        _ = try train("\(dir)/w2", ["--set", "training.workers=2"])
        let mpi = try MultiRankTests.execute(MultiRankTests.mpirunPrefix(2) + [MultiRankTests.binary, "train", "\(dir)/es.toml",
                                             "--quiet", "--set", "job.run_dir=\(dir)/r2"])
        XCTAssertEqual(mpi.status, 0, mpi.errors)
        let one = try outcome("\(dir)/w1").record
        for (run, world) in [("w2", 2), ("r2", 2)] {
            let (record, validations) = try outcome("\(dir)/\(run)")
            XCTAssertEqual(validations.first?["world_size"] as? Int, world, "\(run): the world size this test needs")
            XCTAssertEqual(record["stopped_step"] as? Int, one["stopped_step"] as? Int, run)
            XCTAssertEqual(record["best_step"] as? Int, one["best_step"] as? Int, run)
            XCTAssertEqual(record["best"] as? Double ?? .nan, one["best"] as? Double ?? .nan, accuracy: 1e-5, run)
        }
    }

    func testAResumedRunStopsWhereTheUninterruptedOneDid() throws {
        _ = try train("\(dir)/whole", ["--set", "checkpoint.interval=5"])
        let whole = try outcome("\(dir)/whole").record
        let stopped = try XCTUnwrap(whole["stopped_step"] as? Int), best = try XCTUnwrap(whole["best_step"] as? Int)
        // Killed after the best validation and before the stop: the tracker's count must survive.
        let killAt = best + 7
        XCTAssertLessThan(killAt, stopped)
        let killed = try seqtrain(["train", "\(dir)/es.toml", "--quiet", "--set", "job.run_dir=\(dir)/parts",
                                   "--set", "checkpoint.interval=5", "--test-fail-at", "0:\(killAt):exit"])
        XCTAssertNotEqual(killed.status, 0)
        _ = try train("\(dir)/parts", ["--set", "checkpoint.interval=5", "--resume"])
        let resumed = try outcome("\(dir)/parts").record
        XCTAssertEqual(resumed["stopped_step"] as? Int, stopped)
        XCTAssertEqual(resumed["best_step"] as? Int, best)
        XCTAssertEqual(resumed["best"] as? Double, whole["best"] as? Double)
        // Resuming the finished run trains nothing more.
        _ = try train("\(dir)/parts", ["--set", "checkpoint.interval=5", "--resume"])
        XCTAssertEqual(try metrics("\(dir)/parts").count, try metrics("\(dir)/whole").count)
    }

    func testMaxStepsWithoutEpochsTrainsThatManySteps() throws {
        // 240 training samples in batches of 16: 15 steps an epoch.
        let run = "\(dir)/steps"
        let result = try seqtrain(["train", "\(dir)/es.toml", "--set", "job.run_dir=\(run)", "--set", "training.max_steps=40",
                                   "--set", "training.early_stopping.patience=0", "--set", "metrics.progress=lines"])
        XCTAssertEqual(result.status, 0, result.errors)
        XCTAssertTrue(result.output.contains("stops after 40 steps (training.max_steps; epochs unbounded)"), result.output)
        XCTAssertEqual(try metrics(run).last?["step"] as? Int, 40)
        let both = try seqtrain(["train", "\(dir)/es.toml", "--set", "job.run_dir=\(run)-both", "--set", "training.max_steps=40",
                                 "--set", "training.epochs=2", "--set", "training.early_stopping.patience=0",
                                 "--set", "metrics.progress=lines"])
        XCTAssertEqual(both.status, 0, both.errors)
        XCTAssertTrue(both.output.contains("stops after 30 steps (training.epochs = 2"), both.output)
        XCTAssertEqual(try metrics("\(run)-both").last?["step"] as? Int, 30)
    }

    func testAnUnknownMonitorIsRefusedNamingTheValidOnes() throws {
        let result = try seqtrain(["train", "\(dir)/es.toml", "--quiet", "--set", "job.run_dir=\(dir)/bad",
                                   "--set", "training.early_stopping.monitor=val_rmse"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.errors.contains("training.early_stopping.monitor"), result.errors)
        XCTAssertTrue(result.errors.contains("val_loss, val_accuracy, val_macro_f1"), result.errors)
        let section = try seqtrain(["train", "\(dir)/es.toml", "--quiet", "--set", "training.early_stopping=5"])
        XCTAssertNotEqual(section.status, 0)
        XCTAssertTrue(section.errors.contains("training.early_stopping.patience"), section.errors)
    }
}
