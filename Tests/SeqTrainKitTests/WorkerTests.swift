import Foundation
import XCTest
import SeqTrainKit

/// Worker threads (`training.workers`): the collectives over threads, how many workers a process
/// runs, and, through the binary, that N workers, N ranks or ranks × workers learn what one worker
/// learns, resume bit for bit, and end cleanly when a worker fails or hangs. Each run asserts the
/// replicas it had: a run of one would make every sharding check pass without proving anything.
final class WorkerTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try temporaryDirectory()
        try MultiRankTests.writeSmallRun(in: dir, name: "workers", checkpointInterval: 0)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    // MARK: the communicator over threads

    /// Sums, broadcasts, gathers and the shared buffers over three threads, against what each
    /// collective must give.
    func testThreadCollectivesGiveWhatTheyPromise() throws {
        let workers = 3, count = 1000
        let group = try WorkerGroup(size: workers)
        final class Seen: @unchecked Sendable {
            var sums: [Float] = [], doubles: [Double] = [], broadcast: [UInt8] = [], gathered: [[UInt8]] = [], range = 0..<0
            var shared: ObjectIdentifier?
            var place = (rank: -1, size: -1)
        }
        let seen = (0..<workers).map { _ in Seen() }
        let errors = group.run(inner: nil, timeout: 30) { c in
            let buffer = FloatBuffer(count: count)
            for i in 0..<count { buffer[i] = Float(c.worker + 1) * Float(i) }
            try c.allReduceSum(buffer.pointer, count: count)
            var totals = [Double(c.worker), 1]
            try c.allReduceSum(&totals)
            var bytes = c.worker == 2 ? [7, 8, 9] : [UInt8]()
            try c.broadcast(&bytes, root: 2)
            let gathered = try c.allGather([UInt8(c.worker), 42])
            let mine = FloatBuffer(count: 16)
            let shared = try c.shareWithinProcess([mine])
            try c.barrier()
            let box = seen[c.worker]
            box.sums = buffer.array
            box.doubles = totals
            box.broadcast = bytes
            box.gathered = gathered
            box.range = c.updateRange(count: count)
            box.shared = ObjectIdentifier(shared[0])
            box.place = (c.rank, c.size)
        }
        XCTAssertTrue(errors.allSatisfy { $0 == nil }, "\(errors)")
        for (worker, box) in seen.enumerated() {
            XCTAssertTrue(box.place == (worker, workers), "worker \(worker) is participant \(box.place.rank) of \(box.place.size)")
            // (1 + 2 + 3) · i on every worker.
            XCTAssertEqual(box.sums, (0..<count).map { 6 * Float($0) })
            XCTAssertEqual(box.doubles, [3, 3])
            XCTAssertEqual(box.broadcast, [7, 8, 9])
            XCTAssertEqual(box.gathered, [[0, 42], [1, 42], [2, 42]])
            XCTAssertEqual(box.shared, seen[0].shared, "every worker uses worker 0's buffer")
        }
        // The update slices cover the arena once, each starting on a 16-float boundary.
        XCTAssertEqual(seen.map(\.range), [0..<336, 336..<672, 672..<1000])
    }

    /// A worker that fails stops the others at their next collective, instead of leaving them waiting.
    func testAFailingWorkerStopsTheOthers() throws {
        let group = try WorkerGroup(size: 3)
        let errors = group.run(inner: nil, timeout: 30) { c in
            if c.worker == 1 { throw SeqTrainError("worker 1 gave up") }
            for _ in 0..<3 { try c.barrier() }
        }
        XCTAssertEqual((errors[1] as? SeqTrainError)?.message, "worker 1 gave up")
        XCTAssertTrue(errors[0] is WorkerGroup.Stopped && errors[2] is WorkerGroup.Stopped, "\(errors)")
    }

    /// How many workers a process runs: one per usable CPU (affinity, quota, ranks sharing the node,
    /// BLAS threads per worker), the most that divide the batch share; a count given is kept.
    func testWorkerCountFollowsTheCPUsTheProcessMayUse() {
        func plan(_ requested: ConfigValue?, batch: Int = 32, ranks: Int = 1, affinity: Int = 8, online: Int = 8,
                  quota: Double? = nil, onNode: Int = 1, environment: [String: String] = [:]) -> WorkerPlan {
            WorkerPlan.resolve(requested: requested, batchSize: batch, ranks: ranks,
                               budget: CPUBudget(affinity: affinity, online: online, quota: quota, ranksOnNode: onNode), environment: environment)
        }
        let auto = ConfigValue.text("auto")
        XCTAssertEqual(plan(auto).workers, 8)
        XCTAssertEqual(plan(auto).note, "training.workers = \"auto\": 8 usable CPUs")
        XCTAssertEqual(plan(auto, affinity: 2).workers, 2, "the affinity mask")
        XCTAssertEqual(plan(auto, batch: 30, quota: 2.5).workers, 3, "a cgroup quota of 2.5 CPUs")
        XCTAssertEqual(plan(auto, ranks: 4, onNode: 4).workers, 2, "four unbound ranks share the node")
        XCTAssertEqual(plan(auto, ranks: 4, affinity: 2, onNode: 4).workers, 2, "ranks bound to two cores each")
        XCTAssertEqual(plan(auto, environment: ["OPENBLAS_NUM_THREADS": "4"]).workers, 2, "four BLAS threads per worker")
        XCTAssertEqual(plan(auto, environment: ["OPENBLAS_NUM_THREADS": "4"]).blasThreads, 4)
        XCTAssertEqual(plan(auto, environment: ["OMP_NUM_THREADS": "2"]).workers, 4)
        let odd = plan(auto, batch: 30)
        XCTAssertEqual(odd.workers, 6)
        XCTAssertEqual(odd.note, "training.workers = \"auto\": 8 usable CPUs; 6, the most that divide the batch share of 30")
        XCTAssertEqual(plan(auto, batch: 7).workers, 7)
        XCTAssertEqual(plan(auto, batch: 5, ranks: 2).workers, 1, "a batch the ranks cannot share: the kind's error explains")
        XCTAssertEqual(plan(.integer(3)).workers, 3)
        XCTAssertEqual(plan(.integer(3)).note, "training.workers = 3")
        XCTAssertEqual(plan(nil).workers, 1)
        // This machine's budget is at least one CPU and at most the CPUs online.
        let here = CPUBudget.current(environment: [:])
        XCTAssertTrue((1...here.online).contains(here.usable), "\(here)")
    }

    // MARK: training through the binary

    /// `seqtrain train` with `args` and no launcher (or `mpirun -n ranks` for ranks > 1).
    func train(_ run: String, _ args: [String], ranks: Int = 1, config: String? = nil, timeout: Double = 120) throws -> MultiRankTests.Run {
        let command = (ranks > 1 ? MultiRankTests.mpirunPrefix(ranks) : []) + [MultiRankTests.binary, "train", config ?? "\(dir)/config.toml",
                                                                                "--progress", "lines", "--set", "job.run_dir=\(dir)/\(run)"]
        return try MultiRankTests.execute(command + args, timeout: timeout)
    }

    /// A worker count far above the batch is refused at once: checked before any thread starts,
    /// where starting 100,000 threads first once took minutes and printed nothing.
    func testAWorkerCountAboveTheBatchIsRefusedBeforeThreadsStart() throws {
        let run = try train("many", ["--set", "training.workers=100000"], timeout: 20)
        XCTAssertEqual(run.status, 2, "ended in \(run.seconds) s: \(run.errors)")
        XCTAssertLessThan(run.seconds, 20)
        XCTAssertTrue(run.errors.contains(
            "training.workers = 100000: more replicas than the 8 rows of the global batch (training.batch_size) on 1 rank(s)"),
                      run.errors)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/many"), "nothing written")
    }

    func metrics(_ run: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: "\(dir)/\(run)/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    func finalWeights(_ run: String) throws -> [Float] {
        let file = try Checkpoint.resolve("\(dir)/\(run)").weights
        return try file.tensors.keys.sorted().flatMap { try file.tensor($0, in: run).floats() }
    }

    /// The mixes of ranks and workers each test compares with one worker.
    static let mixes: [(ranks: Int, workers: Int)] = [(1, 2), (1, 4), (2, 2)]

    /// Trains `config` with `sets` on one worker and on each mix; the per-step losses, the last
    /// validation loss and the final weights must agree within 1e-5 relative.
    func assertMixesLearnWhatOneWorkerLearns(_ name: String, config: String, _ sets: [String]) throws {
        let reference = "\(name)-1x1"
        let one = try train(reference, (sets + ["training.workers=1"]).flatMap { ["--set", $0] }, config: config)
        XCTAssertEqual(one.status, 0, "\(name): \(one.errors)")
        let expected = try metrics(reference), weights = try finalWeights(reference)
        XCTAssertEqual(expected.count, 20, name)
        XCTAssertTrue(expected.allSatisfy { $0["world_size"] as? Int == 1 && $0["workers"] as? Int == 1 }, name)
        // Below the first loss at some step (a KL term warming up may raise it again later).
        XCTAssertLessThan(expected.map { $0["loss"] as! Double }.min()!, expected.first!["loss"] as! Double, "\(name): the run learned something")
        for (ranks, workers) in Self.mixes {
            let run = "\(name)-\(ranks)x\(workers)"
            let result = try train(run, (sets + ["training.workers=\(workers)"]).flatMap { ["--set", $0] }, ranks: ranks, config: config)
            XCTAssertEqual(result.status, 0, "\(run): \(result.errors)")
            XCTAssertTrue(result.output.hasPrefix("seqtrain: \(ranks) rank\(ranks == 1 ? "" : "s") × \(workers) workers per rank, 1 BLAS thread per worker"),
                          "\(run): the first line names ranks, workers and BLAS threads: \(result.output.prefix(200))")
            let lines = try metrics(run)
            XCTAssertEqual(lines.count, 20, run)
            XCTAssertTrue(lines.allSatisfy { $0["world_size"] as? Int == ranks * workers && $0["workers"] as? Int == workers },
                          "\(run): the run had \(ranks) rank(s) × \(workers) workers")
            for (step, (a, b)) in zip(expected, lines).enumerated() {
                let x = a["loss"] as! Double, y = b["loss"] as! Double
                XCTAssertEqual(x, y, accuracy: 1e-5 * abs(x), "\(run), step \(step + 1)")
            }
            if let x = expected.last?["val_loss"] as? Double {
                XCTAssertEqual(x, lines.last?["val_loss"] as? Double ?? .nan, accuracy: 1e-5 * abs(x), "\(run): validation loss")
            }
            assertClose(try finalWeights(run), weights, "\(run): final parameters", absolute: 1e-5, relative: 1e-5)
            let metadata = try Checkpoint.resolve("\(dir)/\(run)").weights.metadata
            XCTAssertEqual(metadata["seqtrain.world_size"], "\(ranks * workers)")
            XCTAssertEqual(metadata["seqtrain.workers"], "\(workers)")
        }
    }

    func testWorkersAndRanksLearnWhatOneWorkerLearnsTheCharLM() throws {
        // Dropout on (the small run's 0.3); shuffled windows with SGD, whose steps show a wrong
        // gradient normalization.
        try assertMixesLearnWhatOneWorkerLearns("stateful", config: "\(dir)/config.toml", ["training.stateful=true"])
        try assertMixesLearnWhatOneWorkerLearns("shuffled", config: "\(dir)/config.toml",
                                                ["training.stateful=false", "optimizer.kind=sgd", "optimizer.lr=0.5", "optimizer.momentum=0.9"])
        try assertMixesLearnWhatOneWorkerLearns("stack", config: "\(dir)/config.toml", [
            "training.stateful=true",
            "model.layers=[{type = \"gru\", hidden = 10}, {type = \"dropout\", p = 0.2}, "
                + "{type = \"lstm\", hidden = 6}]",
        ])
    }

    func testWorkersAndRanksLearnWhatOneWorkerLearnsTheClassifiers() throws {
        // Value clipping and RMSprop on top: both update by parameter slices on the workers.
        let extra = ["gru-variable": ["training.clip_value=0.05"], "mlp": ["optimizer.kind=rmsprop"]]
        for (name, config, sets) in try ClassifierCases.write(in: dir) {
            try assertMixesLearnWhatOneWorkerLearns(name, config: config, sets + extra[name, default: []])
        }
    }

    func testWorkersAndRanksLearnWhatOneWorkerLearnsTheSequenceKinds() throws {
        for (name, config, sets) in try SequenceKindCases.write(in: dir) {
            try assertMixesLearnWhatOneWorkerLearns(name, config: config, sets)
        }
    }

    func testWorkersAndRanksLearnWhatOneWorkerLearnsTheTaggers() throws {
        for (name, config, sets) in try TaggerCases.write(in: dir) {
            try assertMixesLearnWhatOneWorkerLearns(name, config: config, sets)
        }
    }

    /// Every tagger case killed after its checkpoint at step 10 (worker 1 ends the process at step
    /// 15) and resumed on 2 workers ends as the uninterrupted run, bit for bit: losses and weights.
    func testTaggersResumeBitForBit() throws {
        for (name, config, sets) in try TaggerCases.write(in: dir) { try assertResumesBitForBit(name, config, sets) }
    }

    /// Every sequence kind killed after its checkpoint at step 10 (worker 1 ends the process at
    /// step 15) and resumed ends as the uninterrupted run, bit for bit: losses and weights.
    func testSequenceKindsResumeBitForBit() throws {
        for (name, config, sets) in try SequenceKindCases.write(in: dir) {
            try assertResumesBitForBit(name, config, sets)
        }
    }

    func assertResumesBitForBit(_ name: String, _ config: String, _ sets: [String]) throws {
        let common = (sets + ["training.workers=2"]).flatMap { ["--set", $0] }
        let whole = try train("\(name)-whole", common, config: config)
        XCTAssertEqual(whole.status, 0, "\(name): \(whole.errors)")
        let killed = try train("\(name)-killed", common + ["--test-fail-at", "1:15:exit"], config: config)
        XCTAssertEqual(killed.status, 3, "\(name): \(killed.errors)")
        let resumed = try train("\(name)-killed", common + ["--resume"], config: config)
        XCTAssertEqual(resumed.status, 0, "\(name): \(resumed.errors)")
        let checkpoint = "\(dir)/\(name)-killed/checkpoints/step-00000010.safetensors"
        XCTAssertTrue(resumed.output.contains("resumed from \(checkpoint) at step 10 of 20"), resumed.output)
        XCTAssertEqual(try metrics("\(name)-killed").map { $0["loss"] as! Double },
                       try metrics("\(name)-whole").map { $0["loss"] as! Double }, name)
        XCTAssertEqual(try finalWeights("\(name)-killed"), try finalWeights("\(name)-whole"),
                       "\(name): final weights bit for bit")
    }

    /// Killed with checkpoints at 10 and 20, resumed: with the same workers the run ends bit for
    /// bit as the uninterrupted one; with another count within 1e-5, and the first lines say so.
    func testKilledWorkerRunResumesBitForBitAndOnAnotherCountWithinTolerance() throws {
        let sets = ["--set", "training.max_steps=30", "--set", "checkpoint.interval=10", "--set", "training.workers=2"]
        let whole = try train("whole", sets)
        XCTAssertEqual(whole.status, 0, whole.errors)
        let reference = try metrics("whole").map { $0["loss"] as! Double }, weights = try finalWeights("whole")
        for (run, workers) in [("same", 2), ("other", 1), ("more", 4)] {
            // Worker 1 ends the process at step 25 (exit status 3), after the checkpoint of step 20.
            let killed = try train(run, sets + ["--test-fail-at", "1:25:exit"])
            XCTAssertEqual(killed.status, 3, killed.errors)
            let resumed = try train(run, sets + ["--resume", "--set", "training.workers=\(workers)"])
            XCTAssertEqual(resumed.status, 0, resumed.errors)
            let note = "resumed from \(dir)/\(run)/checkpoints/step-00000020.safetensors at step 20 of 30"
            XCTAssertTrue(resumed.output.contains(workers == 2 ? note + "\n" : note + " (written by 1 rank(s) × 2 workers, continued on "
                                                  + (workers == 1 ? "1 rank(s))" : "1 rank(s) × 4 workers)")), resumed.output)
            let losses = try metrics(run).map { $0["loss"] as! Double }
            XCTAssertEqual(losses.count, 30)
            if workers == 2 {
                XCTAssertEqual(losses, reference, "same workers: bit for bit")
                XCTAssertEqual(try finalWeights(run), weights)
            } else {
                for (step, (a, b)) in zip(reference, losses).enumerated() {
                    XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a), "\(workers) workers, step \(step + 1)")
                }
                assertClose(try finalWeights(run), weights, "\(workers) workers: final parameters", absolute: 1e-5, relative: 1e-5)
            }
        }
    }

    /// A worker that raises ends the process with its error; the other worker stops at its next
    /// collective, nothing is left half-written and the last checkpoint loads.
    func testAFailingWorkerEndsTheRunCleanly() throws {
        let run = "failing"
        let result = try train(run, ["--set", "training.workers=2", "--set", "checkpoint.interval=2", "--test-fail-at", "1:5:raise"], timeout: 60)
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.errors.contains("error: test hook: worker 1 fails at step 5"), result.errors)
        XCTAssertFalse(result.errors.contains("stopped"), "the other worker adds no error of its own: \(result.errors)")
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/\(run)/checkpoints").sorted()
        XCTAssertEqual(files, ["step-00000002.manifest.json", "step-00000002.safetensors", "step-00000002.state.safetensors",
                               "step-00000004.manifest.json", "step-00000004.safetensors", "step-00000004.state.safetensors"])
        XCTAssertEqual(try LoadedCharLM(path: "\(dir)/\(run)").metadata["seqtrain.step"], "4")
    }

    /// A worker that hangs is named by the watchdog, which ends the process.
    func testTheWatchdogNamesTheWorkerThatDidNotArrive() throws {
        let result = try train("hang", ["--set", "training.workers=2", "--set", "training.collective_timeout_s=3", "--test-fail-at", "1:3:hang"], timeout: 60)
        XCTAssertEqual(result.status, 4, result.errors)
        XCTAssertLessThan(result.seconds, 30)
        XCTAssertTrue(result.errors.contains("worker 0: a sum of floats waited more than 3 s for the other workers (training.collective_timeout_s); workers that did not reach step 3: worker 1"), result.errors)
    }

    /// With no flags the run uses every CPU the process may use, as far as the batch allows, and
    /// its first lines and config.toml say how many.
    func testTheDefaultRunUsesEveryUsableCPU() throws {
        let usable = CPUBudget.current(environment: [:]).usable
        let expected = (1...max(usable, 1)).last { 8 % $0 == 0 } ?? 1
        let result = try train("default", [])
        XCTAssertEqual(result.status, 0, result.errors)
        let first = result.output.split(separator: "\n").first.map(String.init) ?? ""
        XCTAssertTrue(first.hasPrefix("seqtrain: 1 rank × \(expected) worker\(expected == 1 ? "" : "s") per rank, 1 BLAS thread per worker (training.workers = \"auto\": \(usable) usable CPU"), first)
        XCTAssertTrue(try metrics("default").allSatisfy { $0["workers"] as? Int == expected })
        let header = try String(contentsOfFile: "\(dir)/default/config.toml", encoding: .utf8)
        XCTAssertTrue(header.contains("# seqtrain: 1 rank × \(expected) worker"), header)
        // A batch the workers cannot share evenly gets the most workers that divide it.
        let odd = try train("odd", ["--set", "training.batch_size=3"])
        XCTAssertEqual(odd.status, 0, odd.errors)
        XCTAssertTrue(try metrics("odd").allSatisfy { $0["workers"] as? Int == (usable >= 3 ? 3 : 1) })
        // A count that does not divide the batch is refused, naming the key.
        let refused = try train("refused", ["--set", "training.workers=3"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.errors.contains("training.batch_size = 8 does not divide among 3 replicas (ranks × training.workers)"), refused.errors)
    }
}
