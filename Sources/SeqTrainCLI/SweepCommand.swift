import ArgumentParser
import Foundation
import SeqTrainKit

struct RunSweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Try hyperparameters: N seeded trials of a config, P at a time, successive halving on a"
            + " validation figure.",
        discussion: "Each trial is a resolved config in DIR/trials/NNN/config.toml, trained by seqtrain train in"
            + " its own run directory DIR/trials/NNN. Every trial trains to the first rung (a fraction of"
            + " training.max_steps); the best 1/eta by --metric continue with --resume to the next, up to"
            + " training.max_steps. DIR/sweep.csv has a row per trial, DIR/best.toml the best trial's config."
            + " The same command again continues a stopped sweep."
            + " Under a Slurm array (launch/slurm-sweep.sbatch): --trial K per task, then --gather.")

    @Argument(help: "The experiment config the trials start from.")
    var config: String

    @Option(help: "Trials (1 to 1000).")
    var trials: Int

    @Option(name: .customLong("param"), help: ArgumentHelp(
        "A key to vary and its values (repeatable): [64, 128] (choices; a choice may be a list: [[128], [256, 128]]),"
            + " log(1e-4, 1e-2), uniform(0, 0.5), int(1, 4).", valueName: "key=spec"))
    var parameters: [String] = []

    @Option(name: .customLong("set"),
            help: ArgumentHelp("Override a key of every trial: section.key=value (repeatable).",
                               valueName: "section.key=value"))
    var overrides: [String] = []

    @Option(help: ArgumentHelp("The validation figure trials are ranked by (default training.early_stopping.monitor,"
                               + " val_loss); it becomes each trial's early-stopping monitor.", valueName: "name"))
    var metric: String?

    @Option(help: ArgumentHelp("The sweep's directory (default sweeps/<job.name>): new, empty, or this same sweep.",
                               valueName: "dir"))
    var out: String?

    @Option(help: ArgumentHelp("Trials trained at once (default: one per usable CPU); each gets its share"
                               + " of the CPUs as training.workers.", valueName: "p"))
    var parallel: Int?

    @Option(help: "Successive halving: each rung keeps the best 1/eta of its trials (2 to 100).")
    var eta = 3

    @Option(help: ArgumentHelp("Seed of the trials' draws (default job.seed): the same seed draws the same trials.",
                               valueName: "seed"))
    var seed: UInt64?

    @Option(help: ArgumentHelp("Run only trial K to its end, no halving (one task of a Slurm array); then --gather.",
                               valueName: "k"))
    var trial: Int?

    @Flag(help: "Write sweep.csv and best.toml from the trials that have finished (after a Slurm array).")
    var gather = false

    @Flag(help: "Print one JSON object on stdout: best_run_dir, best_metric, metric, trials (progress goes to stderr).")
    var json = false

    func validate() throws {
        guard (1...Sweep.mostTrials).contains(trials) else {
            throw ValidationError("--trials \(trials): give 1 to \(Sweep.mostTrials) trials")
        }
        if let parallel, !(1...256).contains(parallel) {
            throw ValidationError("--parallel \(parallel): give 1 to 256 trials at once (default: one per usable CPU)")
        }
        guard (2...100).contains(eta) else {
            throw ValidationError("--eta \(eta): give 2 to 100 "
                + "(each rung keeps the best 1/eta of its trials; 3 is usual)")
        }
        if let trial, !(0..<trials).contains(trial) {
            throw ValidationError("--trial \(trial): the sweep has trials 0 to \(trials - 1) (--trials \(trials))")
        }
        if trial != nil && gather {
            throw ValidationError("--trial and --gather exclude each other: run a trial, or gather")
        }
    }

    func run() throws {
        let say: (String) -> Void = json ? { writeStandardError($0 + "\n") } : { print($0) }
        let stop: SignalStopRequest
        do { stop = try SignalStopRequest.install() } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        do {
            let sweep = try reporting {
                try Sweep(config: config, parameters: parameters, overrides: overrides, trials: trials, seed: seed,
                          metric: metric, out: out, eta: eta, checkData: !gather)
            }
            // This build, whatever PATH holds: the trials train with the same code.
            let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                ?? CommandLine.arguments[0]
            let runner = SweepRunner(sweep: sweep, binary: binary, parallel: parallel,
                                     cpus: CPUBudget.current().usable, say: say, stopSignal: { stop.signal })
            if let trial {
                let record = try reporting { try runner.runTrial(trial) }
                say("trial \(Sweep.trialName(trial)): \(record.status.rawValue), \(record.steps) steps"
                    + (record.error.map { ": \($0)" } ?? ""))
                if record.status == .failed { throw ExitCode(2) }
                return
            }
            let summary = try reporting { gather ? try runner.gather() : try runner.run() }
            say(summary.text)
            if json { print(summary.json) }
            // Failed trials are reported, not fatal; a sweep where none completed is a failure.
            if summary.best == nil && !gather { throw ExitCode(2) }
        } catch let stopped as SweepRunner.Stopped {
            writeStandardError("sweep stopped (signal \(StopSignal.name(stopped.signal))); its trials are checkpointed:"
                + " the same command continues it\n")
            throw ExitCode(StopSignal.exitStatus(stopped.signal))
        }
    }
}
