import Foundation
import XCTest
import SeqTrainKit

/// What a signal does to `seqtrain train` (the real binary in a child process): SIGINT, SIGTERM
/// and SIGHUP finish the step on every replica, write a checkpoint there and exit 128 + the
/// signal, and `--resume` ends exactly as the uninterrupted run; a second signal exits at once;
/// SIGQUIT exits at once without a backtrace. And `checkpoint.every_seconds`, on rank 0's clock.
final class SignalTests: XCTestCase {
    var dir = ""
    var binary: String { MultiRankTests.binary }
    static let steps = 60

    override func setUpWithError() throws {
        dir = try temporaryDirectory()
        let corpus = TrainingTests.grammarText(sentences: 300, seed: 3)
        try corpus.write(toFile: "\(dir)/corpus.txt", atomically: true, encoding: .utf8)
        // checkpoint.interval far beyond the run: a checkpoint before the end is the signal's.
        try """
            [job]
            name = "signals"
            seed = 7
            [data]
            paths = ["\(dir)/corpus.txt"]
            validation_fraction = 0.1
            [model]
            embedding = 12
            hidden = 24
            layers = 2
            dropout = 0.2
            [training]
            batch_size = 8
            seq_len = 16
            epochs = 50
            max_steps = \(Self.steps)
            eval_every = 20
            [checkpoint]
            keep_best = false
            interval = 100000
            keep_last = 100
            [metrics]
            log_every = 1
            """.write(toFile: "\(dir)/config.toml", atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func command(_ run: String, _ args: [String] = [], ranks: Int = 1, mpirun extra: [String] = [],
                 progress: String = "lines") -> [String] {
        (ranks > 1 ? MultiRankTests.mpirunPrefix(ranks, extra) : [])
            + [binary, "train", "\(dir)/config.toml", "--progress", progress, "--set", "job.run_dir=\(dir)/\(run)"]
            + args
    }

    func train(_ run: String, _ args: [String] = [], ranks: Int = 1) throws -> MultiRankTests.Run {
        try MultiRankTests.execute(command(run, args, ranks: ranks))
    }

    func metricsLines(_ run: String) -> [String] {
        let text = (try? String(contentsOfFile: "\(dir)/\(run)/metrics.jsonl", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    func metrics(_ run: String) throws -> [[String: Any]] {
        try metricsLines(run).map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    /// Every logged step's loss, and the final weights: what a resumed run must reproduce bit for bit.
    func outcome(_ run: String) throws -> (losses: [Int: Double], weights: [Float]) {
        var losses: [Int: Double] = [:]
        for line in try metrics(run) {
            let step = try XCTUnwrap(line["step"] as? Int), loss = try XCTUnwrap(line["loss"] as? Double)
            XCTAssertNil(losses[step], "\(run): step \(step) logged twice")
            losses[step] = loss
        }
        return (losses, try LoadedCharLM(path: "\(dir)/\(run)").model.parameters.values.array)
    }

    /// The steps of the run's complete checkpoints.
    func checkpointSteps(_ run: String) -> [Int] {
        Checkpoint.list("\(dir)/\(run)").compactMap { path in
            Int(URL(fileURLWithPath: path).lastPathComponent.dropFirst("step-".count).prefix(8))
        }
    }

    /// Where to send the signals: the process started, or (under mpirun) one of its ranks only.
    enum Target { case process, oneRank }

    /// Starts `command`, waits until RUN/metrics.jsonl holds `logged` lines, sends `signals` back
    /// to back and waits (at most `timeout` seconds) for the process to end.
    func interrupt(_ command: [String], run: String, afterLogging logged: Int = 5, with signals: [Int32],
                   target: Target = .process, timeout: Double = 120) throws -> MultiRankTests.Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        final class Collected: @unchecked Sendable { var data = Data() }
        let output = Collected(), errors = Collected()
        let group = DispatchGroup()
        let start = Date()
        try process.run()
        for (pipe, sink) in [(out, output), (err, errors)] {
            group.enter()
            DispatchQueue.global().async { sink.data = pipe.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        }
        while process.isRunning && metricsLines(run).count < logged && Date().timeIntervalSince(start) < timeout {
            usleep(2_000)
        }
        var receiver = process.processIdentifier
        if target == .oneRank { receiver = try XCTUnwrap(children(of: receiver).last, "mpirun has no rank processes") }
        XCTAssertTrue(process.isRunning, "the run ended before \(logged) steps were logged")
        for signal in signals { kill(receiver, signal) }
        while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(20_000) }
        if process.isRunning {
            XCTFail("still running \(Int(timeout)) s after the signal")
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        group.wait()
        return MultiRankTests.Run(status: process.terminationStatus,
                                  output: String(decoding: output.data, as: UTF8.self),
                                  errors: String(decoding: errors.data, as: UTF8.self),
                                  seconds: Date().timeIntervalSince(start))
    }

    /// The processes `pid` started (mpirun's ranks), from /proc: any of its threads may have forked them.
    func children(of pid: pid_t) throws -> [pid_t] {
        let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
        let text = threads.compactMap { thread in
            try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/children", encoding: .utf8)
        }.joined(separator: " ")
        return text.split(whereSeparator: \.isWhitespace).compactMap { pid_t($0) }.sorted()
    }

    /// The step of the "stopped at step N (signal NAME); continue with --resume" line, which must be
    /// printed once (by rank 0 only).
    func stoppedStep(_ stopped: MultiRankTests.Run, signal name: String,
                     file: StaticString = #filePath, line: UInt = #line) -> Int? {
        let lines = stopped.errors.split(separator: "\n").filter { $0.hasPrefix("stopped at step ") }
        XCTAssertEqual(lines.count, 1, "one stopped line: \(stopped.errors)", file: file, line: line)
        guard let text = lines.first, text.hasSuffix(" (signal \(name)); continue with --resume"),
              let step = Int(text.dropFirst("stopped at step ".count).prefix { $0.isNumber }) else {
            XCTFail("no stopped line naming \(name): \(stopped.errors)", file: file, line: line)
            return nil
        }
        return step
    }

    /// The stopped run's checkpoint is the step it names (the only one: the interval is far off), its
    /// metrics end there, and `--resume` ends as the uninterrupted run, bit for bit.
    func assertStoppedAndResumed(_ run: String, at step: Int, like reference: String, args: [String] = [],
                                 ranks: Int = 1, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertTrue(step >= 5 && step < Self.steps, "stopped at step \(step)", file: file, line: line)
        XCTAssertEqual(checkpointSteps(run), [step], file: file, line: line)
        XCTAssertEqual(metricsLines(run).count, step, "metrics lines up to the stop", file: file, line: line)
        let resumed = try train(run, ["--resume"] + args, ranks: ranks)
        XCTAssertEqual(resumed.status, 0, resumed.errors, file: file, line: line)
        let checkpoint = Checkpoint.weightsPath("\(dir)/\(run)", step: step)
        XCTAssertTrue(resumed.output.contains("resumed from \(checkpoint) at step \(step) of \(Self.steps)"),
                      resumed.output, file: file, line: line)
        let (losses, weights) = try outcome(run), expected = try outcome(reference)
        XCTAssertEqual(losses.count, Self.steps, file: file, line: line)
        XCTAssertEqual(losses, expected.losses, "per-step losses after the resume", file: file, line: line)
        XCTAssertEqual(weights, expected.weights, "final weights after the resume", file: file, line: line)
    }

    // MARK: the first signal: a stop with a checkpoint

    func testSIGINTStopsAfterTheStepWithACheckpointAndResumesBitForBit() throws {
        let whole = try train("whole")
        XCTAssertEqual(whole.status, 0, whole.errors)
        let stopped = try interrupt(command("stopped"), run: "stopped", with: [SIGINT])
        XCTAssertEqual(stopped.status, 130, stopped.errors)
        guard let step = stoppedStep(stopped, signal: "SIGINT") else { return }
        let checkpoint = Checkpoint.weightsPath("\(dir)/stopped", step: step)
        XCTAssertTrue(stopped.output.contains("checkpoint: \(checkpoint)"), stopped.output)
        try assertStoppedAndResumed("stopped", at: step, like: "whole")
        print("signal test: SIGINT at step \(step) of \(Self.steps): exit 130, a checkpoint at \(step);"
              + " --resume ends bit for bit as the uninterrupted run")
    }

    func testSIGTERMStopsBothWorkerThreadsAtOneStep() throws {
        let workers = ["--set", "training.workers=2"]
        let whole = try train("whole", workers)
        XCTAssertEqual(whole.status, 0, whole.errors)
        let stopped = try interrupt(command("stopped", workers), run: "stopped", with: [SIGTERM])
        XCTAssertEqual(stopped.status, 143, stopped.errors)
        XCTAssertTrue(try metrics("stopped").allSatisfy { $0["world_size"] as? Int == 2 && $0["workers"] as? Int == 2 },
                      "the run had 2 worker threads")
        guard let step = stoppedStep(stopped, signal: "SIGTERM") else { return }
        try assertStoppedAndResumed("stopped", at: step, like: "whole", args: workers)
        print("signal test: SIGTERM at step \(step), 1 rank × 2 workers: exit 143, one checkpoint;"
              + " --resume bit for bit")
    }

    /// SIGTERM to one rank only: the other stops at the same step (the stop travels in the step's
    /// loss-totals all-reduce), rank 0 writes the checkpoint, mpirun exits with the ranks' 143.
    func testSIGTERMToOneRankStopsEveryRankAtOneStep() throws {
        let whole = try train("whole", ranks: 2)
        XCTAssertEqual(whole.status, 0, whole.errors)
        let stopped = try interrupt(command("stopped", ranks: 2), run: "stopped", with: [SIGTERM], target: .oneRank)
        XCTAssertEqual(stopped.status, 143, stopped.errors)
        XCTAssertTrue(try metrics("stopped").allSatisfy { $0["world_size"] as? Int == 2 }, "the run had world size 2")
        guard let step = stoppedStep(stopped, signal: "SIGTERM") else { return }
        try assertStoppedAndResumed("stopped", at: step, like: "whole", ranks: 2)

        // A SIGTERM to mpirun itself is not tested here: Open MPI 4.1 forwards it to the ranks only
        // after odls_base_sigkill_timeout and stops reading their output, which made the check flaky.
        print("signal test: SIGTERM to one of 2 ranks: both stopped at step \(step), mpirun exit 143, --resume bit for bit")
    }

    func testSIGHUPStopsLikeSIGTERM() throws {
        let stopped = try interrupt(command("stopped"), run: "stopped", with: [SIGHUP])
        XCTAssertEqual(stopped.status, 129, stopped.errors)
        guard let step = stoppedStep(stopped, signal: "SIGHUP") else { return }
        XCTAssertEqual(checkpointSteps("stopped"), [step])
    }

    // MARK: signals that end the run at once

    /// A second signal while the first one's step finishes: exit at once, no checkpoint written.
    /// (Two different signals: two pending SIGINTs could merge into one.)
    func testASecondSignalExitsAtOnceWithoutACheckpoint() throws {
        let stopped = try interrupt(command("stopped"), run: "stopped", with: [SIGTERM, SIGINT])
        // Both are sent at once, before a step ends; signals pending together are delivered lowest number
        // first, so the second to arrive (whose code the exit carries) is SIGINT or SIGTERM.
        XCTAssertTrue([130, 143].contains(stopped.status), "\(stopped.status): \(stopped.errors)")
        XCTAssertTrue(stopped.errors.contains("seqtrain: a second signal: exiting at once, without a checkpoint"),
                      stopped.errors)
        XCTAssertFalse(stopped.errors.contains("stopped at step"), stopped.errors)
        XCTAssertEqual(checkpointSteps("stopped"), [])
    }

    func testSIGQUITExitsAtOnceWithoutABacktrace() throws {
        let quit = try interrupt(command("quit"), run: "quit", with: [SIGQUIT], timeout: 30)
        XCTAssertEqual(quit.status, 131, quit.errors)
        XCTAssertTrue(quit.errors.contains("seqtrain: SIGQUIT: exiting at once, without writing a checkpoint"),
                      quit.errors)
        for crash in ["crashed", "Backtrac", "Thread 0", "Fatal error"] {
            XCTAssertFalse(quit.errors.contains(crash) || quit.output.contains(crash), "\(crash): \(quit.errors)")
        }
        XCTAssertLessThan(metricsLines("quit").count, Self.steps, "training did not go on")
        XCTAssertEqual(checkpointSteps("quit"), [])
    }

    // MARK: checkpoint.every_seconds

    /// Two worker threads in this process, a clock that advances one second per reading: rank 0
    /// decides, both workers write (the lane states are gathered) at steps 3, 6 and 9, and at the
    /// end. A resume from step 6, between two metrics lines (every 4 steps), logs the same means.
    func testEverySecondsWritesACheckpointOnRankZerosClockOnEveryReplica() throws {
        let run = "\(dir)/timed"
        let overrides = ["job.run_dir=\(run)", "training.max_steps=10", "checkpoint.interval=0", "metrics.log_every=4",
                         "checkpoint.every_seconds=3"]
        let config = "\(dir)/config.toml"
        final class Clock: @unchecked Sendable {
            var seconds = 0.0
            var readers = Set<Int>()
        }
        let clock = Clock()
        var options = TrainerOptions()
        options.quiet = true
        func trainOnTwoWorkers(_ options: TrainerOptions) throws {
            final class Steps: @unchecked Sendable { var done = [Int](repeating: 0, count: 2) }
            let steps = Steps()
            let group = try WorkerGroup(size: 2)
            let errors = group.run(inner: nil, timeout: 60) { worker in
                var mine = options
                let reader = worker.worker
                mine.clock = {
                    clock.readers.insert(reader)
                    clock.seconds += 1
                    return clock.seconds
                }
                let trainer = try Trainer.start(config: { try ExperimentConfig.load(path: config, overrides: overrides) },
                                                communicator: worker, options: mine)
                steps.done[worker.worker] = try trainer.run().steps
            }
            XCTAssertTrue(errors.allSatisfy { $0 == nil }, "\(errors)")
            XCTAssertEqual(steps.done, [10, 10])
        }
        try trainOnTwoWorkers(options)
        XCTAssertEqual(clock.readers, [0], "only rank 0's clock decides")
        XCTAssertEqual(checkpointSteps("timed"), [3, 6, 9, 10])
        let whole = metricsLines("timed")
        XCTAssertEqual(whole.count, 3, "metrics lines at 4, 8 and 10")

        for step in [9, 10] {
            let weights = Checkpoint.weightsPath(run, step: step)
            for path in [weights, Checkpoint.statePath(forWeights: weights), Checkpoint.manifestPath(forWeights: weights)] {
                try FileManager.default.removeItem(atPath: path)
            }
        }
        var resume = options
        resume.resume = true
        try trainOnTwoWorkers(resume)
        XCTAssertEqual(metricsLines("timed").map { $0.components(separatedBy: ", \"lr\"")[0] },
                       whole.map { $0.components(separatedBy: ", \"lr\"")[0] },
                       "the resumed run's metrics lines up to their timings (step 8: the mean of steps 5 to 8)")

        // 0 turns it off: only the end's checkpoint.
        var off = options
        off.overwrite = true
        let untimed = try ExperimentConfig.load(path: config,
                                                overrides: overrides.dropLast() + ["checkpoint.every_seconds=0"])
        _ = try Trainer(config: untimed, options: off).run()
        XCTAssertEqual(checkpointSteps("timed"), [10])
    }
}
