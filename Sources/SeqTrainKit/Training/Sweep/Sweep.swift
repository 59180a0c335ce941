import Foundation

/// `seqtrain sweep CONFIG --trials N --param KEY=SPEC ...`: the definition of a sweep, its trials'
/// configs, and its directory.
///
///     DIR/sweep.json              the definition (how a later command knows DIR is this sweep)
///     DIR/.sweep.lock             held while a sweep runs in DIR, and while results are gathered
///     DIR/trials/NNN/             trial NNN's run directory: config.toml, train.log, trial.json, ...
///     DIR/sweep.csv, best.toml    written by the gather step from every trial.json
///
/// seqtrain writes into DIR only when DIR is new, empty, or holds this same sweep (which it then
/// continues: every trial resumes from its checkpoints); it never deletes a file there.
public struct Sweep {
    public let configPath: String
    /// The config with the sweep's `--set` overrides: what every trial starts from.
    public let base: ExperimentConfig
    public let parameters: [SweepParameter]
    public let overrides: [String]
    public let trials: Int
    public let seed: UInt64
    /// The validation figure trials are ranked by (metrics.jsonl's name), and which way is better.
    public let metric: String
    public let mode: EarlyStoppingSettings.Mode
    public let eta: Int
    public let directory: String
    /// Whether each parameter's key takes integers (a log or uniform draw is then rounded).
    let integerKeys: [Bool]

    public static let mostTrials = 1000
    public static let definitionName = "sweep.json", lockName = ".sweep.lock", csvName = "sweep.csv"
    public static let bestName = "best.toml", trialRecordName = "trial.json", logName = "train.log"
    /// Keys the sweep sets itself for every trial.
    static let ownedKeys = ["job.run_dir": "each trial's run directory is DIR/trials/NNN",
                            "training.workers": "each trial gets its share of the CPUs",
                            "model.kind": "a sweep tries one kind (its keys differ from another's)"]

    /// Checks everything before anything is written: the config with `overrides`, every
    /// `--param` (its key is one of the config's and accepts each choice or bound, checked with
    /// `--set`'s own validation), and `metric` against what the kind logs (the experiment is made
    /// once, so missing data is refused here too, unless `checkData` is false).
    public init(config: String, parameters texts: [String], overrides: [String], trials: Int, seed: UInt64?,
                metric requested: String?, out: String?, eta: Int, checkData: Bool = true) throws {
        guard (1...Self.mostTrials).contains(trials) else {
            throw SeqTrainError("--trials \(trials): give 1 to \(Self.mostTrials) trials")
        }
        guard (2...100).contains(eta) else {
            throw SeqTrainError("--eta \(eta): give 2 to 100 "
                + "(each rung keeps the best 1/eta of its trials; 3 is usual)")
        }
        guard !texts.isEmpty else {
            throw SeqTrainError("sweep: no --param: give at least one KEY=SPEC to vary, "
                + "e.g. --param optimizer.lr=log(1e-4, 1e-2)")
        }
        configPath = config
        base = try ExperimentConfig.load(path: config, overrides: overrides)
        self.overrides = overrides
        self.trials = trials
        self.eta = eta
        self.seed = seed ?? UInt64(base.integer("job.seed"))
        var parsed: [SweepParameter] = [], integer: [Bool] = []
        let setKeys = overrides.compactMap {
            $0.split(separator: "=", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces)
        }
        for text in texts {
            let parameter = try SweepParameter(parsing: text)
            let key = parameter.key
            if let why = Self.ownedKeys[key] {
                throw SeqTrainError("--param \(text.prefix(200)): \(key) is set by the sweep (\(why)); "
                    + "vary another key")
            }
            if parsed.contains(where: { $0.key == key }) {
                throw SeqTrainError("--param \(text.prefix(200)): \(key) is already varied by another --param; "
                    + "give one SPEC per key")
            }
            if setKeys.contains(key) {
                throw SeqTrainError("--param \(text.prefix(200)): \(key) is also given with --set; "
                    + "keep the --param or the --set")
            }
            // A field of a stack entry (model.layers.0.hidden) or a key of the schema.
            let stackField = LayerStackConfig.fieldPath(key, kind: base.kind)
            guard let schemaKey = stackField?.key ?? ConfigSchema.key(key, kind: base.kind) else {
                // --set's own message (unknown key, a section, a key of another kind), said of the --param.
                do {
                    _ = try ExperimentConfig.parseOverride("\(key)=0", kind: base.kind)
                } catch let error as SeqTrainError {
                    throw SeqTrainError("--param \(text.prefix(200)): " + Self.dropSetPrefix(error.message)
                        + "; seqtrain config --keys --kind \(base.kind) lists the keys")
                }
                throw SeqTrainError("--param \(text.prefix(200)): unknown key \(key)")
            }
            let takesIntegers = stackField.map { LayerStackConfig.isIntegerField($0.field) }
                ?? [ConfigType.positiveInteger, .nonNegativeInteger, .integer, .autoOrPositiveInteger]
                    .contains(schemaKey.type)
            if takesIntegers && !parameter.holdsAnInteger {
                throw SeqTrainError("--param \(text.prefix(200)): \(key) takes integers and the range holds none;"
                    + " widen it, or use int(low, high)")
            }
            // Every choice (or both bounds) through the whole config's checks, as a --set of it.
            for value in parameter.probeValues(integerKey: takesIntegers) {
                do {
                    _ = try ExperimentConfig.load(path: config, overrides: overrides + ["\(key)=\(value)"])
                } catch let error as SeqTrainError {
                    throw SeqTrainError("--param \(text.prefix(200)): \(key) = \(value.prefix(80)) is refused: "
                        + Self.dropSetPrefix(error.message))
                }
            }
            parsed.append(parameter)
            integer.append(takesIntegers)
        }
        parameters = parsed
        integerKeys = integer
        let monitor = base.text("training.early_stopping.monitor")
        metric = requested ?? monitor
        let configured = base.text("training.early_stopping.mode")
        mode = configured == "auto" || metric != monitor ? EarlyStoppingSettings.automaticMode(metric)
            : EarlyStoppingSettings.Mode(rawValue: configured) ?? .min
        if checkData {
            guard let kind = ExperimentRegistry.kind(named: base.kind) else {
                throw SeqTrainError("model.kind = \"\(base.kind)\" is not a known kind")
            }
            let experiment = try kind.make(base, 0, 1)
            let names = ["val_loss"] + experiment.validationMetricNames
            guard names.contains(metric) else {
                throw SeqTrainError("--metric \(metric.prefix(80)): model.kind = \"\(base.kind)\" "
                    + "logs no such validation"
                    + " figure; use one of \(names.joined(separator: ", "))")
            }
            guard experiment.hasValidation else {
                throw SeqTrainError("sweep: \(config) has no validation data, "
                    + "and trials are ranked by a validation figure;"
                    + " give the kind's validation data (e.g. --set data.validation_fraction=0.1)")
            }
        }
        let folder = out ?? "sweeps/\(base.text("job.name"))"
        guard !folder.isEmpty else {
            throw SeqTrainError("--out: empty; give the sweep's directory, e.g. --out sweeps/lr")
        }
        directory = folder.count > 1 && folder.hasSuffix("/") ? String(folder.dropLast()) : folder
    }

    /// "--set X=Y: problem" said of a --param: the problem alone.
    static func dropSetPrefix(_ message: String) -> String {
        guard message.hasPrefix("--set "), let colon = message.range(of: ": ") else { return message }
        return String(message[colon.upperBound...])
    }

    // MARK: trials

    /// Steps at which successive halving ranks the trials (none: every trial trains to its end).
    public var rungSteps: [Int] {
        SuccessiveHalving.rungSteps(maxSteps: base.integer("training.max_steps"),
                                    evalEvery: base.integer("training.eval_every"),
                                    trials: trials, eta: eta)
    }

    /// Trial `trial`'s drawn values: (key, TOML text), in --param order.
    public func values(of trial: Int) -> [(key: String, value: String)] {
        parameters.enumerated().map { index, parameter in
            (parameter.key, parameter.value(trial: trial, index: index, seed: seed, integerKey: integerKeys[index]))
        }
    }

    public static func trialName(_ trial: Int) -> String { String(format: "%03d", trial) }

    public func trialDirectory(_ trial: Int) -> String { "\(directory)/trials/\(Self.trialName(trial))" }

    /// Trial `trial`'s resolved config, in `runDirectory` (its own by default); the sweep's metric
    /// is its early-stopping monitor, so its best checkpoint is the one the sweep ranks it by.
    public func config(of trial: Int, runDirectory: String? = nil) throws -> ExperimentConfig {
        let drawn = values(of: trial).map { "\($0.key)=\($0.value)" }
        let own = ["job.run_dir=\(tomlString(runDirectory ?? trialDirectory(trial)))",
                   "training.early_stopping.monitor=\(tomlString(metric))",
                   "training.early_stopping.mode=\(mode.rawValue)"]
        return try ExperimentConfig.load(path: configPath, overrides: overrides + drawn + own)
    }

    /// Trial `trial`'s config.toml, headed as a run config seqtrain wrote (the trainer replaces it
    /// with its own resolved copy when the run starts, as it does in every run directory).
    func trialConfigText(_ trial: Int) throws -> String {
        let drawn = values(of: trial).map { "\($0.key) = \($0.value)" }.joined(separator: ", ")
        return RunFiles.configMarker + "\n# trial \(Self.trialName(trial)) of the sweep in \(directory): \(drawn)\n"
            + (try config(of: trial)).resolvedTOML
    }

    // MARK: the directory

    /// What sweep.json holds: the definition, every part as text.
    var definition: [String: Any] {
        ["seqtrain": "sweep", "config": configPath, "parameters": parameters.map(\.text), "sets": overrides,
         "trials": String(trials), "seed": String(seed), "metric": metric, "mode": mode.rawValue, "eta": String(eta)]
    }

    static func canonical(_ object: Any) -> Data? {
        try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }

    /// Whether `directory` is a sweep seqtrain wrote (for `seqtrain report`).
    public static func isSweepDirectory(_ directory: String) -> Bool { readDefinition(directory) != nil }

    static func readDefinition(_ directory: String) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: "\(directory)/\(definitionName)"),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              object["seqtrain"] as? String == "sweep" else { return nil }
        return object
    }

    /// The metric a sweep directory ranks by, for `seqtrain report`.
    public static func metric(ofSweep directory: String) -> String? { readDefinition(directory)?["metric"] as? String }

    /// Makes DIR (or checks that it holds this sweep), under the sweep lock, and writes sweep.json.
    /// `exclusive`: the lock is kept for the whole run (a local sweep); otherwise it is taken while
    /// DIR is checked and released (the tasks of a Slurm array share DIR).
    public func prepareDirectory(exclusive: Bool) throws -> SweepLock {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: directory, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw SeqTrainError("--out \(directory): a file, not a directory; "
                + "give a new or empty directory for the sweep")
        }
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw SeqTrainError("--out \(directory): cannot create the directory: \(describeFileError(error))")
        }
        // Checked before the lock file is made in it: a folder that is no sweep is left as it was.
        try checkDirectory(writing: false)
        let lock = try SweepLock(directory: directory, wait: !exclusive)
        do {
            try checkDirectory(writing: true)
            try fm.createDirectory(atPath: "\(directory)/trials", withIntermediateDirectories: true)
        } catch {
            lock.release()
            throw error
        }
        if !exclusive { lock.release() }
        return lock
    }

    /// DIR holds nothing, or this same sweep; writes sweep.json (when `writing`) if it holds nothing yet.
    func checkDirectory(writing: Bool) throws {
        let path = "\(directory)/\(Self.definitionName)"
        let same = "rerun the same command (config, --param, --set, --trials, --seed, --metric, --eta) to continue it,"
            + " or choose another --out"
        if FileManager.default.fileExists(atPath: path) {
            guard let found = Self.readDefinition(directory) else {
                throw SeqTrainError("\(path): not the sweep definition seqtrain writes; choose another --out")
            }
            let mine = definition
            let differing = mine.keys.sorted().filter {
                Self.canonical([mine[$0] ?? ""]) != Self.canonical([found[$0] ?? ""])
            }
            if let key = differing.first {
                // Each value as JSON without the list it was wrapped in to be serialized.
                func shown(_ value: Any?) -> String {
                    guard let value, let data = Self.canonical([value]) else { return "nothing" }
                    return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
                }
                let theirs = shown(found[key]), ours = shown(mine[key])
                throw SeqTrainError("--out \(directory): it holds another sweep: its \(key) is \(theirs.prefix(200)),"
                    + " this command's \(ours.prefix(200)); \(same)")
            }
            return
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let foreign = entries.filter { $0 != Self.lockName && !$0.hasPrefix(DurableFile.temporaryPrefix) }
        guard foreign.isEmpty else {
            let listed = foreign.sorted().prefix(3).joined(separator: ", ")
            throw SeqTrainError("--out \(directory): not empty (it holds \(listed)"
                + "\(foreign.count > 3 ? ", ..." : "")) and is no sweep seqtrain wrote (no \(Self.definitionName));"
                + " give a new or empty directory, e.g. --out sweeps/NAME")
        }
        guard writing else { return }
        guard let data = Self.canonical(definition) else { throw SeqTrainError("sweep: the definition is not JSON") }
        try DurableFile.write(data + Data("\n".utf8), to: path)
    }

    /// Refuses to replace `path` when it exists and its first line is not `marker`'s (a user's file).
    static func refuseForeign(_ path: String, marker: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        let head = FileManager.default.contents(atPath: path)
            .map { String(decoding: $0.prefix(4096), as: UTF8.self) } ?? ""
        guard head.hasPrefix(marker) else {
            throw SeqTrainError("\(path): not written by seqtrain sweep (its first line differs), and the sweep would"
                + " replace it; move it out of the sweep directory")
        }
    }
}

/// The sweep directory's lock: `flock` on DIR/.sweep.lock, dropped by the OS when the process ends.
public final class SweepLock {
    var descriptor: Int32

    init(directory: String, wait: Bool) throws {
        let path = "\(directory)/\(Sweep.lockName)"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw SeqTrainError("\(path): cannot open the sweep's lock file: \(String(cString: strerror(errno)))")
        }
        // Tasks of an array wait their turn (they hold it for well under a second); a second local
        // sweep is refused at once, and a task finding one running gives up after a few seconds.
        let deadline = Date().addingTimeInterval(wait ? 15 : 0)
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, Date() < deadline else {
                close(descriptor)
                descriptor = -1
                throw SeqTrainError("--out \(directory): another seqtrain sweep is running there (it holds \(path));"
                    + " wait for it to end, or choose another --out")
            }
            usleep(50_000)
        }
        let text = "pid \(getpid())\n"
        _ = ftruncate(descriptor, 0)
        _ = pwrite(descriptor, text, text.utf8.count, 0)
    }

    public func release() {
        guard descriptor >= 0 else { return }
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}
