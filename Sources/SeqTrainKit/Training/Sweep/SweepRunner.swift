import Foundation

/// What DIR/trials/NNN/trial.json says of a trial: written after each of its rungs.
public struct TrialRecord: Equatable {
    public enum Status: String { case running, pruned, completed, failed, pending }

    public var trial: Int
    public var status: Status
    public var steps = 0
    /// The best monitored figure of its validations; nil before the first finite one.
    public var best: Double?
    /// Wall time of its training processes, over every rung (and every invocation of the sweep).
    public var seconds = 0.0
    public var error: String?

    public init(trial: Int, status: Status) {
        self.trial = trial
        self.status = status
    }

    var json: Data? {
        var object: [String: Any] = ["trial": trial, "status": status.rawValue, "steps": steps,
                                     "seconds": (seconds * 10).rounded() / 10]
        object["best"] = best.map { $0 as Any } ?? NSNull()
        if let error { object["error"] = error }
        return try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }

    static func read(_ path: String) -> TrialRecord? {
        guard let data = FileManager.default.contents(atPath: path),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let trial = object["trial"] as? Int,
              let status = (object["status"] as? String).flatMap(Status.init) else { return nil }
        var record = TrialRecord(trial: trial, status: status)
        record.steps = object["steps"] as? Int ?? 0
        record.best = object["best"] as? Double
        record.seconds = object["seconds"] as? Double ?? 0
        record.error = object["error"] as? String
        return record
    }
}

/// What one `seqtrain train` of a trial ended with.
struct ChildOutcome {
    var status: Int32
    var seconds: Double
    /// It stopped at `--pause-at` (its run goes on at the next rung).
    var paused: Bool
    /// Its last "error: ..." line, for sweep.csv's reader.
    var error: String?
}

/// Runs a sweep: every trial a child `seqtrain train`, P at a time; successive halving between rungs.
public final class SweepRunner {
    public let sweep: Sweep
    /// This executable (`/proc/self/exe`): the trials run the same build.
    let binary: String
    /// Trials trained at once, and the CPUs they share.
    let parallel: Int
    let cpus: Int
    /// Progress lines (stdout, or stderr when stdout carries --json).
    let say: (String) -> Void
    /// The signal that asked the sweep to stop (0: none); trials then get no new process.
    let stopSignal: () -> Int32

    public init(sweep: Sweep, binary: String, parallel: Int?, cpus: Int, say: @escaping (String) -> Void,
                stopSignal: @escaping () -> Int32 = { 0 }) {
        self.sweep = sweep
        self.binary = binary
        self.cpus = max(1, cpus)
        self.parallel = max(1, min(parallel ?? self.cpus, sweep.trials))
        self.say = say
        self.stopSignal = stopSignal
    }

    /// The sweep stopped on a signal; its trials were checkpointed, and the same command continues it.
    public struct Stopped: Error { public let signal: Int32 }

    /// training.workers of each of `running` trials at once: its share of the CPUs, a divisor of the batch.
    func workers(running: Int) -> Int {
        let share = max(1, cpus / max(1, running))
        let batch = sweep.base.integer("training.batch_size")
        return (1...share).last { batch % $0 == 0 } ?? 1
    }

    // MARK: the local sweep

    /// Every trial to the first rung, the best 1/η on to the next, ...; then sweep.csv and best.toml.
    public func run() throws -> SweepSummary {
        let lock = try sweep.prepareDirectory(exclusive: true)
        defer { lock.release() }
        let rungs = sweep.rungSteps, maxSteps = sweep.base.integer("training.max_steps")
        let halving = rungs.isEmpty
            ? (sweep.trials > 1 ? "no successive halving (" + noHalvingReason() + ")" : "one trial")
            : "successive halving at steps \(rungs.map(String.init).joined(separator: ", ")) of \(maxSteps)"
                + " (eta \(sweep.eta))"
        say("sweep: \(sweep.trials) trial(s) of \(sweep.configPath) in \(sweep.directory), up to \(parallel) at a time"
            + " on \(cpus) CPU(s); \(halving); ranked by \(sweep.metric)"
            + " (\(sweep.mode == .min ? "lower" : "higher") is better)")
        var records: [Int: TrialRecord] = [:]
        for trial in 0..<sweep.trials {
            try writeTrialConfig(trial)
            let earlier = TrialRecord.read("\(sweep.trialDirectory(trial))/\(Sweep.trialRecordName)")
            if earlier?.status == .completed { completedBefore.insert(trial) }
            var record = earlier ?? TrialRecord(trial: trial, status: .running)
            record.status = .running
            record.error = nil
            records[trial] = record
            say("trial \(Sweep.trialName(trial)): " + drawn(trial))
        }
        var alive = Array(0..<sweep.trials)
        // Trials whose run has ended (early stopping, or their step limit) before the last rung.
        var finished = Set<Int>()
        for (index, pause) in (rungs.map { Optional($0) } + [nil]).enumerated() {
            // A continued sweep trains only what its trials have not trained yet.
            let training = alive.filter { !finished.contains($0) && !reached($0, pause) }
            let outcomes = try train(training, pauseAt: pause)
            for trial in alive {
                guard var record = records[trial] else { continue }
                if let outcome = outcomes[trial] {
                    record.seconds += outcome.seconds
                    if stopSignal() != 0 && [129, 130, 143].contains(outcome.status) {
                        // Stopped with a checkpoint by the sweep's signal: it resumes when the sweep does.
                    } else if outcome.status != 0 {
                        record.status = .failed
                        record.error = outcome.error ?? "seqtrain train exited with status \(outcome.status)"
                    } else if !outcome.paused {
                        finished.insert(trial)
                    }
                }
                let figures = trialFigures(trial, through: pause)
                record.steps = figures.steps
                record.best = figures.best
                records[trial] = record
            }
            let entering = alive
            alive = alive.filter { records[$0]?.status != .failed }
            if let pause {
                let results = entering.map { trial in
                    (trial: trial, value: records[trial]?.status == .failed ? nil : records[trial]?.best)
                }
                let kept = SuccessiveHalving.survivors(results, eta: sweep.eta, mode: sweep.mode)
                for trial in alive where !kept.contains(trial) { records[trial]?.status = .pruned }
                alive = kept
                let shown = kept.map { "\(Sweep.trialName($0)) (\(format(records[$0]?.best)))" }.joined(separator: ", ")
                let pruned = entering.filter { records[$0]?.status == .pruned }.count
                say("rung \(index + 1) at step \(pause): \(entering.count) trial(s); kept \(kept.count): \(shown);"
                    + " pruned \(pruned)" + failedNote(entering, records))
            }
            for trial in entering { try writeRecord(records[trial]) }
            if stopSignal() != 0 { break }
        }
        if stopSignal() == 0 {
            for trial in alive where records[trial]?.status == .running { records[trial]?.status = .completed }
        }
        for trial in 0..<sweep.trials { try writeRecord(records[trial]) }
        let summary = try gather(locked: true)
        if stopSignal() != 0 { throw Stopped(signal: stopSignal()) }
        return summary
    }

    /// Trials that completed in an earlier invocation of this sweep (read from their trial.json).
    var completedBefore = Set<Int>()

    /// Whether the trial's run is already at the rung's step (or, for the last rung, has completed).
    func reached(_ trial: Int, _ pause: Int?) -> Bool {
        guard let pause else { return completedBefore.contains(trial) }
        return trialFigures(trial, through: nil).steps >= pause
    }

    func noHalvingReason() -> String {
        if sweep.base.integer("training.max_steps") == 0 { return "training.max_steps is 0: "
            + "set it to give the rungs budgets" }
        if sweep.base.integer("training.eval_every") == 0 { return "training.eval_every is 0: "
            + "rungs end at validations" }
        return "too few trials or steps for a rung: each rung needs eta (\(sweep.eta)) times the trials of the next"
            + " and training.eval_every steps"
    }

    /// "key=value key=value" of a trial's draws, for its progress line.
    func drawn(_ trial: Int) -> String {
        sweep.values(of: trial).map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    func failedNote(_ trials: [Int], _ records: [Int: TrialRecord]) -> String {
        let failed = trials.filter { records[$0]?.status == .failed }
        return failed.isEmpty ? "" : "; failed: " + failed.map(Sweep.trialName).joined(separator: ", ")
    }

    func format(_ value: Double?) -> String { value.map { String(format: "%.6g", $0) } ?? "no figure" }

    // MARK: one trial (a Slurm array task)

    /// Trial `trial` alone, to its end (no halving): what a task of `launch/slurm-sweep.sbatch` runs.
    public func runTrial(_ trial: Int) throws -> TrialRecord {
        guard (0..<sweep.trials).contains(trial) else {
            throw SeqTrainError("--trial \(trial): the sweep has trials 0 to \(sweep.trials - 1)"
                + " (--trials \(sweep.trials))")
        }
        _ = try sweep.prepareDirectory(exclusive: false)
        let path = "\(sweep.trialDirectory(trial))/\(Sweep.trialRecordName)"
        var record = TrialRecord.read(path) ?? TrialRecord(trial: trial, status: .running)
        if record.status == .completed {
            say("trial \(Sweep.trialName(trial)): already completed (\(path))")
            return record
        }
        try writeTrialConfig(trial)
        say("trial \(Sweep.trialName(trial)): " + drawn(trial))
        let outcome = try train([trial], pauseAt: nil)[trial]
        record.seconds += outcome?.seconds ?? 0
        let figures = trialFigures(trial, through: nil)
        record.steps = figures.steps
        record.best = figures.best
        if let outcome, outcome.status == 0 {
            record.status = .completed
            record.error = nil
        } else {
            record.status = .failed
            record.error = outcome?.error ?? "not started"
        }
        try writeRecord(record)
        if stopSignal() != 0 { throw Stopped(signal: stopSignal()) }
        return record
    }

    // MARK: trial files

    /// config.toml of a trial whose run has not started (a started run's is the trainer's own copy).
    func writeTrialConfig(_ trial: Int) throws {
        let directory = sweep.trialDirectory(trial), fm = FileManager.default
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw SeqTrainError("\(directory): cannot create the trial's directory: \(describeFileError(error))")
        }
        let started = fm.fileExists(atPath: "\(directory)/\(RunFiles.metricsName)")
            || !Checkpoint.list(directory).isEmpty
        guard !started else { return }
        try RunFiles.refuseForeignConfig(in: directory)
        try DurableFile.write(Data(try sweep.trialConfigText(trial).utf8), to: "\(directory)/\(RunFiles.configName)")
    }

    func writeRecord(_ record: TrialRecord?) throws {
        guard let record, let data = record.json else { return }
        let path = "\(sweep.trialDirectory(record.trial))/\(Sweep.trialRecordName)"
        try DurableFile.write(data + Data("\n".utf8), to: path)
    }

    /// The trial's last step and best monitored figure through step `through` (nil: all), from its metrics.jsonl.
    func trialFigures(_ trial: Int, through limit: Int?) -> (steps: Int, best: Double?) {
        let lines = Self.metricsLines("\(sweep.trialDirectory(trial))/\(RunFiles.metricsName)")
        var steps = 0, values: [Double] = []
        for line in lines where line["event"] == nil {
            guard let step = line["step"] as? Int, step <= (limit ?? Int.max) else { continue }
            steps = max(steps, step)
            if let value = line[sweep.metric] as? Double { values.append(value) }
        }
        return (steps, SuccessiveHalving.best(values, mode: sweep.mode))
    }

    /// The parsed lines of a metrics.jsonl (a line torn by a crash is skipped).
    static func metricsLines(_ path: String) -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    // MARK: child processes

    /// `seqtrain train` of each trial, `parallel` at a time, each with its share of the CPUs as
    /// workers; output appended to the trial's train.log.
    func train(_ trials: [Int], pauseAt: Int?) throws -> [Int: ChildOutcome] {
        guard !trials.isEmpty else { return [:] }
        let running = min(parallel, trials.count)
        let workers = workers(running: running)
        final class Results: @unchecked Sendable {
            var outcomes: [Int: ChildOutcome] = [:]
            var next = 0
            let lock = NSLock()
        }
        let results = Results()
        var environment = ProcessInfo.processInfo.environment
        // Trials side by side each want one BLAS thread per worker (two on small matrices are slower).
        if WorkerPlan.blasThreads(environment) == nil { environment["OPENBLAS_NUM_THREADS"] = "1" }
        DispatchQueue.concurrentPerform(iterations: running) { _ in
            while true {
                results.lock.lock()
                let index = results.next
                results.next += 1
                results.lock.unlock()
                guard index < trials.count, stopSignal() == 0 else { return }
                let trial = trials[index]
                let outcome = runChild(trial, pauseAt: pauseAt, workers: workers, environment: environment)
                results.lock.lock()
                results.outcomes[trial] = outcome
                results.lock.unlock()
            }
        }
        return results.outcomes
    }

    func runChild(_ trial: Int, pauseAt: Int?, workers: Int, environment: [String: String]) -> ChildOutcome {
        let directory = sweep.trialDirectory(trial)
        // --resume also on a first start (it then begins at step 0): a continued sweep picks up
        // every trial where its checkpoints are.
        var arguments = ["train", "\(directory)/\(RunFiles.configName)", "--resume", "--progress", "lines",
                         "--set", "training.workers=\(workers)"]
        if let pauseAt { arguments += ["--pause-at", String(pauseAt)] }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let start = Date()
        do { try process.run() } catch {
            return ChildOutcome(status: -1, seconds: 0, paused: false, error: "cannot start \(binary): \(error)")
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        let text = String(decoding: data, as: UTF8.self)
        let header = "$ seqtrain " + arguments.joined(separator: " ") + "\n"
        let footer = "(exit \(process.terminationStatus), \(String(format: "%.1f", seconds)) s)\n"
        try? DurableFile.append(header + text + footer,
                                to: "\(directory)/\(Sweep.logName)")
        let lines = text.split(separator: "\n")
        let error = lines.last { $0.hasPrefix("error: ") }.map { String($0.dropFirst("error: ".count).prefix(500)) }
        let paused = lines.contains { $0.hasPrefix("paused at step ") }
        // A child killed by a signal reports it as a shell would: 128 + the signal.
        let status = process.terminationReason == .uncaughtSignal
            ? 128 + process.terminationStatus : process.terminationStatus
        return ChildOutcome(status: status, seconds: seconds, paused: paused,
                            error: status == 0 ? nil : error ?? "seqtrain train exited with status \(status)"
                                + "; see \(directory)/\(Sweep.logName)")
    }

    // MARK: gathering

    /// sweep.csv and best.toml from every trial.json (a trial without one is pending), under the
    /// sweep lock unless the caller holds it.
    public func gather(locked: Bool = false) throws -> SweepSummary {
        let lock = locked ? nil : try SweepLock(directory: sweep.directory, wait: true)
        defer { lock?.release() }
        let records = (0..<sweep.trials).map { trial in
            TrialRecord.read("\(sweep.trialDirectory(trial))/\(Sweep.trialRecordName)")
                ?? TrialRecord(trial: trial, status: .pending)
        }
        let summary = SweepSummary(sweep: sweep, records: records)
        let csv = "\(sweep.directory)/\(Sweep.csvName)", best = "\(sweep.directory)/\(Sweep.bestName)"
        try Sweep.refuseForeign(csv, marker: "trial,")
        try DurableFile.write(Data(summary.csv.utf8), to: csv)
        if let winner = summary.best {
            try Sweep.refuseForeign(best, marker: SweepSummary.bestMarker)
            let config = try sweep.config(of: winner.trial, runDirectory: "\(sweep.directory)/best")
            let drawn = sweep.values(of: winner.trial).map { "\($0.key) = \($0.value)" }.joined(separator: ", ")
            let text = SweepSummary.bestMarker + " trial \(Sweep.trialName(winner.trial)) of \(sweep.directory),"
                + " \(sweep.metric) \(format(winner.best)) after \(winner.steps) steps: \(drawn)\n"
                + "# Train it again with: seqtrain train \(best)  (its run directory: \(sweep.directory)/best)\n"
                + config.resolvedTOML
            try DurableFile.write(Data(text.utf8), to: best)
        }
        return summary
    }
}

/// The rows of sweep.csv, the best trial, and the `--json` object.
public struct SweepSummary {
    public static let bestMarker = "# seqtrain sweep: the best"

    public let sweep: Sweep
    public let records: [TrialRecord]

    /// The completed trial with the best figure (ties: the lower trial number).
    public var best: TrialRecord? {
        let ranked = records.filter { $0.status == .completed && $0.best?.isFinite == true }
        // One kept of all of them: the best by the same rule as a rung's.
        let first = SuccessiveHalving.survivors(ranked.map { ($0.trial, $0.best) }, eta: max(2, ranked.count + 1),
                                                mode: sweep.mode).first
        return ranked.first { $0.trial == first }
    }

    static func csvField(_ text: String) -> String {
        text.contains(",") || text.contains("\"") || text.contains("\n")
            ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }

    public var csv: String {
        let header = ["trial"] + sweep.parameters.map(\.key) + [sweep.metric, "steps", "seconds", "status"]
        var lines = [header.map(Self.csvField).joined(separator: ",")]
        for record in records {
            let values = sweep.values(of: record.trial).map(\.value)
            let figure = record.best.map { String(format: "%.6g", $0) } ?? ""
            let fields = [Sweep.trialName(record.trial)] + values
                + [figure, String(record.steps), String(format: "%.1f", record.seconds), record.status.rawValue]
            lines.append(fields.map(Self.csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A drawn value for JSON: a number where the TOML text is one, else the text.
    static func jsonValue(_ text: String) -> Any {
        if let integer = Int(text) { return integer }
        if let number = Double(text), number.isFinite { return number }
        if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 { return String(text.dropFirst().dropLast()) }
        return text
    }

    public var json: String {
        let trials: [[String: Any]] = records.map { record in
            var parameters: [String: Any] = [:]
            for (key, value) in sweep.values(of: record.trial) { parameters[key] = Self.jsonValue(value) }
            var object: [String: Any] = ["trial": record.trial, "run_dir": sweep.trialDirectory(record.trial),
                                         "parameters": parameters, "steps": record.steps,
                                         "seconds": (record.seconds * 10).rounded() / 10,
                                         "status": record.status.rawValue]
            object["best_metric"] = record.best.map { $0 as Any } ?? NSNull()
            if let error = record.error { object["error"] = error }
            return object
        }
        var object: [String: Any] = ["metric": sweep.metric, "mode": sweep.mode.rawValue, "trials": trials]
        object["best_run_dir"] = best.map { sweep.trialDirectory($0.trial) as Any } ?? NSNull()
        object["best_metric"] = best?.best.map { $0 as Any } ?? NSNull()
        object["best_config"] = best != nil ? "\(sweep.directory)/\(Sweep.bestName)" as Any : NSNull()
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The closing lines: counts by status and the best trial.
    public var text: String {
        var counts: [String] = []
        for status in [TrialRecord.Status.completed, .pruned, .failed, .pending, .running] {
            let n = records.filter { $0.status == status }.count
            if n > 0 { counts.append("\(n) \(status.rawValue)") }
        }
        var out = "sweep: \(records.count) trial(s): \(counts.joined(separator: ", "));"
            + " \(sweep.directory)/\(Sweep.csvName)"
        for record in records where record.status == .failed {
            out += "\ntrial \(Sweep.trialName(record.trial)) failed: \(record.error ?? "see its train.log")"
        }
        if let best {
            out += "\nbest: trial \(Sweep.trialName(best.trial)), \(sweep.metric) "
                + (best.best.map { String(format: "%.6g", $0) } ?? "-") + " after \(best.steps) steps ("
                + sweep.values(of: best.trial).map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "); "
                + "\(sweep.directory)/\(Sweep.bestName), run \(sweep.trialDirectory(best.trial))"
        } else {
            out += "\nno trial has completed yet: no \(Sweep.bestName)"
        }
        return out
    }
}
