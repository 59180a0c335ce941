import Foundation
import XCTest
import SeqTrainKit

/// `launch/slurm.sbatch` on a real Slurm: a one-node cluster on this machine
/// (`launch/slurm-test-cluster`: munged, slurmctld, slurmd from a generated slurm.conf, state in a
/// temporary directory, stopped by PID at the end). Skipped, with the reason printed, only where
/// the packages are missing or the daemons cannot start.
final class SlurmTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let clusterScript = "\(root)/launch/slurm-test-cluster"
    static let batchScript = "\(root)/launch/slurm.sbatch"
    static let sweepScript = "\(root)/launch/slurm-sweep.sbatch"

    var dir = ""
    var cluster = ""
    /// What every Slurm command needs: the test cluster's config; the job finds the binary through it.
    var slurm: [String: String] = [:]

    override func setUpWithError() throws {
        dir = try temporaryDirectory()
        cluster = "\(dir)/cluster"
        let up = try MultiRankTests.execute([Self.clusterScript, "up", cluster], timeout: 120)
        if up.status == 3 {
            let reason = up.errors.trimmingCharacters(in: .whitespacesAndNewlines)
            print("skipping the Slurm test: \(reason)")
            throw XCTSkip(reason)
        }
        guard up.status == 0 else {
            XCTFail("launch/slurm-test-cluster up failed (\(up.status)): \(up.errors)")
            throw SeqTrainError("no test cluster")
        }
        slurm = ["SLURM_CONF": "\(cluster)/slurm.conf", "SEQTRAIN_BIN": MultiRankTests.binary]
        try MultiRankTests.writeSmallRun(in: dir, name: "slurm", checkpointInterval: 5)
    }

    override func tearDown() {
        if !cluster.isEmpty {
            let down = try? MultiRankTests.execute([Self.clusterScript, "down", cluster], timeout: 90)
            XCTAssertEqual(down?.status, 0, "launch/slurm-test-cluster down: \(down?.errors ?? "did not run")")
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    func slurmCommand(_ command: [String], timeout: Double = 60) throws -> MultiRankTests.Run {
        try MultiRankTests.execute(command, timeout: timeout, environment: slurm)
    }

    /// `sbatch launch/slurm.sbatch CONFIG --set job.run_dir=RUN args…`; returns the job id.
    func submit(run: String, _ args: [String] = []) throws -> String {
        let result = try slurmCommand(["sbatch", "--parsable", "--chdir=\(dir)", "--output=\(dir)/job-%j.out", Self.batchScript,
                                       "\(dir)/config.toml", "--set", "job.run_dir=\(run)"] + args)
        XCTAssertEqual(result.status, 0, result.errors)
        let id = result.output.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        guard !id.isEmpty, id.allSatisfy(\.isNumber) else { throw SeqTrainError("sbatch printed no job id: \(result.output) \(result.errors)") }
        return id
    }

    /// `scontrol show job` as key=value pairs.
    func job(_ id: String) throws -> [String: String] {
        let shown = try slurmCommand(["scontrol", "show", "job", id, "-o"])
        XCTAssertEqual(shown.status, 0, shown.errors)
        var fields: [String: String] = [:]
        for token in shown.output.split(whereSeparator: \.isWhitespace) {
            let pair = token.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        return fields
    }

    /// Polls until the job's state is one of `states`; fails after `timeout` seconds.
    @discardableResult
    func waitForJob(_ id: String, in states: Set<String>, timeout: Double = 300) throws -> [String: String] {
        let start = Date()
        while true {
            let fields = try job(id)
            if let state = fields["JobState"], states.contains(state) { return fields }
            if Date().timeIntervalSince(start) > timeout {
                _ = try? slurmCommand(["scancel", id])
                throw SeqTrainError("job \(id) still \(fields["JobState"] ?? "?") after \(Int(timeout)) s, waiting for \(states.sorted())" + controllerLog())
            }
            usleep(200_000)
        }
    }

    static let finished: Set<String> = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"]

    func metrics(_ run: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    /// The job's log as the user reads it: plain text, no carriage returns or escape sequences.
    func assertPlainText(_ log: String, file: StaticString = #filePath, line: UInt = #line) {
        let control = log.unicodeScalars.first { $0.value < 0x20 && $0 != "\n" && $0 != "\t" || $0.value == 0x7F }
        XCTAssertNil(control, "the job log holds control character \(control.map { String(format: "0x%02X", $0.value) } ?? "")", file: file, line: line)
    }

    /// The end of slurmctld's log, for failure messages.
    func controllerLog() -> String {
        "\nslurmctld.log ends:\n" + ((try? String(contentsOfFile: "\(cluster)/slurmctld.log", encoding: .utf8)).map { String($0.suffix(3000)) } ?? "(unreadable)")
    }

    /// The replicas the job runs: one rank with a worker per CPU the node has (at least two, see
    /// slurm-test-cluster).
    func nodeCPUs() throws -> Int {
        let shown = try slurmCommand(["scontrol", "show", "node", "-o"])
        let cpus = shown.output.split(whereSeparator: \.isWhitespace).first { $0.hasPrefix("CPUTot=") }.flatMap { Int($0.dropFirst(7)) }
        guard let cpus, cpus >= 2 else { throw SeqTrainError("the test node has \(shown.output); expected CPUTot >= 2") }
        return cpus
    }

    /// Waits for the requeued job `id` to be pending, starts it again at once and waits for its end.
    func releaseRequeued(_ id: String) throws -> [String: String] {
        try waitForJob(id, in: ["PENDING"], timeout: 60)
        // Slurm holds a requeued job back for two minutes (Reason=BeginTime); the test does not wait
        // for that. It waits until the node is idle and a few seconds have passed: slurmd revokes the
        // first start's credential with a time stamp in whole seconds, and a restart within the same
        // second is killed as "Job credential revoked".
        let requeued = Date()
        while try slurmCommand(["sinfo", "-h", "-o", "%T"]).output.trimmingCharacters(in: .whitespacesAndNewlines) != "idle"
                || Date().timeIntervalSince(requeued) < 3 {
            guard Date().timeIntervalSince(requeued) < 60 else { throw SeqTrainError("the node never became idle after the requeue") }
            usleep(200_000)
        }
        let release = try slurmCommand(["scontrol", "update", "JobId=\(id)", "StartTime=now"])
        XCTAssertEqual(release.status, 0, release.errors)
        return try waitForJob(id, in: Self.finished)
    }

    func testBatchJobOnTwoOrMoreRanksLearnsWhatOneProcessLearns() throws {
        let single = try MultiRankTests.train(ranks: 1, "\(dir)/config.toml", ["--set", "job.run_dir=\(dir)/single", "--set", "training.workers=1"])
        XCTAssertEqual(single.status, 0, single.errors)
        let workers = try nodeCPUs()

        let started = Date()
        let id = try submit(run: "\(dir)/slurm")
        let fields = try waitForJob(id, in: Self.finished)
        let seconds = Date().timeIntervalSince(started)
        let log = try String(contentsOfFile: "\(dir)/job-\(id).out", encoding: .utf8)
        XCTAssertEqual(fields["JobState"], "COMPLETED", log)
        XCTAssertEqual(fields["ExitCode"], "0:0", log)
        XCTAssertTrue(log.contains("1 node(s) x 1 rank(s) x up to \(workers) worker(s)"), log)
        XCTAssertTrue(log.contains("seqtrain: 1 rank × \(workers) workers per rank, 1 BLAS thread per worker"), log)
        XCTAssertTrue(log.contains("20 steps on \(workers) replica(s) (1 rank × \(workers) workers)"), log)
        // A first start passes --resume too, and begins at step 0.
        XCTAssertTrue(log.contains("--resume: no checkpoint in \(dir)/slurm/checkpoints yet; starting at step 0"), log)
        XCTAssertTrue(log.contains("step 20/20"), log)
        assertPlainText(log)

        let reference = try metrics("\(dir)/single"), lines = try metrics("\(dir)/slurm")
        XCTAssertEqual(lines.count, 20)
        XCTAssertTrue(lines.allSatisfy { $0["world_size"] as? Int == workers && $0["workers"] as? Int == workers },
                      "every step ran on 1 rank × \(workers) workers")
        var worst = 0.0
        for (a, b) in zip(reference, lines) {
            let x = a["loss"] as! Double, y = b["loss"] as! Double
            XCTAssertEqual(x, y, accuracy: 1e-5 * abs(x), "step \(a["step"]!)")
            worst = max(worst, abs(x - y) / abs(x))
        }
        let validation = (reference.last?["val_loss"] as? Double ?? .nan, lines.last?["val_loss"] as? Double ?? .nan)
        XCTAssertEqual(validation.0, validation.1, accuracy: 1e-5 * abs(validation.0))
        print(String(format: "slurm test: job %@ ran 1 rank × %d workers through srun --mpi=pmix, 20 steps, %.1f s from sbatch to COMPLETED; largest relative difference of a step's loss to one worker %.1e, validation loss %.10f vs %.10f",
                     id, workers, seconds, worst, validation.1, validation.0))
    }

    /// A running job is requeued (as after a preemption or a node failure): the second start finds
    /// the run's newest checkpoint and continues; the result is the uninterrupted run's, bit for bit.
    func testRequeuedJobResumesFromItsNewestCheckpoint() throws {
        let workers = try nodeCPUs()
        let uninterrupted = try MultiRankTests.train(ranks: 1, "\(dir)/config.toml", ["--set", "job.run_dir=\(dir)/uninterrupted",
                                                                                      "--set", "training.workers=\(workers)"])
        XCTAssertEqual(uninterrupted.status, 0, uninterrupted.errors)

        // Worker 0 stops at step 12 (checkpoints at 5 and 10 are written) the first time only.
        let marker = "\(dir)/stopped-at-12"
        let id = try submit(run: "\(dir)/requeued", ["--test-fail-at", "0:12:hang-once:\(marker)"])
        let start = Date()
        while !FileManager.default.fileExists(atPath: marker) {
            guard Date().timeIntervalSince(start) < 120 else { throw SeqTrainError("job \(id) never reached step 12: \(try job(id))") }
            usleep(100_000)
        }
        XCTAssertEqual(try job(id)["JobState"], "RUNNING")
        let requeue = try slurmCommand(["scontrol", "requeue", id])
        XCTAssertEqual(requeue.status, 0, requeue.errors)
        let fields = try releaseRequeued(id)
        let log = try String(contentsOfFile: "\(dir)/job-\(id).out", encoding: .utf8)
        XCTAssertEqual(fields["JobState"], "COMPLETED", log + controllerLog())
        XCTAssertEqual(fields["ExitCode"], "0:0", log)
        XCTAssertEqual(fields["Restarts"], "1", log)
        XCTAssertTrue(log.contains("job \(id) start 1:") && log.contains("job \(id) start 2:"), log)
        XCTAssertTrue(log.contains("--resume: no checkpoint in \(dir)/requeued/checkpoints yet; starting at step 0"), log)
        XCTAssertTrue(log.contains("resumed from \(dir)/requeued/checkpoints/step-00000010.safetensors at step 10 of 20"), log)
        assertPlainText(log)

        // Every step once, with the uninterrupted run's loss; the same final weights.
        let lines = try metrics("\(dir)/requeued"), reference = try metrics("\(dir)/uninterrupted")
        XCTAssertEqual(lines.map { $0["step"] as! Int }, Array(1...20))
        XCTAssertEqual(lines.map { $0["loss"] as! Double }, reference.map { $0["loss"] as! Double })
        XCTAssertEqual(try LoadedCharLM(path: "\(dir)/requeued").model.parameters.values.array,
                       try LoadedCharLM(path: "\(dir)/uninterrupted").model.parameters.values.array)
        print("slurm test: job \(id) requeued at step 12 (1 rank × \(workers) workers), restarted (Restarts=\(fields["Restarts"] ?? "?")), resumed from its step-10 checkpoint; its 20 losses and final weights equal the uninterrupted run's bit for bit")
    }

    /// The seqtrain process of this test cluster's job (its environment names the cluster's slurm.conf).
    func jobProcess() -> pid_t? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid_t($0) }.first { pid in
            guard let command = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                  let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            let arguments = command.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return arguments.first == MultiRankTests.binary && arguments.dropFirst().first == "train"
                && environment.split(separator: 0).contains {
                    String(decoding: $0, as: UTF8.self) == "SLURM_CONF=\(cluster)/slurm.conf"
                }
        }
    }

    /// The signals pending for the whole process `pid` (ShdPnd in /proc/PID/status).
    func pendingSignals(of pid: pid_t) -> Set<Int32> {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("ShdPnd:") }),
              let mask = UInt64(line.dropFirst("ShdPnd:".count).trimmingCharacters(in: .whitespaces), radix: 16) else {
            return []
        }
        return Set((1...64).filter { mask & (1 << UInt64($0 - 1)) != 0 }.map { Int32($0) })
    }

    /// Slurm's warning before the time limit (`#SBATCH --signal=B:USR1@120`, sent here at once with
    /// `scancel --signal=USR1 --batch`): the script passes SIGTERM on to seqtrain, which stops every
    /// worker after one step with a checkpoint there and exits 143; the script requeues the job,
    /// whose second start resumes from that checkpoint and ends as the uninterrupted run, bit for bit.
    func testTimeLimitWarningStopsWithACheckpointAndTheJobRequeuesItself() throws {
        let workers = try nodeCPUs()
        let uninterrupted = try MultiRankTests.train(ranks: 1, "\(dir)/config.toml",
                                                     ["--set", "job.run_dir=\(dir)/uninterrupted",
                                                      "--set", "training.workers=\(workers)"])
        XCTAssertEqual(uninterrupted.status, 0, uninterrupted.errors)

        let run = "\(dir)/warned", id = try submit(run: run)
        let start = Date()
        func logged() -> Int {
            ((try? String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8)) ?? "").filter { $0 == "\n" }.count
        }
        var seqtrain: pid_t?
        while seqtrain == nil || logged() < 3 {
            guard Date().timeIntervalSince(start) < 120 else {
                throw SeqTrainError("job \(id) never logged 3 steps: \(try job(id))")
            }
            if seqtrain == nil { seqtrain = jobProcess() }
            usleep(1_000)
        }
        // seqtrain is paused (at once, by its PID) while the warning travels through Slurm to the batch
        // shell and back to the step, so a 20-step run cannot finish first; the SIGTERM waits, pending.
        guard let seqtrain else { return }
        kill(seqtrain, SIGSTOP)
        let warning = try slurmCommand(["scancel", "--signal=USR1", "--batch", id])
        XCTAssertEqual(warning.status, 0, warning.errors)
        let log = "\(dir)/job-\(id).out"
        let warned = Date()
        while !pendingSignals(of: seqtrain).contains(SIGTERM) {
            guard Date().timeIntervalSince(warned) < 60 else {
                kill(seqtrain, SIGCONT)
                throw SeqTrainError("no SIGTERM reached seqtrain after the warning: \(try job(id))")
            }
            usleep(20_000)
        }
        kill(seqtrain, SIGCONT)

        let fields = try releaseRequeued(id)
        let text = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertEqual(fields["JobState"], "COMPLETED", text + controllerLog())
        XCTAssertEqual(fields["ExitCode"], "0:0", text)
        XCTAssertEqual(fields["Restarts"], "1", text)
        let stopped = text.split(separator: "\n").first {
            $0.hasPrefix("stopped at step ") && $0.hasSuffix("(signal SIGTERM); continue with --resume")
        }
        guard let stopped, let step = Int(stopped.dropFirst("stopped at step ".count).prefix { $0.isNumber }) else {
            return XCTFail("no stopped line in the job's log: \(text)")
        }
        XCTAssertTrue(step >= 3 && step < 20, text)
        let requeueLine = "slurm.sbatch: job \(id) stopped with a checkpoint before its time limit; requeued"
        XCTAssertTrue(text.contains(requeueLine), text)
        XCTAssertTrue(text.contains("job \(id) start 1:") && text.contains("job \(id) start 2:"), text)
        let checkpoint = Checkpoint.weightsPath(run, step: step)
        XCTAssertTrue(text.contains("resumed from \(checkpoint) at step \(step) of 20"), text)
        assertPlainText(text)

        let lines = try metrics(run), reference = try metrics("\(dir)/uninterrupted")
        XCTAssertEqual(lines.map { $0["step"] as! Int }, Array(1...20))
        XCTAssertEqual(lines.map { $0["loss"] as! Double }, reference.map { $0["loss"] as! Double })
        XCTAssertEqual(try LoadedCharLM(path: run).model.parameters.values.array,
                       try LoadedCharLM(path: "\(dir)/uninterrupted").model.parameters.values.array)
        print("slurm test: job \(id) warned of its time limit (1 rank × \(workers) workers): stopped at step \(step)"
              + " with a checkpoint, exit 143, requeued itself (Restarts=\(fields["Restarts"] ?? "?")), resumed there;"
              + " its 20 losses and final weights equal the uninterrupted run's bit for bit")
    }
    /// `launch/slurm-sweep.sbatch` as a job array of three tasks, one trial each: every trial
    /// completes, the last task's gather writes sweep.csv and best.toml, and the trials are the ones
    /// (and learn what) the same sweep draws on this machine.
    func testSweepAsAJobArrayCompletesEveryTrial() throws {
        let sweepWords = ["\(dir)/config.toml", "--trials", "3", "--param", "optimizer.lr=log(1e-3, 2e-2)",
                          "--param", "model.hidden=[16, 24]", "--seed", "5"]
        let started = Date()
        let submitted = try slurmCommand(["sbatch", "--parsable", "--chdir=\(dir)", "--output=\(dir)/sweep-%A_%a.out",
                                          "--array=0-2", Self.sweepScript] + sweepWords + ["--out", "\(dir)/array"])
        XCTAssertEqual(submitted.status, 0, submitted.errors)
        let id = submitted.output.split(separator: ";").first
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        guard !id.isEmpty, id.allSatisfy(\.isNumber) else {
            throw SeqTrainError("sbatch printed no job id: \(submitted.output)")
        }
        // An array's tasks leave squeue as they end: empty, every task has ended.
        func queued() throws -> Bool {
            let listed = try slurmCommand(["squeue", "-h", "-j", id]).output
            return !listed.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        }
        while try queued() {
            guard Date().timeIntervalSince(started) < 300 else {
                _ = try? slurmCommand(["scancel", id])
                throw SeqTrainError("the array job \(id) did not finish in 300 s" + controllerLog())
            }
            usleep(300_000)
        }
        let seconds = Date().timeIntervalSince(started)
        let logs = (0..<3).map { task in
            (try? String(contentsOfFile: "\(dir)/sweep-\(id)_\(task).out", encoding: .utf8)) ?? "(no log)"
        }
        for (task, log) in logs.enumerated() {
            XCTAssertTrue(log.contains("task \(task): trial \(task)"), log)
            XCTAssertTrue(log.contains("trial \(Sweep.trialName(task)): completed, 20 steps"), log)
            assertPlainText(log)
        }
        let csv = try String(contentsOfFile: "\(dir)/array/sweep.csv", encoding: .utf8)
        let rows = csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",").map(String.init) }
        XCTAssertEqual(rows.count, 3, csv)
        XCTAssertTrue(rows.allSatisfy { $0.last == "completed" && $0[$0.count - 3] == "20" }, csv)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/array/best.toml"), csv)

        // The same sweep here draws the same trials (3 trials of 20 steps have no rung: no halving).
        let local = try MultiRankTests.execute([MultiRankTests.binary, "sweep"] + sweepWords
                                               + ["--out", "\(dir)/local"])
        XCTAssertEqual(local.status, 0, local.errors)
        let localRows = try String(contentsOfFile: "\(dir)/local/sweep.csv", encoding: .utf8)
            .split(separator: "\n").dropFirst().map { $0.split(separator: ",").map(String.init) }
        XCTAssertEqual(rows.map { Array($0.prefix(3)) }, localRows.map { Array($0.prefix(3)) }, "trial, lr, hidden")
        for (array, here) in zip(rows, localRows) {
            guard let a = Double(array[3]), let b = Double(here[3]) else { return XCTFail("no val_loss in \(csv)") }
            XCTAssertEqual(a, b, accuracy: 1e-4 * abs(b),
                           "trial \(array[0]): the array task learned what the local trial did")
        }
        print(String(format: "slurm test: sweep job array %@ (3 tasks, one trial each) completed in %.1f s from sbatch;"
                     + " sweep.csv and best.toml gathered; its trials and val_loss match the same sweep run here",
                     id, seconds))
    }
}
