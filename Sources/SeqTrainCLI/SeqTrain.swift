import ArgumentParser
import Foundation
import SeqTrainKit

@main
struct SeqTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seqtrain",
        abstract: "Train LSTM, GRU and MLP models on CPUs and CPU clusters.",
        discussion: "One experiment is one TOML file: seqtrain train configs/charlm.toml. Under mpirun the same command trains data-parallel.",
        subcommands: [Train.self, Sample.self, Evaluate.self, Predict.self, Encode.self, Score.self, Generate.self, Forecast.self, ShowConfig.self, MakeData.self, Bench.self, ShowSystem.self,
                      CheckGradients.self, Report.self, Debug.self, RunSweep.self])

    /// Before anything else (BLAS calls, MPI): make sure OpenBLAS runs a kernel that suits the CPU.
    static func main() {
        BLASKernelSelection.applyAtStartup()
        FloatEnvironment.flushDenormals()
        // Progress lines reach a log file or a pipe as they are written, not in 4 KB blocks.
        setvbuf(stdout, nil, _IOLBF, 0)
        // A file-size limit (ulimit -f) then fails a write with EFBIG, reported like a full disk,
        // instead of killing the process.
        signal(SIGXFSZ, SIG_IGN)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            // Under mpirun every rank parses the same words: help, usage and argument errors are
            // printed once, by rank 0; the other ranks end with the same status in silence.
            if let rank = Self.launcherRank, rank != 0 { Foundation.exit(exitCode(for: error).rawValue) }
            exit(withError: error)
        }
    }

    /// This process's rank when an MPI launcher (or srun) started it, read before MPI starts.
    static var launcherRank: Int? {
        let environment = ProcessInfo.processInfo.environment
        let names = ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"]
        return names.lazy.compactMap { environment[$0].flatMap { Int($0) } }.first
    }
}

struct ShowSystem: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "system",
        abstract: "Print the CPU and the OpenBLAS kernel seqtrain runs on (and whether seqtrain chose it).",
        discussion: "When OpenBLAS falls back to a kernel far below the CPU (Prescott on a current Xeon), seqtrain restarts itself with OPENBLAS_CORETYPE set to the best kernel the build offers. A user's OPENBLAS_CORETYPE is respected; SEQTRAIN_BLAS_CORE=keep turns the selection off.")

    @Flag(help: "Print only the kernel's name.")
    var core = false

    func run() throws {
        print(core ? BLASKernelSelection.currentCore : BLASKernelSelection.summary)
    }
}

/// Errors from seqtrain are printed as they are (they already say where and what to do).
func reporting<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as SeqTrainError {
        printError(error.message)
        throw ExitCode(2)
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the experiment a TOML config describes.",
        discussion: "Ctrl-C (SIGINT), SIGTERM or SIGHUP: every replica finishes its step, a checkpoint is written there "
            + "and train exits with 130, 143 or 129 (continue with --resume); a second signal exits at once. "
            + "SIGQUIT exits at once (131) without a checkpoint.")

    @Argument(help: "The experiment config, e.g. configs/charlm.toml.")
    var config: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a key: section.key=value (repeatable).", valueName: "section.key=value"))
    var overrides: [String] = []

    @Flag(help: "Continue the run in the config's run directory from its newest checkpoint.")
    var resume = false

    @Flag(help: ArgumentHelp("Start over in a run directory that already holds a run (deletes only the files"
                             + " seqtrain wrote there: checkpoints, metrics, timeline, TensorBoard events,"
                             + " its config.toml, reports)."))
    var overwrite = false

    @Option(help: ArgumentHelp("auto: a redrawn bar for one process on a terminal, plain lines under mpirun, Slurm or into a file; bar; lines; none. Overrides metrics.progress.", valueName: "auto|bar|lines|none"))
    var progress: String?

    @Flag(help: "No progress output (the same as --progress none).")
    var quiet = false

    @Flag(help: "Do not print the training doctor's warnings (what is certainly wrong is still refused).")
    var noDoctor = false

    @Flag(help: "Check every collective's fingerprint, every rank's parameters against rank 0's after each step, and gradients for NaN per tensor; each rank logs its phases to RUN_DIR/rank-R.log.")
    var debug = false

    @Flag(help: "Use MPI even when no MPI launcher started this process.")
    var mpi = false

    @Option(help: ArgumentHelp("End the run after this step with a checkpoint there, keeping training.max_steps"
                               + " (and the learning-rate schedule it sets); continue with --resume."
                               + " seqtrain sweep's rungs use it.", valueName: "step"))
    var pauseAt: Int?

    @Option(help: ArgumentHelp("Test hook: RANK:STEP[:exit|raise|hang|hang-once:FILE|kill-in-checkpoint] makes that rank fail at that step (hang-once: only while FILE does not exist; creates it; kill-in-checkpoint: SIGKILL while writing the checkpoint of that step; nan: that rank's loss is NaN).", visibility: .hidden))
    var testFailAt: String?

    @Option(help: ArgumentHelp("Test hook: a directory where every rank records the lanes it trains on.", visibility: .hidden))
    var testTraceDir: String?

    func validate() throws {
        if resume && overwrite { throw ValidationError("--resume and --overwrite exclude each other: continue the run, or start it over") }
        if let progress, ProgressStyle(rawValue: progress) == nil {
            throw ValidationError("--progress \(progress): expected one of " + ProgressStyle.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if let pauseAt, pauseAt < 1 {
            throw ValidationError("--pause-at \(pauseAt): give the step (1 or more) after which the run pauses")
        }
        if quiet, let progress, progress != "none" { throw ValidationError("--quiet and --progress \(progress) contradict each other: keep one") }
    }

    func run() throws {
        var options = TrainerOptions()
        options.resume = resume
        options.overwrite = overwrite
        options.quiet = quiet
        options.doctor = !noDoctor
        options.debug = debug
        options.traceDirectory = testTraceDir
        options.pauseAtStep = pauseAt
        if let testFailAt {
            let parts = testFailAt.split(separator: ":", maxSplits: 3).map(String.init)
            guard parts.count >= 2, let rank = Int(parts[0]), let step = Int(parts[1]),
                  let mode = TrainerOptions.FailureMode(rawValue: parts.count > 2 ? parts[2] : "raise"),
                  (mode == .hangOnce) == (parts.count == 4) else {
                throw ValidationError("--test-fail-at \(testFailAt): expected RANK:STEP[:exit|raise|hang|hang-once:FILE|kill-in-checkpoint|nan|diverge|extra-collective|nan-weight]")
            }
            options.failure = (rank, step, mode)
            options.failureMarker = parts.count == 4 ? parts[3] : nil
        }
        let mpiCommunicator: MPICommunicator?
        do {
            mpiCommunicator = mpi || MPICommunicator.launchedByMPI ? try MPICommunicator() : nil
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        defer { mpiCommunicator?.finalize() }
        let allOverrides = overrides + (progress.map { ["metrics.progress=\($0)"] } ?? [])
        let load = { () throws -> ExperimentConfig in
            let experiment = try ExperimentConfig.load(path: config, overrides: allOverrides)
            mpiCommunicator?.timeout = experiment.number("training.collective_timeout_s")
            return experiment
        }
        // Worker threads: decided before the trainers start, the same on every rank (the fewest any
        // rank can run). A config that does not load gets one worker; the trainer says what is wrong.
        let readable = try? load()
        let environment = ProcessInfo.processInfo.environment
        var plan = WorkerPlan.resolve(requested: readable?.value("training.workers"), batchSize: readable?.integer("training.batch_size"),
                                      ranks: mpiCommunicator?.size ?? 1, budget: CPUBudget.current(environment: environment),
                                      environment: environment)
        if let mpiCommunicator, mpiCommunicator.size > 1 {
            do {
                let counts = try mpiCommunicator.allGather(withUnsafeBytes(of: Int64(plan.workers)) { Array($0) })
                let fewest = counts.map { $0.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) } }.min() ?? 1
                if Int(fewest) < plan.workers { plan.note += "; \(fewest), the fewest of any rank" }
                plan.workers = max(1, Int(fewest))
            } catch {
                printError("\(error)")
                throw ExitCode(2)
            }
        }
        if let readable, plan.workers > 1 {
            // Checked before any thread starts: a count that cannot share the batch is refused at once.
            do {
                let batch = readable.integer("training.batch_size"), ranks = mpiCommunicator?.size ?? 1
                let (world, overflow) = ranks.multipliedReportingOverflow(by: plan.workers)
                guard !overflow, world <= batch else {
                    throw SeqTrainError("""
                        training.workers = \(plan.workers): more replicas than the \(batch) rows of the global batch \
                        (training.batch_size) on \(ranks) rank(s); each replica needs a share of it: use "auto" \
                        or a count that divides the batch share of \(batch / max(ranks, 1))
                        """)
                }
                try requireEvenShare(batchSize: batch, world: world)
            } catch {
                printError("\(error)")
                throw ExitCode(2)
            }
        }
        if plan.workers > 1 && WorkerPlan.blasThreads(environment) == nil { BLASThreads.set(plan.blasThreads) }
        options.workerNote = plan.note
        // After MPI's start-up, so these handlers are the ones in place: SIGINT, SIGTERM and SIGHUP
        // stop the run after the current step, with a checkpoint (mpirun forwards them to the ranks).
        do { options.stopRequest = try SignalStopRequest.install() } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        let timeout = readable?.number("training.collective_timeout_s") ?? 300
        guard plan.workers > 1 else {
            let plain: Communicator = mpiCommunicator ?? SingleProcess()
            let status = Self.trainReplica(debug ? CheckedCommunicator(plain) : plain, load: load, options: options, mpi: mpiCommunicator)
            if status != 0 { throw ExitCode(status) }
            return
        }
        let group: WorkerGroup
        do { group = try WorkerGroup(size: plan.workers) } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        // One box per worker: each thread writes only its own.
        final class Status: @unchecked Sendable { var code: Int32 = 0 }
        let statuses = (0..<plan.workers).map { _ in Status() }
        _ = group.run(inner: mpiCommunicator, timeout: timeout) { worker in
            statuses[worker.worker].code = Self.trainReplica(debug ? CheckedCommunicator(worker) : worker, load: load, options: options,
                                                             mpi: mpiCommunicator, group: group)
        }
        if let code = statuses.map(\.code).max(), code != 0 { throw ExitCode(code) }
    }

    /// One replica's training (a rank, or a worker thread of one): returns its exit status. Start-up
    /// errors are agreed on by every replica and printed by replica 0; an error in training ends
    /// every rank at once (MPI), or stops the other workers of this process at their next collective.
    static func trainReplica(_ communicator: Communicator, load: () throws -> ExperimentConfig, options: TrainerOptions,
                             mpi: MPICommunicator?, group: WorkerGroup? = nil) -> Int32 {
        let world = communicator.size, rank = communicator.rank
        let trainer: Trainer
        do {
            trainer = try Trainer.start(config: load, communicator: communicator, options: options)
        } catch is WorkerGroup.Stopped {
            return 2
        } catch {
            if rank == 0 { printError("\(error)") }
            return 2
        }
        // The first worker of a process is the one that calls MPI.
        if communicator.writesSharedState { mpi?.activity = "training" }
        do {
            let summary = try trainer.run()
            if let signal = summary.stopSignal {
                // Printed even with --quiet: the run did not end where its config says.
                if rank == 0 {
                    let name = StopSignal.name(signal)
                    writeStandardError("stopped at step \(summary.steps) (signal \(name)); continue with --resume\n")
                }
                return StopSignal.exitStatus(signal)
            }
            if let paused = summary.pausedStep {
                if rank == 0 { print("paused at step \(paused) (--pause-at); continue with --resume") }
                return 0
            }
            if trainer.progressStyle != .none && rank == 0, let v = summary.validation {
                let metrics = v.metrics.map { String(format: ", %@ %.4f", String($0.name.dropFirst($0.name.hasPrefix("val_") ? 4 : 0)), $0.value) }.joined()
                print(String(format: "done: %d steps, validation loss %.4f", summary.steps, v.loss) + metrics)
            }
            return 0
        } catch is WorkerGroup.Stopped {
            return 2
        } catch {
            // Mid-training: this replica's error ends the job (every rank), or this process's workers.
            // Ranks are named; the worker threads of one process share its messages unnamed.
            printError(mpi.map { $0.size > 1 } == true ? "\(communicator.name(of: rank)): \(error)" : "\(error)")
            if let mpi, mpi.size > 1 { communicator.abort(code: 2) }
            group?.fail()
            return 2
        }
    }
}

func printError(_ message: String) {
    writeStandardError("error: \(message)\n")
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a char-LM checkpoint.")

    @OptionGroup var source: CheckpointSource

    @Option(help: "Text to start from.")
    var prime = ""

    @Option(help: "Characters to generate.")
    var length = 400

    @Option(help: "Softmax temperature; 0 means argmax.")
    var temperature = 0.8

    @Option(help: "Sample only among the k most likely characters; 0 means all.")
    var topK = 0

    @Option(help: "Seed of the draws: the same seed gives the same text.")
    var seed: UInt64 = 0

    /// A bound that no useful sample reaches (about 4 GB of text), so a mistyped length is refused.
    static let longestSample = 1_000_000_000

    func validate() throws {
        guard (0...Self.longestSample).contains(length) else {
            throw ValidationError("--length must be between 0 and \(Self.longestSample) characters, got \(length)")
        }
        guard temperature >= 0 && temperature.isFinite else { throw ValidationError("--temperature must be 0 or more, got \(temperature)") }
        guard topK >= 0 else { throw ValidationError("--top-k must be 0 or more, got \(topK)") }
    }

    func run() throws {
        try reporting {
            let loaded = try LoadedCharLM(path: source.resolved())
            // Written as it is generated: a long sample shows at once and is never held whole.
            print(prime, terminator: "")
            try loaded.sample(prime: prime, length: length, temperature: temperature, topK: topK, seed: seed) { part in
                print(part, terminator: "")
                fflush(stdout)
            }
            print()
        }
    }
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a checkpoint on data read as its training read it (char LM: loss and perplexity; classifiers: loss, accuracy, F1 ...).")

    @OptionGroup var source: CheckpointSource

    @Option(help: "Data files or globs to evaluate on (repeatable): text for a char LM, .npy/.csv/.tsv inputs for classifiers.")
    var data: [String] = []

    @Option(help: "Label files (.npy, .csv, .tsv) for the inputs, when the labels are not columns of the --data files.")
    var labels: [String] = []

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard !data.isEmpty else { throw ValidationError("--data is required: the data to evaluate on") }
    }

    func run() throws {
        try reporting {
            let (kind, path) = try ExperimentRegistry.kind(ofCheckpoint: source.resolved())
            let report = try kind.evaluate(path, data, labels)
            print(json ? report.json : report.text)
        }
    }
}

struct CheckGradients: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradcheck",
        abstract: "Check the configured model's gradients against finite differences on one real batch.",
        discussion: "Every parameter tensor: the largest gradients and an even spread of the others, each against the central difference of the loss of the first training batch (dropout masks included). Prints the worst relative error per tensor; fails (exit 2) above --threshold.")

    @Argument(help: "The experiment config.")
    var config: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a key: section.key=value (repeatable).", valueName: "section.key=value"))
    var overrides: [String] = []

    @Option(help: "Elements checked per tensor.")
    var samples = 8

    @Option(help: ArgumentHelp("Largest relative error that passes, counted beyond the finite differences' own "
                               + "uncertainty (their change when the step doubles); a wrong gradient term shows 1e-1 or more."))
    var threshold = 5e-2

    @Option(help: "Relative finite-difference step: h = step × max(1, |θ|).")
    var step = 1e-3

    @Option(help: ArgumentHelp("Test hook: NAME:FACTOR scales that tensor's analytic gradient.", visibility: .hidden))
    var testDistort: String?

    func validate() throws {
        guard samples >= 1 && samples <= 100_000 else { throw ValidationError("--samples \(samples): give 1 to 100000 elements per tensor") }
        guard threshold > 0 && threshold.isFinite else { throw ValidationError("--threshold \(threshold): give a positive number") }
        guard step >= 1e-6 && step <= 0.1 else {
            throw ValidationError("--step \(step): give 1e-6 to 0.1 (float32 resolves about 1e-7 of a value)")
        }
    }

    func run() throws {
        try reporting {
            let experiment = try ExperimentConfig.load(path: config, overrides: overrides)
            var distort: (name: String, factor: Float)?
            if let testDistort, let colon = testDistort.lastIndex(of: ":"), let factor = Float(testDistort[testDistort.index(after: colon)...]) {
                distort = (String(testDistort[..<colon]), factor)
            }
            let results = try GradientCheck.run(config: experiment, samples: samples, step: step, distort: distort)
            print(GradientCheck.table(results, threshold: threshold))
            let failed = results.filter { $0.error > threshold }
            guard failed.isEmpty else {
                let worst = String(format: "%.2e", failed.map(\.error).max() ?? 0)
                throw SeqTrainError("gradient check failed for \(failed.map(\.name).joined(separator: ", ")): "
                    + "relative error \(worst) above --threshold \(threshold)")
            }
            print(String(format: "gradient check passed: %d tensors, largest relative error %.2e (threshold %g)",
                         results.count, results.map(\.error).max() ?? 0, threshold))
        }
    }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an HTML report of one or more runs: curves overlaid, config differences, classifier tables.",
        discussion: "Self-contained (inline SVG, no script, no network): loss and validation loss, learning rate, gradient norm and throughput against the optimizer step, one colour per run; the config keys in which the runs differ; for classifiers the per-class table and the confusion matrix of the last validation.")

    @Argument(help: "Run directories (their metrics.jsonl and config.toml).")
    var runs: [String]

    @Option(help: "The HTML file to write.")
    var out = "report.html"

    @Option(help: "Also write each chart as a standalone SVG file into this directory.")
    var svg: String?

    func run() throws {
        try reporting {
            try OutputFiles.refuseRunFile(out)
            var files = [(path: out, bytes: Data(try RunReport.html(runs: runs).utf8))]
            if let svg {
                do {
                    try FileManager.default.createDirectory(atPath: svg, withIntermediateDirectories: true)
                } catch {
                    throw SeqTrainError("--svg \(svg): cannot create the directory: \(describeFileError(error))")
                }
                for file in try RunReport.svgFiles(runs: runs) {
                    try OutputFiles.refuseRunFile("\(svg)/\(file.name)", option: "--svg")
                    files.append(("\(svg)/\(file.name)", Data(file.svg.utf8)))
                }
            }
            // The page and its charts together, or none of them.
            try OutputFiles.write(files)
            print("report: \(out) (\(RunReport.runDirectories(runs).count) run(s))")
            for file in files.dropFirst() { print("chart: \(file.path)") }
        }
    }
}

struct Debug: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a config for a few steps on N ranks of this machine with every check of --debug, and say whether the ranks agree.",
        discussion: "Starts mpirun itself (oversubscribed when N exceeds the cores, as root when run as root), one BLAS thread per rank, into a temporary run directory. The first thing to run before a multi-node job.")

    @Argument(help: "The experiment config.")
    var config: String

    @Option(name: .short, help: "Ranks.")
    var n = 2

    @Option(help: "Training steps.")
    var steps = 5

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a key: section.key=value (repeatable).", valueName: "section.key=value"))
    var overrides: [String] = []

    @Option(help: ArgumentHelp("Test hook passed to every rank (see train --test-fail-at).", visibility: .hidden))
    var testFailAt: String?

    func validate() throws {
        guard (1...256).contains(n) else { throw ValidationError("-n \(n): give 1 to 256 ranks") }
        guard (1...10_000).contains(steps) else { throw ValidationError("--steps \(steps): give 1 to 10000 steps (debug runs a few)") }
    }

    func run() throws {
        let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let runDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("seqtrain-debug-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: runDirectory) }
        var command = ["mpirun", "-n", "\(n)", "-x", "OPENBLAS_NUM_THREADS=1"]
        if n > ProcessInfo.processInfo.activeProcessorCount { command += ["--oversubscribe", "--bind-to", "none"] }
        if getuid() == 0 { command.append("--allow-run-as-root") }
        command += [binary, "train", config, "--debug", "--progress", "lines", "--set", "training.max_steps=\(steps)", "--set", "job.run_dir=\(runDirectory)"]
        command += overrides.flatMap { ["--set", $0] }
        if let testFailAt { command += ["--test-fail-at", testFailAt] }
        print("debug: " + command.joined(separator: " "))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        let errors = Pipe()
        process.standardError = errors
        do { try process.run() } catch {
            printError("cannot start mpirun (\(error)); install Open MPI (./launch/setup does)")
            throw ExitCode(2)
        }
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        writeStandardError(text)
        let logs = (0..<n).compactMap { rank -> String? in
            guard let log = try? String(contentsOfFile: "\(runDirectory)/rank-\(rank).log", encoding: .utf8) else { return nil }
            return "rank \(rank): " + (log.split(separator: "\n").last.map(String.init) ?? "(no step finished)")
        }
        if !logs.isEmpty { print("last step logged per rank:\n" + logs.joined(separator: "\n")) }
        if process.terminationStatus == 0 {
            print("verdict: the \(n) ranks agree: \(steps) steps, every collective matched and every rank's parameters equal rank 0's after each step")
        } else {
            let reasons = text.split(separator: "\n").filter { $0.contains("error:") }.map { String($0) }
            print("verdict: the ranks do not agree" + (reasons.isEmpty ? " (mpirun exited with \(process.terminationStatus))" : ":\n" + reasons.joined(separator: "\n")))
            throw ExitCode(2)
        }
    }
}

struct ShowConfig: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config", abstract: "Print an experiment's resolved config (every key, defaults filled in), or one key.")

    @Argument(help: "The experiment config.")
    var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a key: section.key=value (repeatable).", valueName: "section.key=value"))
    var overrides: [String] = []

    @Option(help: "Print only this key's value (e.g. job.run_dir), unquoted.")
    var get: String?

    @Flag(help: "Print every key with its type, default and meaning as Markdown tables (the README's).")
    var keys = false

    @Option(help: "With --keys: only the keys of this model.kind (common ones included).")
    var kind: String?

    func validate() throws {
        if config == nil && !keys { throw ValidationError("give a config file, or --keys for the table of every key") }
        if let kind, ExperimentRegistry.kind(named: kind) == nil {
            throw ValidationError("--kind \(kind): not a model.kind; the kinds are \(ExperimentRegistry.kinds.map(\.name).joined(separator: ", "))")
        }
    }

    func run() throws {
        if keys {
            print(ConfigSchema.markdownTable(kind: kind))
            return
        }
        guard let config else { return }
        try reporting {
            let experiment = try ExperimentConfig.load(path: config, overrides: overrides)
            guard let get else { print(experiment.resolvedTOML, terminator: ""); return }
            guard experiment.has(get) else { throw SeqTrainError("--get \(get): no such key; keys look like section.key, e.g. job.run_dir") }
            switch experiment.value(get) {
            case .text(let s): print(s)
            case .texts(let list): print(list.joined(separator: "\n"))
            case let other: print(other)
            }
        }
    }
}
