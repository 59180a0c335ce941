import Foundation
import XCTest
import SeqTrainKit

/// Runs of the real `seqtrain` binary under `mpirun`. Each test asserts the world size it needs:
/// a world of one would make every sharding check pass without proving anything.
final class MultiRankTests: XCTestCase {
    struct Run {
        let status: Int32
        let output: String
        let errors: String
        let seconds: Double
    }

    /// The seqtrain executable built beside this test bundle.
    static var binary: String {
        Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("seqtrain").path
    }

    /// Runs `command` with a deadline; a run that outlives it is killed and fails the test.
    static func execute(_ command: [String], timeout: Double = 120, environment extra: [String: String] = [:]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        for (k, v) in extra { environment[k] = v }
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let start = Date()
        try process.run()
        final class Collected: @unchecked Sendable { var data = Data() }
        let output = Collected(), errors = Collected()
        let group = DispatchGroup()
        for (pipe, sink) in [(out, output), (err, errors)] {
            group.enter()
            DispatchQueue.global().async { sink.data = pipe.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        }
        while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            kill(-process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        group.wait()
        return Run(status: process.terminationStatus, output: String(decoding: output.data, as: UTF8.self),
                   errors: String(decoding: errors.data, as: UTF8.self), seconds: Date().timeIntervalSince(start))
    }

    static func mpirunPrefix(_ ranks: Int, _ extra: [String] = []) -> [String] {
        var command = ["mpirun", "-n", "\(ranks)", "-x", "OPENBLAS_NUM_THREADS=1"]
        if ranks > ProcessInfo.processInfo.activeProcessorCount { command += ["--oversubscribe", "--bind-to", "none"] }
        if getuid() == 0 { command.append("--allow-run-as-root") }
        return command + extra
    }

    /// `mpirun -n ranks seqtrain train config args…`.
    static func train(ranks: Int, _ config: String, _ args: [String], timeout: Double = 120) throws -> Run {
        try execute(mpirunPrefix(ranks) + [binary, "train", config, "--quiet"] + args, timeout: timeout)
    }

    /// corpus.txt and config.toml in `dir`: a 20-step char LM with dropout, validation at 10 and 20,
    /// a metrics line per step; shared by the multi-rank and Slurm tests.
    static func writeSmallRun(in dir: String, name: String, checkpointInterval: Int) throws {
        try TrainingTests.grammarText(sentences: 300, seed: 5).write(toFile: "\(dir)/corpus.txt", atomically: true, encoding: .utf8)
        try """
            [job]
            name = "\(name)"
            seed = 11
            [data]
            paths = ["\(dir)/corpus.txt"]
            validation_fraction = 0.1
            [model]
            embedding = 12
            hidden = 24
            layers = 2
            dropout = 0.3
            [training]
            batch_size = 8
            seq_len = 16
            max_steps = 20
            eval_every = 10
            [optimizer]
            lr = 0.005
            [checkpoint]
            keep_best = false
            interval = \(checkpointInterval)
            [metrics]
            log_every = 1
            """.write(toFile: "\(dir)/config.toml", atomically: true, encoding: .utf8)
    }

    var dir = ""

    override func setUpWithError() throws {
        let which = try Self.execute(["sh", "-c", "command -v mpirun"])
        guard which.status == 0 else {
            XCTFail("mpirun is not installed: run the tests through ./launch/test, which installs Open MPI")
            throw SeqTrainError("no mpirun")
        }
        dir = try temporaryDirectory()
        try Self.writeSmallRun(in: dir, name: "invariance", checkpointInterval: 0)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func metrics(_ runDirectory: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: "\(runDirectory)/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    func testRankCountDoesNotChangeWhatIsLearned() throws {
        // The last run carries the state of a stack's recurrent entries of different widths.
        let stack = ["--set", "model.layers=[{type = \"lstm\", hidden = 12}, {type = \"gru\", hidden = 8, layers = 2, "
                        + "dropout = 0.2}, {type = \"dense\", units = 10, activation = \"relu\"}]"]
        for (stateful, model) in [(true, [String]()), (false, []), (true, stack)] {
            var losses: [Int: [Double]] = [:], weights: [Int: [Float]] = [:]
            for ranks in [1, 2, 4] {
                let run = "\(dir)/run-\(stateful)-\(model.count)-\(ranks)"
                // Shuffled runs use SGD, whose steps scale with the gradient: a wrong normalization shows.
                let optimizer = stateful ? [] : ["--set", "optimizer.kind=sgd", "--set", "optimizer.lr=0.5", "--set", "optimizer.momentum=0.9"]
                let result = try Self.train(ranks: ranks, "\(dir)/config.toml",
                                            ["--set", "job.run_dir=\(run)", "--set", "training.stateful=\(stateful)"]
                                                + optimizer + model)
                XCTAssertEqual(result.status, 0, result.errors)
                let lines = try metrics(run)
                XCTAssertEqual(lines.count, 20)
                XCTAssertTrue(lines.allSatisfy { $0["world_size"] as? Int == ranks }, "the run had world size \(ranks)")
                losses[ranks] = lines.map { $0["loss"] as! Double }
                let checkpoint = try LoadedCharLM(path: run)
                XCTAssertEqual(checkpoint.metadata["seqtrain.world_size"], "\(ranks)")
                weights[ranks] = checkpoint.model.parameters.values.array
            }
            for ranks in [2, 4] {
                for (step, (a, b)) in zip(losses[1]!, losses[ranks]!).enumerated() {
                    XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a), "stateful \(stateful), \(ranks) ranks, step \(step + 1)")
                }
                assertClose(weights[ranks]!, weights[1]!, "stateful \(stateful): final parameters with \(ranks) ranks", absolute: 1e-5, relative: 1e-5)
            }
            XCTAssertLessThan(losses[1]!.last!, losses[1]!.first!, "the runs learned something")
        }
    }

    /// Classifier kinds: a shuffled multi-label LSTM run with dropout and SGD momentum (whose steps
    /// show a wrong gradient normalization), a variable-length (trailing NaN) GRU run with a short
    /// last batch, and a single-label MLP with the balanced sampler: the same per-step losses and
    /// final parameters on 1, 2 and 4 ranks.
    func testRankCountDoesNotChangeWhatClassifiersLearn() throws {
        for (name, config, sets) in try ClassifierCases.write(in: dir) { try assertRankCountDoesNotChangeWhatIsLearned(name, config: config, sets) }
    }

    /// Sequence taggers (class ids over a conv1d + bidirectional GRU with dropout, 0/1 labels with
    /// SGD momentum, L1 regression), all of variable lengths: the same per-step losses and final
    /// parameters on 1, 2 and 4 ranks, whose shares hold different counts of valid steps.
    func testRankCountDoesNotChangeWhatTaggersLearn() throws {
        for (name, config, sets) in try TaggerCases.write(in: dir) {
            try assertRankCountDoesNotChangeWhatIsLearned(name, config: config, sets)
        }
    }

    /// Trains `config` with `sets` for 20 steps on 1, 2 and 4 ranks (one worker each): the same
    /// per-step losses, last validation loss and final parameters, within 1e-5 relative.
    func assertRankCountDoesNotChangeWhatIsLearned(_ name: String, config: String, _ sets: [String]) throws {
        var losses: [Int: [Double]] = [:], weights: [Int: [Float]] = [:], validation: [Int: Double] = [:]
        for ranks in [1, 2, 4] {
            let run = "\(dir)/\(name)-\(ranks)"
            let result = try Self.train(ranks: ranks, config, (sets + ["job.run_dir=\(run)", "training.workers=1"]).flatMap { ["--set", $0] })
            XCTAssertEqual(result.status, 0, "\(name): \(result.errors)")
            let lines = try metrics(run)
            XCTAssertEqual(lines.count, 20, name)
            XCTAssertTrue(lines.allSatisfy { $0["world_size"] as? Int == ranks }, "\(name): the run had world size \(ranks)")
            losses[ranks] = lines.map { $0["loss"] as! Double }
            validation[ranks] = lines.last?["val_loss"] as? Double
            let file = try Checkpoint.resolve(run).weights
            weights[ranks] = try file.tensors.keys.sorted().flatMap { try file.tensor($0, in: run).floats() }
        }
        for ranks in [2, 4] {
            for (step, (a, b)) in zip(losses[1]!, losses[ranks]!).enumerated() {
                XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a), "\(name), \(ranks) ranks, step \(step + 1)")
            }
            XCTAssertEqual(validation[1]!, validation[ranks]!, accuracy: 1e-5 * abs(validation[1]!), "\(name), \(ranks) ranks: validation loss")
            assertClose(weights[ranks]!, weights[1]!, "\(name): final parameters with \(ranks) ranks", absolute: 1e-5, relative: 1e-5)
        }
    }

    /// The sequence kinds (autoencoder, seq2seq with scheduled sampling and a variational latent,
    /// forecaster on windows and on stateful lanes): the same per-step losses, validation loss and
    /// final parameters on 1, 2 and 4 ranks.
    func testRankCountDoesNotChangeWhatSequenceKindsLearn() throws {
        for (name, config, sets) in try SequenceKindCases.write(in: dir) { try assertRankCountDoesNotChangeWhatIsLearned(name, config: config, sets) }
    }

    func testEachRankSeesExactlyItsLanesContinuingAcrossBatches() throws {
        // Character i of the corpus is U+4E00 + i, so ids are positions.
        let lanes = 4, laneLength = 30, steps = 5
        var scalars = String.UnicodeScalarView()
        for i in 0..<(lanes * laneLength + 1) { scalars.append(Unicode.Scalar(0x4E00 + i)!) }
        try String(scalars).write(toFile: "\(dir)/positions.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: "\(dir)/trace", withIntermediateDirectories: true)
        let result = try Self.train(ranks: 2, "\(dir)/config.toml", [
            "--set", "job.run_dir=\(dir)/lanes", "--set", "data.paths=\(dir)/positions.txt", "--set", "data.validation_fraction=0",
            "--set", "training.batch_size=\(lanes)", "--set", "training.seq_len=\(steps)", "--set", "training.max_steps=12",
            "--set", "training.epochs=2",
            "--test-trace-dir", "\(dir)/trace"])
        XCTAssertEqual(result.status, 0, result.errors)
        for rank in 0..<2 {
            let lines = try String(contentsOfFile: "\(dir)/trace/trace-rank\(rank).txt", encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, 12 * 2, "rank \(rank): two lanes per step")
            for line in lines {
                let f = line.split(separator: " ").map { Int($0)! }
                let (step, lane, first, last) = (f[0], f[1], f[2], f[3])
                XCTAssertEqual(lane / 2, rank, "lane \(lane) belongs to rank \(lane / 2)")
                let batch = step % (laneLength / steps)   // two epochs of six batches
                XCTAssertEqual(first, lane * laneLength + batch * steps, "rank \(rank) step \(step) lane \(lane)")
                XCTAssertEqual(last, first + steps - 1)
            }
        }
    }

    func testAFailingRankEndsTheJobAndTheLastCheckpointLoads() throws {
        for mode in ["raise", "exit"] {
            let run = "\(dir)/fail-\(mode)"
            let result = try Self.train(ranks: 2, "\(dir)/config.toml", [
                "--set", "job.run_dir=\(run)", "--set", "checkpoint.interval=2", "--test-fail-at", "1:5:\(mode)"], timeout: 90)
            XCTAssertNotEqual(result.status, 0, "mode \(mode)")
            XCTAssertLessThan(result.seconds, 60, "mode \(mode): the job ended in bounded time")
            if mode == "raise" { XCTAssertTrue(result.errors.contains("rank 1: test hook: rank 1 fails at step 5"), result.errors) }
            let files = try FileManager.default.contentsOfDirectory(atPath: "\(run)/checkpoints").sorted()
            XCTAssertEqual(files, ["step-00000002.manifest.json", "step-00000002.safetensors", "step-00000002.state.safetensors",
                                   "step-00000004.manifest.json", "step-00000004.safetensors", "step-00000004.state.safetensors"],
                           "mode \(mode): nothing half-written")
            let loaded = try LoadedCharLM(path: run)
            XCTAssertEqual(loaded.metadata["seqtrain.step"], "4")
        }
    }

    func testTheWatchdogNamesTheRankThatDidNotArrive() throws {
        let result = try Self.train(ranks: 2, "\(dir)/config.toml", [
            "--set", "job.run_dir=\(dir)/hang", "--set", "training.collective_timeout_s=3", "--test-fail-at", "1:3:hang"], timeout: 60)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertLessThan(result.seconds, 30)
        XCTAssertTrue(result.errors.contains("ranks that did not reach step 3: 1"), result.errors)
    }

    func testMismatchedConfigsAcrossRanksAreRefusedNamingTheRank() throws {
        let common = [Self.binary, "train", "\(dir)/config.toml", "--quiet", "--set", "job.run_dir=\(dir)/mismatch"]
        var command = Self.mpirunPrefix(1) + common + [":", "-n", "1", "-x", "OPENBLAS_NUM_THREADS=1"] + common
        command += ["--set", "model.hidden=16"]
        let result = try Self.execute(command, timeout: 60)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.errors.contains("rank 1: its configuration differs from rank 0's: model.hidden = 16 here, 24 on rank 0"), result.errors)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/mismatch/metrics.jsonl"))
    }

    /// mpirun gives the ranks a pseudo-terminal even when its own output goes to a pipe or a file:
    /// the default progress must still be plain lines there.
    func testProgressUnderMpirunIsPlainLinesInTheLog() throws {
        let command = Self.mpirunPrefix(2) + [Self.binary, "train", "\(dir)/config.toml", "--set", "metrics.log_every=5"]
        // As from a user's terminal: TERM names one that draws bars.
        let plain = try Self.execute(command + ["--set", "job.run_dir=\(dir)/plain"], environment: ["TERM": "xterm-256color"])
        XCTAssertEqual(plain.status, 0, plain.errors)
        XCTAssertTrue(plain.output.contains("\nstep 5/20  loss "), plain.output)
        XCTAssertTrue(plain.output.contains("done: 20 steps"), plain.output)
        let control = plain.output.unicodeScalars.first { $0.value < 0x20 && $0 != "\n" || $0.value == 0x7F }
        XCTAssertNil(control, "control character \(control.map { String(format: "0x%02X", $0.value) } ?? "") in \(plain.output.debugDescription)")
        // Asked for, the bar is drawn (the check above is not blind to it).
        let bar = try Self.execute(command + ["--set", "job.run_dir=\(dir)/bar", "--progress", "bar"])
        XCTAssertEqual(bar.status, 0, bar.errors)
        XCTAssertTrue(bar.output.contains("\r\u{1B}[2K["), bar.output.debugDescription)
        let quiet = try Self.execute(command + ["--set", "job.run_dir=\(dir)/quiet", "--progress", "none"])
        XCTAssertEqual(quiet.status, 0, quiet.errors)
        XCTAssertEqual(quiet.output, "")
    }

    /// metrics.timeline: a Chrome trace per rank with each phase of every step, back to back.
    func testTimelineHoldsEveryPhaseOfEveryStepOnEveryRank() throws {
        let run = "\(dir)/timeline"
        let result = try Self.train(ranks: 2, "\(dir)/config.toml", ["--set", "job.run_dir=\(run)", "--set", "metrics.timeline=true"])
        XCTAssertEqual(result.status, 0, result.errors)
        for rank in 0..<2 {
            var text = try String(contentsOfFile: "\(run)/timeline-rank-\(rank).json", encoding: .utf8)
            // The JSON array format lets the closing bracket be missing: close it to parse.
            XCTAssertTrue(text.hasSuffix("},\n"))
            text = String(text.dropLast(2)) + "]"
            let events = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
            XCTAssertEqual(events.first?["ph"] as? String, "M")
            XCTAssertEqual((events.first?["args"] as? [String: Any])?["name"] as? String, "rank \(rank)")
            let phases = events.dropFirst()
            XCTAssertTrue(phases.allSatisfy { $0["pid"] as? Int == rank && $0["ph"] as? String == "X" && ($0["dur"] as? Double ?? -1) >= 0 })
            for step in 1...20 {
                let mine = phases.filter { ($0["args"] as? [String: Any])?["step"] as? Int == step }
                var expected = ["data", "forward", "backward", "allreduce_wait", "loss_totals", "optimizer"]
                if step % 10 == 0 { expected.append("validation") }
                expected.append("metrics")
                if step == 20 { expected.append("checkpoint") }
                XCTAssertEqual(mine.map { $0["name"] as? String ?? "" }, expected, "rank \(rank) step \(step)")
                for (a, b) in zip(mine, mine.dropFirst()) {
                    let end = (a["ts"] as? Double ?? 0) + (a["dur"] as? Double ?? 0)
                    XCTAssertEqual(b["ts"] as? Double ?? 0, end, accuracy: 2, "phases follow each other (rank \(rank), step \(step))")
                }
            }
        }
    }

    /// `seqtrain debug -n 2`: a healthy config gets the verdict that the ranks agree; a parameter
    /// drift planted on one rank is named (step, rank, tensor); a rank that calls another collective
    /// is named with both sides, in bounded time instead of a hang.
    func testDebugModeNamesDivergenceAndCollectiveMismatches() throws {
        func debug(_ extra: [String]) throws -> Run {
            try Self.execute([Self.binary, "debug", "\(dir)/config.toml", "-n", "2", "--steps", "6"] + extra, timeout: 90)
        }
        let healthy = try debug([])
        XCTAssertEqual(healthy.status, 0, healthy.errors)
        XCTAssertTrue(healthy.output.contains("verdict: the 2 ranks agree: 6 steps"), healthy.output)
        XCTAssertTrue(healthy.output.contains("rank 1: step 6: data "), healthy.output)
        XCTAssertTrue(healthy.output.contains("fingerprint") && healthy.output.contains("; parameters agree with rank 0"), healthy.output)

        let drift = try debug(["--test-fail-at", "1:3:diverge"])
        XCTAssertEqual(drift.status, 2)
        XCTAssertTrue(drift.output.contains("verdict: the ranks do not agree"), drift.output)
        XCTAssertTrue(drift.output.contains("step 4: rank 1's parameters differ from rank 0's, first in head.bias"), drift.output)

        let mismatch = try debug(["--test-fail-at", "1:2:extra-collective"])
        XCTAssertEqual(mismatch.status, 2)
        XCTAssertLessThan(mismatch.seconds, 60)
        XCTAssertTrue(mismatch.output.contains("collective mismatch: rank 0 called all-reduce of doubles of 7 element(s) as collective #"), mismatch.output)
        XCTAssertTrue(mismatch.output.contains("rank 1 called broadcast of 8 element(s)"), mismatch.output)

        // A NaN weight in rank 1's second LSTM layer: rank 1 names that layer's output, the first
        // non-finite one of its forward pass; rank 0 the first gradient of the backward pass.
        let poisoned = try debug(["--test-fail-at", "1:2:nan-weight"])
        XCTAssertEqual(poisoned.status, 2)
        XCTAssertTrue(poisoned.output.contains("rank 1: step 3: the lstm layer 1 output holds"), poisoned.output)
        XCTAssertTrue(poisoned.output.contains("the first layer of the forward pass to do so"), poisoned.output)
    }

    /// The launch line users type first, `mpirun -n 2 seqtrain` (and with --help): the usage once,
    /// from rank 0, where every rank used to print it. Each rank first says its place in the world.
    func testHelpUnderMpirunIsPrintedOnce() throws {
        for args in [[], ["--help"]] {
            let script = "echo \"rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE\" >&2; exec \"$0\" \"$@\""
            let result = try Self.execute(Self.mpirunPrefix(2) + ["sh", "-c", script, Self.binary] + args, timeout: 60)
            XCTAssertEqual(result.status, 0, "\(args): \(result.errors)")
            XCTAssertTrue(result.errors.contains("rank 0 of 2") && result.errors.contains("rank 1 of 2"),
                          "\(args): the job had world size 2: \(result.errors)")
            let usage = (result.output + result.errors).components(separatedBy: "USAGE:").count - 1
            XCTAssertEqual(usage, 1, "\(args): \(result.output)")
        }
    }

    func testABatchThatDoesNotDivideAmongTheRanksIsRefused() throws {
        let result = try Self.train(ranks: 2, "\(dir)/config.toml", ["--set", "job.run_dir=\(dir)/odd", "--set", "training.batch_size=5"], timeout: 60)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.errors.contains("training.batch_size = 5 does not divide among 2 replicas (ranks × training.workers)"), result.errors)
    }

    /// Two ranks on two test hosts (network namespaces joined by a veth pair), TCP forced and shared
    /// memory off, learn what one process learns.
    func testTwoHostsOverTCPLearnWhatOneProcessLearns() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let hosts = "\(root)/launch/test-hosts"
        let up = try Self.execute([hosts, "up", "\(dir)/hosts"], timeout: 30)
        guard up.status == 0 else {
            print("skipping the two-host test: network namespaces cannot be made here: \(up.errors)")
            throw XCTSkip("network namespaces cannot be made here: \(up.errors)")
        }
        defer { _ = try? Self.execute([hosts, "down"], timeout: 30) }
        let args = ["--set", "training.stateful=true"]
        let single = try Self.train(ranks: 1, "\(dir)/config.toml", args + ["--set", "job.run_dir=\(dir)/one-host"])
        XCTAssertEqual(single.status, 0, single.errors)
        var command = ["ip", "netns", "exec", "seqtrain-a", "mpirun", "--hostfile", "\(dir)/hosts/hostfile", "-n", "2",
                       "--mca", "plm_rsh_agent", "\(dir)/hosts/agent", "--mca", "pml", "ob1", "--mca", "btl", "tcp,self",
                       "--mca", "btl_tcp_if_include", "10.99.0.0/24", "--mca", "oob_tcp_if_include", "10.99.0.0/24",
                       "-x", "OPENBLAS_NUM_THREADS=1"]
        if getuid() == 0 { command.append("--allow-run-as-root") }
        command += [Self.binary, "train", "\(dir)/config.toml", "--quiet"] + args + ["--set", "job.run_dir=\(dir)/two-hosts",
                    "--test-trace-dir", "\(dir)/hosts"]
        let result = try Self.execute(command, timeout: 120)
        XCTAssertEqual(result.status, 0, result.errors)
        let lines = try metrics("\(dir)/two-hosts"), reference = try metrics("\(dir)/one-host")
        XCTAssertTrue(lines.allSatisfy { $0["world_size"] as? Int == 2 }, "the run had world size 2")
        for (a, b) in zip(reference, lines) {
            let x = a["loss"] as! Double, y = b["loss"] as! Double
            XCTAssertEqual(x, y, accuracy: 1e-5 * abs(x), "step \(a["step"]!)")
        }
        assertClose(try LoadedCharLM(path: "\(dir)/two-hosts").model.parameters.values.array,
                    try LoadedCharLM(path: "\(dir)/one-host").model.parameters.values.array, "final parameters", absolute: 1e-5, relative: 1e-5)
        // Open MPI started the second host's daemon through the agent, inside host b's namespace.
        let started = try String(contentsOfFile: "\(dir)/hosts/agent.log", encoding: .utf8)
        XCTAssertEqual(started.split(separator: "\n"), ["seqtrain-b"])
        for rank in 0..<2 { XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/hosts/trace-rank\(rank).txt")) }
    }
}
