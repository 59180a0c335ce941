import Foundation

public struct TrainerOptions {
    /// Start over in a run directory that already holds a run (its files seqtrain wrote are deleted: RunFiles).
    public var overwrite = false
    /// Continue from the newest checkpoint of the run directory.
    public var resume = false
    /// Print progress (rank 0).
    public var quiet = false
    /// Print the training doctor's warnings (`--no-doctor` turns them off; refusals stay).
    public var doctor = true
    /// `--debug`: after each step every rank compares its parameters with rank 0's, gradients are
    /// checked for NaN and infinity tensor by tensor, and each rank logs its phases to rank-R.log.
    /// (Collectives are checked by wrapping the communicator in a CheckedCommunicator.)
    public var debug = false
    /// Test hook: rank `rank` fails at step `step`: exits, throws, or hangs (for the watchdog);
    /// `hangOnce` hangs only when `failureMarker` does not exist yet, creating it (a job that is
    /// stopped there and started again then runs through).
    public var failure: (rank: Int, step: Int, mode: FailureMode)?
    public var failureMarker: String?
    public enum FailureMode: String {
        case exit, raise, hang, hangOnce = "hang-once", killInCheckpoint = "kill-in-checkpoint"
        /// This rank's loss of that step becomes NaN (the step is then skipped or stops the run).
        case nonFinite = "nan"
        /// This rank's parameters drift from the others' after that step's update.
        case diverge
        /// This rank calls one collective more than the others at that step.
        case extraCollective = "extra-collective"
        /// Before that step, this rank sets one weight of the last recurrent layer (or last linear) to NaN.
        case nanWeight = "nan-weight"
    }
    /// Test hook: every rank appends "step lane first-input last-input" lines for each of its
    /// batch rows to `trace-rank<r>.txt` in this directory.
    public var traceDirectory: String?
    /// Why the run has the workers it has ("training.workers = \"auto\": 2 usable CPUs"), for its first line.
    public var workerNote: String?
    /// Asks the run to stop after the current step (the train command's signal handlers): every
    /// replica stops after the same step, with a checkpoint there.
    public var stopRequest: StopRequest?
    /// Ends the run after this step with a checkpoint there, as a stop request would, without
    /// touching `training.max_steps` (the schedule keeps its length): a sweep's rungs pause trials
    /// here and continue the survivors with `--resume`, which then train as one uninterrupted run.
    public var pauseAtStep: Int?
    /// Rank 0's clock for `checkpoint.every_seconds`, in seconds.
    public var clock: () -> Double = { Benchmark.now() }
    public init() {}
}

public struct TrainingSummary {
    public var steps = 0
    public var finalLoss = Double.nan
    public var validationLoss: Double?
    public var lastCheckpoint: String?
    public var losses: [Double] = []  // every step's global training loss
    /// The last validation's loss, metrics and report.
    public var validation: ValidationResult?
    /// The signal that stopped the run before its last step (a checkpoint was written there).
    public var stopSignal: Int32?
    /// `pauseAtStep` ended the run before its last step (a checkpoint was written there).
    public var pausedStep: Int?
    /// Early stopping ended the run at this step (before its step limit).
    public var earlyStoppedStep: Int?
    /// The best validation's step and monitored figure (`training.early_stopping.monitor`).
    public var bestStep: Int?
    public var bestValue: Double?
    /// The step whose weights the run ended with, when `restore_best` put them back.
    public var restoredStep: Int?
}

/// Which limit ends the run: `training.epochs` ("auto": 1, or none when `training.max_steps` is
/// given) and `training.max_steps`, the first reached.
struct TrainingLimits {
    let totalSteps: Int
    /// For the run's first lines: "stops after 200 steps (training.max_steps)".
    let note: String

    init(_ config: ExperimentConfig, batchesPerEpoch: Int) {
        let maxSteps = config.integer("training.max_steps")
        var epochs: Int?
        if case .integer(let given) = config.value("training.epochs") { epochs = given } else if maxSteps == 0 { epochs = 1 }
        // Epochs × batches saturates: a huge epoch count means "until max_steps", never a trap.
        let epochSteps = epochs.map { e in
            let (product, overflow) = e.multipliedReportingOverflow(by: batchesPerEpoch)
            return overflow ? Int.max : product
        }
        let epochText = epochs.map { "training.epochs = \($0) of \(batchesPerEpoch) batches" } ?? ""
        switch (epochSteps, maxSteps > 0 ? maxSteps : nil) {
        case let (byEpochs?, bySteps?):
            totalSteps = min(byEpochs, bySteps)
            note = bySteps <= byEpochs
                ? "stops after \(bySteps) steps (training.max_steps, before \(epochText))"
                : "stops after \(byEpochs) steps (\(epochText), before training.max_steps = \(bySteps))"
        case let (nil, bySteps?):
            totalSteps = bySteps
            note = "stops after \(bySteps) steps (training.max_steps; epochs unbounded)"
        case let (byEpochs?, nil):
            totalSteps = byEpochs
            note = "stops after \(byEpochs) steps (\(epochText))"
        case (nil, nil):
            totalSteps = batchesPerEpoch
            note = "stops after \(batchesPerEpoch) steps (one epoch)"
        }
    }
}

/// What every replica must decide alike after a step, carried as extra elements of the step's
/// loss-totals all-reduce rather than in a collective of its own: a stop (one count per signal,
/// so every replica names the same one, whichever replicas received it) and a checkpoint that
/// `checkpoint.every_seconds` asks for (rank 0's clock: wall time differs across ranks).
struct StepVotes {
    static let signals: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    /// This replica's votes, to append to its totals.
    static func local(signal: Int32, checkpointDue: Bool) -> [Double] {
        signals.map { $0 == signal ? 1 : 0 } + [checkpointDue ? 1 : 0]
    }

    let stopSignal: Int32?
    let checkpointDue: Bool

    /// From the summed votes (the all-reduced totals after the loss figures).
    init(summed: ArraySlice<Double>) {
        let votes = Array(summed)
        stopSignal = zip(Self.signals, votes).first { $0.1 > 0 }?.0
        checkpointDue = votes.count == Self.signals.count + 1 && votes[Self.signals.count] > 0
    }
}

/// The training loop, written once: data shard, forward/backward, gradient all-reduce, scaling by
/// the global count, clipping, optimizer and schedule, validation, metrics, checkpoints.
public final class Trainer {
    public let config: ExperimentConfig
    public let communicator: Communicator
    public let options: TrainerOptions
    /// The experiment kind on this rank (data share, model, loss, metrics).
    public let experiment: Experiment
    let optimizer: Optimizer
    var schedule: LearningRateSchedule
    let totalSteps: Int
    /// Which limit ends the run, for its first lines.
    let limitNote: String
    let runDirectory: String
    /// `[training.early_stopping]` and `checkpoint.keep_best`.
    let earlyStopping: EarlyStoppingSettings
    /// The best monitored figure so far (in the checkpoint's state).
    var tracker: BestTracker

    var step = 0            // optimizer steps taken
    var epoch = 0
    var batchInEpoch = 0
    var lastValidation: ValidationResult?
    /// What `--resume` found (printed under the run's first lines).
    public private(set) var resumeNote: String?
    /// How progress is printed on rank 0 (`metrics.progress`, `--progress`, `--quiet`), resolved.
    public let progressStyle: ProgressStyle

    let reducer: GradientReducer
    var prepared = false
    /// Rank 0's hold on the run directory, from `prepare` to the end of `run`.
    var lock: RunDirectoryLock?
    /// Rank 0's TensorBoard event file (`metrics.tensorboard`).
    var tensorboard: TensorBoardWriter?
    /// This rank's Chrome trace (`metrics.timeline`).
    var timeline: Timeline?
    /// Steps whose update was skipped (training.on_nonfinite = "skip"): in all, and in a row.
    var skippedSteps = 0, skippedInARow = 0
    /// The training loss since the last metrics line. In the checkpoint's state: a checkpoint
    /// between two lines (a signal, checkpoint.every_seconds) resumes to the same logged mean.
    var lossWindow = LossTotal()
    /// The training doctor's findings: before training, and the frozen-learning detector's.
    public private(set) var diagnoses: [String] = []
    var frozen = FrozenLearningDetector()
    /// The rules `doctor.silence` names, and the watch for overfitting (the kinds watch their own).
    let silenced: Set<DoctorRule>
    var overfitting: OverfittingDetector
    /// The training losses since the last validation, for the overfitting watch.
    var lossSinceValidation = LossTotal()
    /// `--resume` of a run that early stopping had already ended: nothing is trained or logged again.
    var resumedStopped = false

    /// Creates the trainer on every rank and runs the start-up checks as one agreed step: a failure
    /// on any rank (a bad config, missing data, a mismatch with rank 0) is an error on every rank.
    public static func start(config load: () throws -> ExperimentConfig, communicator: Communicator,
                             options: TrainerOptions = TrainerOptions()) throws -> Trainer {
        var trainer: Trainer?
        try communicator.agree { trainer = try Trainer(config: load(), communicator: communicator, options: options) }
        try trainer!.prepare()
        return trainer!
    }

    public init(config: ExperimentConfig, communicator: Communicator = SingleProcess(), options: TrainerOptions = TrainerOptions()) throws {
        self.config = config
        self.communicator = communicator
        self.options = options
        FloatEnvironment.flushDenormals()
        guard let kind = ExperimentRegistry.kind(named: config.kind) else { throw SeqTrainError("model.kind = \"\(config.kind)\" is not a known kind") }
        silenced = try DoctorRule.silenced(config)
        experiment = try kind.make(config, communicator.rank, communicator.size)
        let parameters = experiment.trainableModel.parameters
        parameters.initialize(seed: UInt64(config.integer("job.seed")))
        optimizer = Optimizer(config.optimizerSettings, parameterCount: parameters.count)
        let limits = TrainingLimits(config, batchesPerEpoch: experiment.batchesPerEpoch)
        totalSteps = limits.totalSteps
        limitNote = limits.note
        earlyStopping = try EarlyStoppingSettings(config, validationMetricNames: experiment.validationMetricNames)
        if earlyStopping.isEnabled && !experiment.hasValidation {
            throw SeqTrainError("training.early_stopping.patience = \(earlyStopping.patience): this run has no validation data"
                + " to watch; give the kind's validation data (e.g. data.validation_fraction) or set patience = 0")
        }
        tracker = BestTracker(mode: earlyStopping.mode)
        overfitting = OverfittingDetector(earlyStopping)
        schedule = LearningRateSchedule(config: config, totalSteps: totalSteps)
        runDirectory = config.runDirectory
        progressStyle = options.quiet ? .none : (ProgressStyle(rawValue: config.text("metrics.progress")) ?? .auto).resolved()
        reducer = GradientReducer(communicator: communicator, arena: parameters)
        if reducer.isActive {
            for stack in experiment.trainableModel.recurrentStacks { stack.progressHook = { [reducer] in reducer.progress() } }
            // Backward tells the arena as each layer's gradients are final: their all-reduce starts then.
            parameters.onGradientsFinished = { [weak reducer] in reducer?.ready(from: $0) }
        }
    }

    /// Start-up, on every rank: the config, model layout and data must match rank 0's; rank 0's
    /// parameters are broadcast; the run directory is prepared; a resumed run loads its checkpoint.
    public func prepare() throws {
        guard !prepared else { return }
        prepared = true
        if communicator.size > 1 {
            let parameters = experiment.trainableModel.parameters
            // The worker threads of a process use one copy of the parameters and optimizer state.
            let shared = try communicator.shareWithinProcess([parameters.values] + optimizer.stateBuffers)
            parameters.useValues(shared[0])
            optimizer.useState(Array(shared.dropFirst()))
            try checkAgreementWithRankZero()
            var bytes = parameters.values.array.withUnsafeBytes { Array($0) }
            try communicator.broadcast(&bytes, root: 0)
            if communicator.writesSharedState {
                bytes.withUnsafeBytes { raw in parameters.values.pointer.update(from: raw.bindMemory(to: Float.self).baseAddress!, count: parameters.count) }
            }
            try communicator.synchronizeProcess()
        }
        try communicator.agree { try prepareRunDirectory() }
        if options.resume {
            try communicator.agree { try restoreNewestCheckpoint() }
            try communicator.synchronizeProcess()
        }
    }

    /// What must be equal on every rank, as text: the resolved config, the layout, the data.
    var identity: String {
        config.resolvedPairs.map { "\($0.0) = \($0.1)" }.joined(separator: "\n")
            + "\nlayout = \(experiment.trainableModel.parameters.layout.signature)\ndata = \(experiment.dataFingerprint)"
    }

    func checkAgreementWithRankZero() throws {
        var reference = Array(identity.utf8)
        try communicator.broadcast(&reference, root: 0)
        let theirs = String(decoding: reference, as: UTF8.self).components(separatedBy: "\n")
        let mine = identity.components(separatedBy: "\n")
        try communicator.agree {
            guard theirs != mine else { return }
            let difference = zip(mine, theirs).first { $0.0 != $0.1 }
            if let (here, _) = difference, here.hasPrefix("data = ") {
                throw SeqTrainError(experiment.dataMismatchHint)
            } else if let (here, there) = difference {
                throw SeqTrainError("its configuration differs from \(communicator.name(of: 0))'s: \(here) here, \(there.split(separator: "=", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? there) on \(communicator.name(of: 0))")
            }
            throw SeqTrainError("its configuration differs from \(communicator.name(of: 0))'s")
        }
    }

    var isLeader: Bool { communicator.rank == 0 }

    /// The run's first line: ranks, workers per rank, BLAS threads per worker (and why that many).
    var participantsLine: String {
        let threads = BLASThreads.current
        return "seqtrain: \(communicator.participantsSummary) per rank, \(threads) BLAS thread\(threads == 1 ? "" : "s") per worker"
            + (options.workerNote.map { " (\($0))" } ?? "")
    }

    // MARK: run directory

    /// Checks (before anything is written) that the run directory may be used, locks it for this
    /// run, removes what interrupted writes left (and with --overwrite the previous run's files),
    /// and writes the resolved config.
    func prepareRunDirectory() throws {
        guard isLeader else { return }
        let fm = FileManager.default
        // Before the lock file is made in it: a folder holding the user's own config.toml is no run directory.
        try RunFiles.refuseForeignConfig(in: runDirectory)
        do {
            try fm.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        } catch {
            throw SeqTrainError("job.run_dir = \(runDirectory): cannot create the run directory: "
                + describeFileError(error))
        }
        lock = try RunDirectoryLock(directory: runDirectory)
        do {
            try prepareLockedRunDirectory()
        } catch {
            lock?.release()
            lock = nil
            throw error
        }
    }

    /// prepareRunDirectory's part under the lock.
    func prepareLockedRunDirectory() throws {
        let fm = FileManager.default
        let metrics = "\(runDirectory)/\(RunFiles.metricsName)"
        let removed = Checkpoint.removeLeftovers(runDirectory)
        let incomplete = Set(removed.filter { $0.hasPrefix("step-") }.map { String($0.prefix("step-00000000".count)) })
        for stem in incomplete.sorted() {
            printWarning("\(runDirectory)/checkpoints/\(stem): an incomplete checkpoint (its write was interrupted: no manifest); removed")
        }
        let occupied = fm.fileExists(atPath: metrics) || !Checkpoint.list(runDirectory).isEmpty
        if occupied && !options.overwrite && !options.resume {
            throw SeqTrainError("\(runDirectory) already holds a run (metrics.jsonl or checkpoints); pass --resume to continue it, --overwrite to start over, or choose another job.run_dir")
        }
        if options.overwrite && !options.resume {
            try RunFiles.refuseNestedRuns(below: runDirectory)
            // Only seqtrain's own files go, so the new run's events are not mixed with the old run's.
            print(try RunFiles.removeOwnFiles(runDirectory).line(runDirectory))
        }
        do {
            try fm.createDirectory(atPath: "\(runDirectory)/checkpoints", withIntermediateDirectories: true)
        } catch {
            throw SeqTrainError("\(runDirectory)/checkpoints: cannot create the directory: \(describeFileError(error))")
        }
        let header = "\(RunFiles.configMarker)\n# \(BLASKernelSelection.summary)\n# \(participantsLine)\n"
        try DurableFile.write(Data((header + config.resolvedTOML).utf8), to: "\(runDirectory)/\(RunFiles.configName)")
    }

    // MARK: the loop

    public func run() throws -> TrainingSummary {
        defer { lock?.release(); lock = nil }
        try prepare()
        let parameters = experiment.trainableModel.parameters
        let progress = isLeader && progressStyle != .none
            ? ProgressReporter(totalSteps: totalSteps, unit: experiment.unitName, interactive: progressStyle == .bar) : nil
        if isLeader && config.boolean("metrics.tensorboard") && tensorboard == nil {
            let writer = try TensorBoardWriter(directory: "\(runDirectory)/tensorboard")
            if step > 0 { try writer.restart(at: step) }
            try writer.text("config", "```\n" + config.resolvedTOML + "\n```", step: step)
            tensorboard = writer
        }
        if (config.boolean("metrics.timeline") || options.debug) && timeline == nil {
            // Rank 0 made the directory in prepare(); every rank writes its own files.
            timeline = try Timeline(directory: runDirectory, rank: communicator.rank, trace: config.boolean("metrics.timeline"), log: options.debug)
        }
        diagnoses = TrainingDoctor.examine(config) + experiment.diagnoses
        if isLeader && options.doctor { for text in diagnoses { printWarning("doctor: \(text)") } }
        frozen = FrozenLearningDetector(window: min(100, max(20, totalSteps / 3)))
        if let progress {
            progress.message(participantsLine)
            progress.message(BLASKernelSelection.summary)
            progress.message("\(experiment.summary); \(totalSteps) steps on \(communicator.size) replica(s) (\(communicator.participantsSummary))")
            progress.message(limitNote + (earlyStopping.isEnabled
                ? "; or earlier, after \(earlyStopping.patience) validation(s) without a better \(earlyStopping.monitor)"
                    + " (training.early_stopping)" : ""))
            if let resumeNote { progress.message(resumeNote) }
        }
        var summary = TrainingSummary()
        let logEvery = config.integer("metrics.log_every"), evalEvery = config.integer("training.eval_every")
        let interval = config.integer("checkpoint.interval"), everySeconds = config.number("checkpoint.every_seconds")
        // Only rank 0's clock decides; the others' never reads it.
        let timesCheckpoints = isLeader && everySeconds > 0
        var lastCheckpointTime = timesCheckpoints ? options.clock() : 0
        let clipNorm = Float(config.number("training.clip_norm")), clipValue = Float(config.number("training.clip_value"))
        let skipNonFinite = config.text("training.on_nonfinite") == "skip", maxSkipped = config.integer("training.max_skipped_steps")
        var windowTokens = 0.0, windowStart = Benchmark.now()
        let runStart = Benchmark.now()
        if batchInEpoch == 0 { experiment.beginEpoch(epoch) }
        // Resumed at or past the pause: nothing to train before it.
        if let pause = options.pauseAtStep, step >= pause, step < totalSteps, tracker.stoppedStep == nil {
            summary.pausedStep = step
        }

        while step < totalSteps && tracker.stoppedStep == nil && summary.pausedStep == nil {
            if let failure = options.failure, failure.rank == communicator.rank, failure.step == step,
               ![.killInCheckpoint, .nonFinite, .diverge, .extraCollective, .nanWeight].contains(failure.mode) {
                switch failure.mode {
                case .exit:
                    // As a crash would: no exit handlers while the other workers of this process run.
                    fflush(stdout)
                    _exit(3)
                case .hang: while true { sleep(1) }
                case .raise: throw SeqTrainError("test hook: \(communicator.name(of: communicator.rank)) fails at step \(step)")
                case .killInCheckpoint, .nonFinite, .diverge, .extraCollective, .nanWeight: break
                case .hangOnce:
                    if let marker = options.failureMarker, !FileManager.default.fileExists(atPath: marker) {
                        _ = FileManager.default.createFile(atPath: marker, contents: Data("\(getpid())\n".utf8))
                        while true { sleep(1) }
                    }
                }
            }
            try communicator.beginStep(step)
            if let failure = options.failure, failure.mode == .nanWeight, failure.rank == communicator.rank, failure.step == step,
               let target = parameters.layout.entries.last(where: { $0.name.contains("weight_hh") })
                ?? parameters.layout.entries.last(where: { $0.name.hasSuffix(".weight") }) {
                parameters.value(target).pointee = .nan
            }
            timeline?.start()
            let stepNumber = step + 1
            parameters.zeroGradients()
            reducer.beginStep()
            let (local, tokens) = try experiment.accumulateGradient(batch: batchInEpoch, epoch: epoch, step: step,
                                                                    lap: { [timeline] in timeline?.lap($0, step: stepNumber) })
            try reducer.finish()
            timeline?.lap("allreduce_wait", step: stepNumber)
            if options.debug && config.text("training.on_nonfinite") == "stop" {
                // This rank's forward, layer by layer, then the summed gradients in backward order.
                for (name, buffer) in experiment.trainableModel.forwardOutputs {
                    let bad = UnsafeBufferPointer(start: buffer.pointer, count: buffer.count).reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
                    if bad > 0 {
                        throw SeqTrainError("step \(stepNumber): the \(name) holds \(bad) NaN or infinite value(s) on \(communicator.name(of: communicator.rank)), the first layer of the forward pass to do so (--debug)")
                    }
                }
                if let (name, count) = parameters.firstNonFiniteGradient() {
                    throw SeqTrainError("step \(stepNumber): the summed gradient of \(name) holds \(count) NaN or infinite value(s), the first tensor of the backward pass to do so (--debug)")
                }
            }
            if let failure = options.failure, failure.mode == .extraCollective, failure.rank == communicator.rank, failure.step == step {
                var extra = [UInt8](repeating: 0, count: 8)
                try communicator.broadcast(&extra, root: 0)
            }
            if let dir = options.traceDirectory {
                try append(experiment.traceLines(step: step), to: "\(dir)/trace-rank\(communicator.rank).txt")
            }
            let checkpointDue = timesCheckpoints && options.clock() - lastCheckpointTime >= everySeconds
            var totals = [local.sum, local.count, Double(tokens)]
                + StepVotes.local(signal: options.stopRequest?.signal ?? 0, checkpointDue: checkpointDue)
            if let failure = options.failure, failure.mode == .nonFinite, failure.rank == communicator.rank, failure.step == step { totals[0] = .nan }
            try communicator.allReduceSum(&totals)
            timeline?.lap("loss_totals", step: stepNumber)
            let global = LossTotal(sum: totals[0], count: totals[1])
            let votes = StepVotes(summed: totals[3...])
            // The arena holds the gradient of the loss sum: 1/count normalizes it and the clipping
            // coefficient scales it, both applied inside the optimizer's pass.
            let normalization: Float = global.count > 0 ? Float(1 / global.count) : 1
            let (gradientNorm, clipping) = GradientClipping.clippingCoefficient(parameters, gradientScale: normalization, maxNorm: clipNorm)
            // Every rank sees the same global figures, so every rank stops, or skips, here alike.
            let finite = global.mean.isFinite && gradientNorm.isFinite
            if !finite && (!skipNonFinite || skippedInARow + 1 > maxSkipped) {
                let skipped = skipNonFinite ? " after \(skippedInARow) skipped step(s) in a row (training.max_skipped_steps = \(maxSkipped))" : ""
                throw SeqTrainError("step \(step + 1): the training loss is \(global.mean) and the gradient norm \(gradientNorm)\(skipped): training diverged before this update, which was not applied (checkpoints already written are kept); lower optimizer.lr, set training.clip_norm, or add lr_scheduler.warmup_steps")
            }
            skippedInARow = finite ? 0 : skippedInARow + 1
            skippedSteps += finite ? 0 : 1
            var gradientScale = normalization * clipping
            // All of the arena for a rank; a worker thread updates its slice of the shared one.
            let share = communicator.updateRange(count: parameters.count)
            if clipValue > 0 {
                // clip_grad_value_ clamps the normalized gradients themselves.
                scaleInPlace(parameters.gradients.pointer + share.lowerBound, by: gradientScale, count: share.count)
                GradientClipping.clipValue(parameters, range: share, clip: clipValue)
                gradientScale = 1
            }
            let lr = schedule.rate(step: step)
            if finite { optimizer.step(parameters, range: share, learningRate: Float(lr), gradientScale: gradientScale) }
            // Every slice is written before any worker reads the parameters again.
            try communicator.synchronizeProcess()
            if let failure = options.failure, failure.mode == .diverge, failure.rank == communicator.rank, failure.step == step,
               let last = parameters.layout.entries.last {
                parameters.value(last).pointee += 1e-3
            }
            timeline?.lap("optimizer", step: stepNumber)
            if options.debug {
                try checkParametersAgree(step: stepNumber)
                timeline?.lap("fingerprint", step: stepNumber)
            }
            step += 1
            summary.losses.append(global.mean)
            if finite { lossWindow = lossWindow + global }
            if !silenced.contains(.frozenLearning),
               let finding = frozen.observe(step: step, loss: global.mean, parameters: parameters) {
                report([DoctorFinding(.frozenLearning, finding)])
            }
            if finite { lossSinceValidation = lossSinceValidation + global }
            windowTokens += totals[2]

            batchInEpoch += 1
            if batchInEpoch == experiment.batchesPerEpoch {
                batchInEpoch = 0
                epoch += 1
                experiment.beginEpoch(epoch)
            }

            var validated: ValidationResult?
            if (evalEvery > 0 && step % evalEvery == 0) || step == totalSteps {
                validated = try validate()
                timeline?.lap("validation", step: stepNumber)
            }
            // Every replica holds the same all-reduced figures, so every replica decides alike here.
            var newBest = false
            if let validated {
                let trainingLoss = lossSinceValidation.count > 0 ? lossSinceValidation.mean : Double.nan
                var findings = experiment.diagnose(validated, step: step, totalSteps: totalSteps)
                if let value = BestTracker.value(of: validated, monitor: earlyStopping.monitor),
                   let finding = overfitting.observe(step: step, value: value, trainingLoss: trainingLoss) {
                    findings.append(finding)
                }
                report(findings)
                lossSinceValidation = LossTotal()
            }
            if let validated, let value = BestTracker.value(of: validated, monitor: earlyStopping.monitor) {
                newBest = tracker.observe(value, step: step, settings: earlyStopping)
                if earlyStopping.isEnabled && tracker.wait >= earlyStopping.patience && step < totalSteps {
                    tracker.stoppedStep = step
                }
            }
            if step % logEvery == 0 || validated != nil || step == totalSteps {
                let seconds = Benchmark.now() - windowStart
                let tokensPerSecond = windowTokens / max(seconds, 1e-9)
                if isLeader {
                    try appendMetrics(loss: lossWindow.mean, validationLoss: validated, lr: lr, gradientNorm: Double(gradientNorm),
                                      tokensPerSecond: tokensPerSecond, seconds: Benchmark.now() - runStart)
                }
                progress?.update(step: step, loss: lossWindow.mean, unitsPerSecond: tokensPerSecond, validation: validated)
                lossWindow = LossTotal(); windowTokens = 0; windowStart = Benchmark.now()
            }
            timeline?.lap("metrics", step: stepNumber)
            // A stop at the last step is simply the end of the run.
            let ending = step == totalSteps || tracker.stoppedStep != nil
            // Every replica counts the same steps, so every replica pauses here alike.
            let pausing = options.pauseAtStep == step && !ending
            let stopping = (votes.stopSignal != nil || pausing) && step < totalSteps
            let marksBest = newBest && earlyStopping.keepsBestCheckpoint
            // The run's last checkpoint holds the weights it ends with.
            if ending { summary.restoredStep = try restoreBestWeights(progress: progress) }
            if stopping {
                // Agreed: no rank ends (and has its launcher end the job) while rank 0 still writes.
                try communicator.agree { summary.lastCheckpoint = try writeCheckpoint(best: marksBest) }
                timeline?.lap("checkpoint", step: stepNumber)
            } else if (interval > 0 && step % interval == 0) || ending || votes.checkpointDue || marksBest {
                summary.lastCheckpoint = try writeCheckpoint(best: marksBest)
                if timesCheckpoints { lastCheckpointTime = options.clock() }
                timeline?.lap("checkpoint", step: stepNumber)
            }
            try timeline?.flush(step: stepNumber, note: options.debug && communicator.size > 1 ? "; parameters agree with rank 0" : "")
            summary.finalLoss = global.mean
            if stopping {
                summary.stopSignal = votes.stopSignal
                if votes.stopSignal == nil { summary.pausedStep = step }
                break
            }
        }
        progress?.finish()
        if isLeader && (summary.restoredStep != nil || (tracker.stoppedStep != nil && !resumedStopped)) {
            try appendEarlyStop(restored: summary.restoredStep)
        }
        if let stopped = tracker.stoppedStep {
            summary.earlyStoppedStep = stopped
            progress?.message("early stopping: no better \(earlyStopping.monitor) for \(tracker.wait) validation(s);"
                + " stopped at step \(stopped), best step \(tracker.bestStep ?? 0) (\(earlyStopping.monitor)"
                + " \(tracker.best))" + (summary.restoredStep != nil ? ", its weights restored" : ""))
        }
        summary.bestStep = tracker.bestStep
        summary.bestValue = tracker.bestStep != nil ? tracker.best : nil
        summary.steps = step
        summary.validationLoss = lastValidation?.loss
        summary.validation = lastValidation
        let finished = step == totalSteps || tracker.stoppedStep != nil
        if isLeader, let report = lastValidation, finished, !resumedStopped { try writeReport(report, progress: progress) }
        if let progress, let path = summary.lastCheckpoint { progress.message("checkpoint: \(path)") }
        return summary
    }

    /// `--debug`: every tensor's CRC-32 on every rank against rank 0's; the first difference stops
    /// every rank, naming the step, the rank and the tensor.
    func checkParametersAgree(step: Int) throws {
        guard communicator.size > 1 else { return }
        let parameters = experiment.trainableModel.parameters
        var sums: [UInt8] = []
        for ref in parameters.layout.entries {
            let crc = UnsafeRawBufferPointer(start: parameters.value(ref), count: ref.count * 4)
            sums += Array(DurableFile.checksum(crc).utf8)
        }
        let all = try communicator.allGather(sums)
        for (rank, theirs) in all.enumerated().dropFirst() where theirs != all[0] {
            let differing = parameters.layout.entries.indices.filter { k in theirs[(k * 8)..<(k * 8 + 8)] != all[0][(k * 8)..<(k * 8 + 8)] }
            let names = differing.map { parameters.layout.entries[$0].name }
            throw SeqTrainError("step \(step): \(communicator.name(of: rank))'s parameters differ from \(communicator.name(of: 0))'s, first in \(names.first ?? "?")\(names.count > 1 ? " (and \(names.count - 1) more tensor(s))" : "") (--debug)")
        }
    }

    /// The findings of the rules that watch training, but those `doctor.silence` names and those
    /// already reported: kept in `diagnoses` and printed by rank 0 (unless --no-doctor).
    func report(_ findings: [DoctorFinding]) {
        for finding in findings where !silenced.contains(finding.rule) && !diagnoses.contains(finding.text) {
            diagnoses.append(finding.text)
            if isLeader && options.doctor { printWarning("doctor: \(finding.text)") }
        }
    }

    /// Global validation figures (every rank takes part); the loss feeds reduce-on-plateau.
    func validate(observe: Bool = true) throws -> ValidationResult? {
        guard experiment.hasValidation else { return nil }
        var totals = try experiment.validationTotals()
        try communicator.allReduceSum(&totals)
        let result = experiment.validationMetrics(totals)
        if observe { schedule.observe(validationLoss: result.loss) }
        lastValidation = result
        for warning in result.warnings where !diagnoses.contains(warning) {
            diagnoses.append(warning)
            if isLeader && options.doctor { printWarning("doctor: \(warning)") }
        }
        return result
    }

    /// One line of metrics.jsonl (null for what was not measured at this step), and the same
    /// scalars in the TensorBoard file when there is one.
    func appendMetrics(loss: Double, validationLoss validation: ValidationResult?, lr: Double, gradientNorm: Double, tokensPerSecond: Double, seconds: Double) throws {
        var scalars: [(name: String, value: Double?)] = [("epoch", Double(epoch)), ("loss", loss)]
        scalars += experiment.trainingMetrics(loss: loss).map { ($0.name, $0.value) }
        scalars.append(("val_loss", validation?.loss))
        for name in experiment.validationMetricNames {
            scalars.append((name, validation?.metrics.first { $0.name == name }?.value))
        }
        scalars.append(("world_size", Double(communicator.size)))
        scalars.append(("workers", Double(communicator.workersPerRank)))
        if config.text("training.on_nonfinite") == "skip" { scalars.append(("skipped_steps", Double(skippedSteps))) }
        scalars += [("lr", lr), ("grad_norm", gradientNorm), ("\(experiment.unitName)_per_s", tokensPerSecond.rounded()),
                    ("seconds", (seconds * 1000).rounded() / 1000)]
        let counts: Set<String> = ["epoch", "world_size", "workers", "skipped_steps"]
        let fields = ["\"step\": \(step)"] + scalars.map { name, value in
            guard let value, value.isFinite else { return "\(jsonString(name)): null" }
            return "\(jsonString(name)): " + (counts.contains(name) ? "\(Int(value))" : "\(value)")
        }
        try append("{" + fields.joined(separator: ", ") + "}\n", to: "\(runDirectory)/metrics.jsonl")
        try tensorboard?.scalars(scalars.compactMap { name, value in value.map { (name, $0) } }, step: step)
    }

    /// `restore_best`: every replica takes the best validation's weights back from the best
    /// checkpoint (rank 0 reads it and broadcasts them), and validates them again for the last
    /// checkpoint and the report. Returns the step restored; nil when the weights stay.
    func restoreBestWeights(progress: ProgressReporter?) throws -> Int? {
        guard earlyStopping.isEnabled && earlyStopping.restoreBest, let best = tracker.bestStep, best != step else { return nil }
        let parameters = experiment.trainableModel.parameters
        let path = Checkpoint.weightsPath(runDirectory, step: best)
        var values: [Float] = []
        if isLeader {
            do {
                let file = try Checkpoint.load(path, state: false).weights
                values = parameters.values.array
                for ref in parameters.layout.entries {
                    let floats = try file.tensor(ref.name, in: path).floats()
                    guard floats.count == ref.count else { throw SeqTrainError("\(path): \(ref.name) has \(floats.count) values, expected \(ref.count)") }
                    values.replaceSubrange(ref.offset..<(ref.offset + ref.count), with: floats)
                }
            } catch let error as SeqTrainError {
                printWarning("training.early_stopping.restore_best: cannot read the best checkpoint (\(error.message));"
                    + " the run ends with its last weights")
                values = []
            }
        }
        // Rank 0 alone knows whether it could read them: every replica learns it alike.
        var readable = [isLeader && !values.isEmpty ? 1.0 : 0]
        try communicator.allReduceSum(&readable)
        guard readable[0] > 0 else { return nil }
        var bytes = isLeader ? values.withUnsafeBytes { Array($0) } : [UInt8](repeating: 0, count: parameters.count * 4)
        try communicator.broadcast(&bytes, root: 0)
        if communicator.writesSharedState {
            bytes.withUnsafeBytes { raw in
                guard let floats = raw.bindMemory(to: Float.self).baseAddress else { return }
                parameters.values.pointer.update(from: floats, count: parameters.count)
            }
        }
        try communicator.synchronizeProcess()
        _ = try validate(observe: false)
        progress?.message("restored the weights of step \(best), the best \(earlyStopping.monitor) (\(tracker.best))")
        return best
    }

    /// metrics.jsonl's last line when early stopping ended the run or restored the best weights.
    func appendEarlyStop(restored: Int?) throws {
        let value = tracker.best.isFinite ? "\(tracker.best)" : "null"
        let fields = ["\"step\": \(step)", "\"event\": \"early_stopping\"",
                      "\"stopped_step\": " + (tracker.stoppedStep.map { "\($0)" } ?? "null"),
                      "\"best_step\": " + (tracker.bestStep.map { "\($0)" } ?? "null"),
                      "\"monitor\": \(jsonString(earlyStopping.monitor))", "\"best\": \(value)",
                      "\"restored_best\": \(restored != nil)"]
        try append("{" + fields.joined(separator: ", ") + "}\n", to: "\(runDirectory)/metrics.jsonl")
    }

    /// The final validation's report (per-class table, confusion matrix): printed and saved.
    func writeReport(_ result: ValidationResult, progress: ProgressReporter?) throws {
        if let text = result.report {
            progress?.message(text)
            try write(text, to: "\(runDirectory)/report.txt")
        }
        for file in result.reportFiles { try write(file.contents, to: "\(runDirectory)/\(file.name)") }
    }

    func write(_ text: String, to path: String) throws { try DurableFile.write(Data(text.utf8), to: path) }

    func append(_ text: String, to path: String) throws { try DurableFile.append(text, to: path) }

    // MARK: checkpoints

    /// Rank 0 writes weights then state, each atomically; all ranks take part in gathering lane states.
    func writeCheckpoint(best: Bool = false) throws -> String {
        let parameters = experiment.trainableModel.parameters
        // Every lane's state, as "lanes.hidden" (and "lanes.cell") for the first recurrent entry,
        // "lanes.{k}.hidden" for entry k of a stack: (L_k, lanes, H_k) each.
        var lanes: [(name: String, values: [Float], shape: [Int])] = []
        if let carried = experiment.carriedState {
            for (k, part) in carried.states.enumerated() {
                let prefix = k == 0 ? "lanes" : "lanes.\(k)", shape = [part.layers, carried.lanes, part.width]
                lanes.append(("\(prefix).hidden", try gatherLanes(part.hidden, of: part, carried), shape))
                if part.cell.count > 0 {
                    lanes.append(("\(prefix).cell", try gatherLanes(part.cell, of: part, carried), shape))
                }
            }
        }
        let path = Checkpoint.weightsPath(runDirectory, step: step)
        guard isLeader else { return path }
        // An update can overflow to infinity without a non-finite loss first: never save such weights.
        try parameters.requireFinite(source: "step \(step): the weights to checkpoint")
        var weights = SafetensorsFile()
        for (name, shape, values) in parameters.namedValues() { weights.tensors[name] = StoredTensor(floats: values, shape: shape) }
        weights.metadata = [
            "format": "pt",
            "seqtrain.kind": config.kind,
            "seqtrain.config": config.resolvedTOML,
            "seqtrain.step": "\(step)",
            "seqtrain.world_size": "\(communicator.size)",
            "seqtrain.workers": "\(communicator.workersPerRank)",
        ]
        weights.metadata.merge(experiment.checkpointMetadata()) { $1 }
        if let lastValidation {
            weights.metadata["seqtrain.val_loss"] = "\(lastValidation.loss)"
            if !lastValidation.metrics.isEmpty {
                weights.metadata["seqtrain.val_metrics"] = "{" + lastValidation.metrics.map { "\(jsonString($0.name)): \($0.value.isFinite ? "\($0.value)" : "null")" }.joined(separator: ", ") + "}"
            }
        }

        var state = SafetensorsFile()
        for (name, buffer) in optimizer.state {
            state.tensors["optimizer.\(name)"] = StoredTensor(floats: buffer.array, shape: [buffer.count])
        }
        for (name, values, shape) in lanes { state.tensors[name] = StoredTensor(floats: values, shape: shape) }
        state.metadata = [
            "seqtrain.step": "\(step)", "seqtrain.epoch": "\(epoch)", "seqtrain.batch_in_epoch": "\(batchInEpoch)",
            "seqtrain.optimizer_steps": "\(optimizer.stepCount)",
            "seqtrain.plateau": "\(schedule.plateauScale) \(schedule.bestValidation) \(schedule.badValidations)",
            "seqtrain.skipped": "\(skippedSteps) \(skippedInARow)",
            "seqtrain.loss_window": "\(lossWindow.sum) \(lossWindow.count)",
            "seqtrain.early_stopping": tracker.checkpointText,
            "seqtrain.data_fingerprint": "\(experiment.dataFingerprint)",
            "seqtrain.layout": parameters.layout.signature,
        ]
        try Checkpoint.write(weights: weights, state: state, to: path) {
            // Test hook: die with both files written and the manifest not yet.
            if let failure = options.failure, failure.mode == .killInCheckpoint, failure.step == step { kill(getpid(), SIGKILL) }
        }
        if best, let bestStep = tracker.bestStep {
            // After the checkpoint is complete, before the old best may be pruned.
            try BestCheckpointRecord(step: bestStep, monitor: earlyStopping.monitor, mode: earlyStopping.mode.rawValue,
                                     value: tracker.best).write(runDirectory)
        }
        Checkpoint.prune(runDirectory, keep: config.integer("checkpoint.keep_last"), protecting: protectedCheckpoints)
        return path
    }

    /// The best checkpoint, which `keep_last` never deletes.
    var protectedCheckpoints: Set<String> {
        guard earlyStopping.keepsBestCheckpoint, let best = tracker.bestStep else { return [] }
        return [Checkpoint.weightsPath(runDirectory, step: best)]
    }

    /// Every rank's (L, rows, H) lane states as one (L, lanes, H) array, lanes in global order.
    func gatherLanes(_ local: FloatBuffer, of state: RecurrentState, _ carried: CarriedState) throws -> [Float] {
        let bytes = local.array.withUnsafeBytes { Array($0) }
        let parts = try communicator.allGather(bytes)
        let layers = state.layers, rows = carried.rows.count, width = state.width
        let world = communicator.size
        var out = [Float](repeating: 0, count: layers * rows * world * width)
        for (r, part) in parts.enumerated() {
            part.withUnsafeBytes { raw in
                let floats = raw.bindMemory(to: Float.self)
                for l in 0..<layers {
                    for row in 0..<rows {
                        for j in 0..<width {
                            out[(l * rows * world + r * rows + row) * width + j] = floats[(l * rows + row) * width + j]
                        }
                    }
                }
            }
        }
        return out
    }

    func restoreNewestCheckpoint() throws {
        let warn = { [isLeader] (text: String) in if isLeader { printWarning(text) } }
        guard let (path, weights, loadedState) = try Checkpoint.newestValid(runDirectory, state: true, warn: warn),
              let state = loadedState else {
            // A first start (or a run killed before its first checkpoint): begin at step 0. Metrics
            // lines of a run that never checkpointed are dropped; its steps are trained again.
            resumeNote = "--resume: no checkpoint in \(runDirectory)/checkpoints yet; starting at step 0"
            if isLeader { try dropMetrics(after: 0) }
            return
        }
        let statePath = Checkpoint.statePath(forWeights: path)
        let parameters = experiment.trainableModel.parameters
        let changed = changedKeys(since: weights.metadata["seqtrain.config"])
        guard state.metadata["seqtrain.layout"] == parameters.layout.signature else {
            throw SeqTrainError("\(statePath): the checkpoint's model layout differs from this config's\(changed); "
                + "resume with the run's own config.toml")
        }
        guard state.metadata["seqtrain.data_fingerprint"] == "\(experiment.dataFingerprint)" else {
            throw SeqTrainError("\(statePath): the training data differs from the data this run was trained "
                + "on\(changed); resume with the same data files")
        }
        // The worker threads of a process share the parameters and the optimizer state: the
        // first one loads them (prepare() waits for it).
        if communicator.writesSharedState {
            try parameters.load(from: weights, source: path)
            for (name, buffer) in optimizer.state {
                let values = try state.tensor("optimizer.\(name)", in: statePath).floats()
                guard values.count == buffer.count else { throw SeqTrainError("\(statePath): optimizer.\(name) has \(values.count) values, expected \(buffer.count)") }
                buffer.copy(from: values)
            }
        }
        func integer(_ key: String) throws -> Int {
            guard let v = state.metadata[key].flatMap({ Int($0) }) else { throw SeqTrainError("\(statePath): metadata \(key) is missing or not an integer") }
            return v
        }
        step = try integer("seqtrain.step")
        epoch = try integer("seqtrain.epoch")
        batchInEpoch = try integer("seqtrain.batch_in_epoch")
        optimizer.stepCount = try integer("seqtrain.optimizer_steps")
        let skipped = (state.metadata["seqtrain.skipped"] ?? "").split(separator: " ").compactMap { Int($0) }
        if skipped.count == 2 { skippedSteps = skipped[0]; skippedInARow = skipped[1] }
        // Checkpoints from before it have none: the window then starts empty, as it did.
        let window = (state.metadata["seqtrain.loss_window"] ?? "").split(separator: " ").compactMap { Double($0) }
        lossWindow = window.count == 2 ? LossTotal(sum: window[0], count: window[1]) : LossTotal()
        let plateau = (state.metadata["seqtrain.plateau"] ?? "").split(separator: " ").compactMap { Double($0) }
        if plateau.count == 3 {
            schedule.plateauScale = plateau[0]; schedule.bestValidation = plateau[1]; schedule.badValidations = Int(plateau[2])
        }
        // Checkpoints from before early stopping have none: the tracker starts afresh, as it did.
        if let saved = state.metadata["seqtrain.early_stopping"].flatMap(BestTracker.init(checkpointText:)) {
            tracker = saved
            resumedStopped = saved.stoppedStep != nil
        }
        if isLeader, earlyStopping.keepsBestCheckpoint, let best = tracker.bestStep {
            // The record follows the state resumed (a newer, damaged checkpoint may have been skipped).
            if FileManager.default.fileExists(atPath: Checkpoint.weightsPath(runDirectory, step: best)) {
                try BestCheckpointRecord(step: best, monitor: earlyStopping.monitor, mode: earlyStopping.mode.rawValue,
                                         value: tracker.best).write(runDirectory)
            } else {
                printWarning("\(Checkpoint.weightsPath(runDirectory, step: best)): the best checkpoint of this run is gone;"
                    + " restore_best and --checkpoint best fall back to the last weights")
            }
        }
        if let loss = weights.metadata["seqtrain.val_loss"].flatMap(Double.init) {
            var restored = ValidationResult(loss: loss)
            if let json = weights.metadata["seqtrain.val_metrics"]?.data(using: .utf8),
               let object = try? JSONSerialization.jsonObject(with: json) as? [String: Double] {
                restored.metrics = experiment.validationMetricNames.compactMap { name in object[name].map { (name, $0) } }
            }
            lastValidation = restored
        }
        if isLeader { try dropMetrics(after: step) }
        var note = "resumed from \(path) at step \(step) of \(totalSteps)"
        if let written = weights.metadata["seqtrain.world_size"].flatMap({ Int($0) }) {
            // Checkpoints from before worker threads have no seqtrain.workers: one worker per rank.
            let workers = weights.metadata["seqtrain.workers"].flatMap { Int($0) } ?? 1
            if written != communicator.size || workers != communicator.workersPerRank {
                func describe(_ replicas: Int, _ perRank: Int) -> String {
                    perRank == 1 ? "\(replicas) rank(s)" : "\(replicas / max(perRank, 1)) rank(s) × \(perRank) workers"
                }
                note += " (written by \(describe(written, workers)), continued on \(describe(communicator.size, communicator.workersPerRank)))"
            }
        }
        if let stopped = tracker.stoppedStep { note += "; early stopping ended this run at step \(stopped)" }
        resumeNote = note
        if let carried = experiment.carriedState {
            for (k, part) in carried.states.enumerated() {
                let prefix = k == 0 ? "lanes" : "lanes.\(k)"
                try scatterLanes(try state.tensor("\(prefix).hidden", in: statePath).floats(), into: part.hidden,
                                 of: part, carried)
                if part.cell.count > 0 {
                    try scatterLanes(try state.tensor("\(prefix).cell", in: statePath).floats(), into: part.cell,
                                     of: part, carried)
                }
            }
        }
    }

    /// Keys a resumed run may change: how long it runs, how often it validates, checkpoints and
    /// logs, where it writes and on how many threads. Every other key shapes what is learned.
    static func mayChangeOnResume(_ path: String) -> Bool {
        ["checkpoint.", "metrics."].contains { path.hasPrefix($0) } || [
            "training.max_steps", "training.epochs", "training.eval_every", "training.workers",
            "training.collective_timeout_s", "job.run_dir", "job.name",
        ].contains(path)
    }

    /// ": model.hidden = 24 here, 16 in the checkpoint" for every key of `stored` (the checkpoint's
    /// resolved config) that differs from this run's and may not change on resume; "" when none
    /// does or the checkpoint's config cannot be read.
    func changedKeys(since stored: String?) -> String {
        guard let stored, let old = try? ExperimentConfig.parse(stored, source: "the checkpoint's config") else {
            return ""
        }
        let before = Dictionary(old.resolvedPairs.map { ($0.0, "\($0.1)") }, uniquingKeysWith: { a, _ in a })
        let now = Dictionary(config.resolvedPairs.map { ($0.0, "\($0.1)") }, uniquingKeysWith: { a, _ in a })
        let paths = (config.resolvedPairs.map(\.0) + old.resolvedPairs.map(\.0).filter { now[$0] == nil })
            .filter { !Self.mayChangeOnResume($0) && now[$0] != before[$0] }
        guard !paths.isEmpty else { return "" }
        let changes = paths.map {
            "\($0) = \(now[$0] ?? "(not a key here)") here, \(before[$0] ?? "(not a key)") in the checkpoint"
        }
        return ": " + changes.joined(separator: "; ")
    }

    /// Metrics lines of steps after the resumed checkpoint were written by the run that died; the
    /// resumed run writes them again.
    func dropMetrics(after resumedStep: Int) throws {
        let path = "\(runDirectory)/\(RunFiles.metricsName)"
        guard FileManager.default.fileExists(atPath: path) else { return }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SeqTrainError("\(path): cannot read it to resume (is it a directory, or unreadable?);"
                + " fix its permissions or move it away")
        }
        // Lines it cannot parse are refused, not dropped: only a last line cut short by a crash goes.
        let kept = try RunFiles.metricsLines(data, path: path, throughStep: resumedStep)
        try DurableFile.write(Data(kept.map { $0 + "\n" }.joined().utf8), to: path)
    }

    /// This rank's lanes out of a (L, lanes, H) array.
    func scatterLanes(_ all: [Float], into local: FloatBuffer, of state: RecurrentState,
                      _ carried: CarriedState) throws {
        let layers = state.layers, rows = carried.rows, width = state.width
        let total = carried.lanes
        guard all.count == layers * total * width else { throw SeqTrainError("checkpoint lane state has \(all.count) values, expected \(layers * total * width)") }
        for l in 0..<layers {
            for (r, lane) in rows.enumerated() {
                for j in 0..<width { local[(l * rows.count + r) * width + j] = all[(l * total + lane) * width + j] }
            }
        }
    }
}

/// An advisory lock (flock) on `RUN_DIR/.lock` for the whole run: a second `train` into the same
/// directory, with any flags, is refused naming the holder. The OS drops it when the process dies,
/// so a killed run never leaves a stale lock.
final class RunDirectoryLock {
    private var descriptor: Int32

    init(directory: String) throws {
        let path = "\(directory)/.lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw DurableFile.failure(path, "open the run directory's lock") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            var buffer = [UInt8](repeating: 0, count: 512)
            let count = pread(descriptor, &buffer, buffer.count, 0)
            close(descriptor)
            descriptor = -1
            guard code == EWOULDBLOCK else { throw DurableFile.failure(path, "lock the run directory", code) }
            let holder = String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw SeqTrainError("\(directory) is in use by another seqtrain run (\(holder.isEmpty ? "its holder did not say who it is" : holder)); wait for it to end or stop it, or choose another job.run_dir")
        }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let started = ISO8601DateFormatter().string(from: Date())
        let text = "process \(getpid()) on host \(String(cString: host)), started \(started)\n"
        _ = ftruncate(descriptor, 0)
        _ = Array(text.utf8).withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
    }

    func release() {
        guard descriptor >= 0 else { return }
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}
