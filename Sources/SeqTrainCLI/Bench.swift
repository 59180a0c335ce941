import ArgumentParser
import Foundation
import SeqTrainKit

/// `seqtrain bench`: prints only what this run measured. PyTorch is measured beside it by
/// `launch/compare-torch`, in the same sitting.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time char-LSTM training steps (forward, backward, clip, Adam) and this machine's sgemm rate.")

    @Option(help: "OpenBLAS threads.")
    var threads = 1

    @Option(help: "Timed steps per configuration (the median is reported).")
    var repeats = 10

    @Option(help: "With --workers: rounds of 1 worker then N workers, alternating (medians are reported).")
    var rounds = 3

    @Option(help: "Run only configuration 1, 2 or 3.")
    var only: Int?

    @Option(help: "Compare 1 rank with this many ranks (one BLAS thread each) on configuration 1, through mpirun.")
    var ranks: Int?

    @Option(help: "Compare 1 worker thread with this many in this process (one BLAS thread each), sharing each configuration's batch as training.workers does.")
    var workers: Int?

    @Flag(help: "Time the sequence-classifier workload instead (LSTM, hidden 64, curves of 1500 steps, batch 32 per rank): samples/s.")
    var classifier = false

    @Option(help: "With --classifier: the recurrent cell, lstm, gru or rnn (default lstm).")
    var cell: String?

    @Option(help: "With --classifier: the recurrent layers of the body (num_layers, default 1).")
    var layers: Int?

    @Flag(help: "With --classifier: a bidirectional body, the stack of [[model.layers]] with bidirectional = true.")
    var bidirectional = false

    @Flag(help: "Print one JSON object instead of lines.")
    var json = false

    @Flag(help: ArgumentHelp("Run as one rank of a distributed benchmark (started by --ranks).", visibility: .hidden))
    var distributed = false

    func validate() throws {
        if let only, !(1...3).contains(only) { throw ValidationError("--only takes 1, 2 or 3, got \(only)") }
        // Upper bounds far past any machine, so that a mistyped count is refused, not attempted.
        guard (1...1_024).contains(threads) else { throw ValidationError("--threads takes 1 to 1024, got \(threads)") }
        guard (1...100_000).contains(repeats) else { throw ValidationError("--repeats takes 1 to 100000, got \(repeats)") }
        guard (1...1_000).contains(rounds) else { throw ValidationError("--rounds takes 1 to 1000, got \(rounds)") }
        if let ranks, !(2...1_024).contains(ranks) { throw ValidationError("--ranks takes 2 to 1024, got \(ranks)") }
        if let workers, !(2...256).contains(workers) { throw ValidationError("--workers takes 2 to 256, got \(workers)") }
        if workers != nil && ranks != nil { throw ValidationError("--workers and --ranks are separate comparisons: give one") }
        if !classifier && (cell != nil || layers != nil || bidirectional) {
            throw ValidationError("--cell, --layers and --bidirectional shape the classifier workload: "
                + "add --classifier")
        }
        if let cell, RecurrentCell(rawValue: cell) == nil {
            let names = RecurrentCell.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("--cell takes one of \(names), got \(cell)")
        }
        if let layers, !(1...64).contains(layers) { throw ValidationError("--layers takes 1 to 64, got \(layers)") }
    }

    /// The classifier workload the flags describe.
    var workload: Benchmark.ClassifierWorkload {
        Benchmark.ClassifierWorkload(cell: cell.flatMap(RecurrentCell.init(rawValue:)) ?? .lstm, layers: layers ?? 1,
                                     bidirectional: bidirectional)
    }

    /// The flags that shape the workload, passed on to the ranks `--ranks` starts.
    var workloadArguments: [String] {
        (cell.map { ["--cell", $0] } ?? []) + (layers.map { ["--layers", "\($0)"] } ?? [])
            + (bidirectional ? ["--bidirectional"] : [])
    }

    var selected: [Int] { only.map { [$0 - 1] } ?? Array(Benchmark.Configuration.standard.indices) }

    func say(_ line: String) { if !json { print(line) } }

    /// The machine's description, as JSON fields.
    var systemFields: [String: Any] {
        ["blas": BLASKernelSelection.libraryVersion, "kernel": BLASKernelSelection.currentCore,
         "kernel_selected_by_seqtrain": BLASKernelSelection.selectedFrom != nil,
         "openblas_choice": BLASKernelSelection.selectedFrom ?? BLASKernelSelection.currentCore,
         "cpu": CPUDescription.current.summary, "blas_threads": threads]
    }

    func emit(_ object: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    func run() throws {
        BLASThreads.set(threads)
        if distributed { return try runDistributedRank() }
        if let ranks { return try compareRanks(ranks) }
        if let workers { return try compareWorkers(workers) }
        say(BLASKernelSelection.summary)
        if classifier { return try runClassifier() }
        let rate = Benchmark.sgemmRate()
        say(String(format: "sgemm 2048x1024x256 on %d BLAS thread(s): %.1f GFLOP/s", threads, rate))
        var rows: [[String: Any]] = []
        for k in selected {
            let configuration = Benchmark.Configuration.standard[k]
            let r = try Benchmark.trainingStep(configuration, repeats: repeats)
            say(String(format: "%@: %.2f ms/step, %.0f tokens/s, %.1f GFLOP/s (%.0f%% of the sgemm rate)",
                       configuration.description, r.medianStepSeconds * 1e3, r.tokensPerSecond, r.gigaflops, 100 * r.gigaflops / rate))
            rows.append(["configuration": configuration.description, "ms_per_step": r.medianStepSeconds * 1e3,
                         "tokens_per_s": r.tokensPerSecond, "gflops": r.gigaflops])
        }
        if json { try emit(systemFields.merging(["sgemm_gflops": rate, "configurations": rows]) { $1 }) }
    }

    var workloadDescription: String { workload.description }

    func runClassifier() throws {
        let w = workload
        let r = try Benchmark.classifierStep(w, communicator: SingleProcess(), repeats: repeats)
        say(String(format: "%@: %.1f ms/step, %.1f samples/s", workloadDescription, r.medianStepSeconds * 1e3, r.tokensPerSecond))
        if json {
            try emit(systemFields.merging(["workload": workloadDescription, "ms_per_step": r.medianStepSeconds * 1e3,
                                           "samples_per_s": r.tokensPerSecond, "cell": w.cell.rawValue,
                                           "layers": w.layers, "bidirectional": w.bidirectional]) { $1 })
        }
    }

    /// One rank of the distributed benchmark: rank 0 prints one JSON line of figures, every rank's
    /// phase times included.
    func runDistributedRank() throws {
        let communicator = try MPICommunicator()
        let r = classifier
            ? try Benchmark.classifierStep(workload, communicator: communicator, repeats: repeats)
            : try Benchmark.distributedStep(Benchmark.Configuration.standard[(only ?? 1) - 1], communicator: communicator, repeats: repeats)
        if communicator.rank == 0 {
            try emit(["ranks": r.world, "tokens_per_s": r.tokensPerSecond, "ms_per_step": r.medianStepSeconds * 1e3,
                      "allreduce_wait_ms": r.medianWaitSeconds * 1e3, "wait_share": r.waitShare,
                      "phases_ms": r.phasesPerRank.map { $0.mapValues { $0 * 1e3 } }])
        }
    }

    /// One worker, then `workers` worker threads, on each selected configuration (or the
    /// classifier workload), alternating `rounds` times; medians of the rounds.
    func compareWorkers(_ workers: Int) throws {
        say(BLASKernelSelection.summary)
        let unit = classifier ? "samples" : "tokens"
        let workloads: [Benchmark.Configuration?] = classifier ? [nil] : selected.map { Benchmark.Configuration.standard[$0] }
        var rows: [[String: Any]] = []
        for c in workloads {
            say((c.map { "\($0): the batch of \($0.batch) lanes shared by the workers" } ?? "\(workloadDescription) shared by the workers")
                + String(format: ", 1 BLAS thread per worker, median of %d steps, %d alternating rounds", repeats, rounds))
            var one: [Benchmark.DistributedResult] = [], many: [Benchmark.DistributedResult] = []
            for _ in 0..<rounds {
                one.append(try Benchmark.workerStep(c, classifier: workload, workers: 1, repeats: repeats))
                many.append(try Benchmark.workerStep(c, classifier: workload, workers: workers, repeats: repeats))
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            let single = median(one.map(\.tokensPerSecond)), multiple = median(many.map(\.tokensPerSecond))
            let scalings = zip(one, many).map { $1.tokensPerSecond / $0.tokensPerSecond }
            let typical = many.sorted { $0.tokensPerSecond < $1.tokensPerSecond }[many.count / 2]
            let reduction = median(typical.phasesPerRank.map { $0["reduction"] ?? 0 }) * 1e3
            say(String(format: "  1 worker: %.0f %@/s; %d workers: %.0f %@/s; scaling %.2fx (per round: %@), efficiency %.1f%%",
                       single, unit, workers, multiple, unit, multiple / single,
                       scalings.map { String(format: "%.2f", $0) }.joined(separator: " "), 100 * multiple / single / Double(workers)))
            say(String(format: "  %d workers: %.1f ms/step, of which %.2f ms waiting for the gradient sum and %.2f ms computing it (per worker, median)",
                       workers, typical.medianStepSeconds * 1e3, typical.medianWaitSeconds * 1e3, reduction))
            for (worker, phases) in typical.phasesPerRank.enumerated() {
                say("    worker \(worker): " + phases.keys.sorted().map { String(format: "%@ %.2f ms", $0, phases[$0]! * 1e3) }.joined(separator: ", "))
            }
            rows.append(["configuration": c?.description ?? workloadDescription, "unit": unit, "workers": workers,
                         "one_worker_per_s": single, "workers_per_s": multiple, "scaling": multiple / single,
                         "scaling_per_round": scalings, "ms_per_step": typical.medianStepSeconds * 1e3,
                         "allreduce_wait_ms": typical.medianWaitSeconds * 1e3, "reduction_ms": reduction,
                         "phases_ms": typical.phasesPerRank.map { $0.mapValues { $0 * 1e3 } },
                         "one_worker_phases_ms": one.sorted { $0.tokensPerSecond < $1.tokensPerSecond }[one.count / 2].phasesPerRank[0].mapValues { $0 * 1e3 }])
        }
        if json { try emit(systemFields.merging(["workers": rows]) { $1 }) }
    }

    /// Starts `mpirun -n 1` and `mpirun -n ranks` of this binary and reports the scaling.
    func compareRanks(_ ranks: Int) throws {
        let configuration = Benchmark.Configuration.standard[(only ?? 1) - 1]
        say(BLASKernelSelection.summary)
        let unit = classifier ? "samples" : "tokens"
        say(classifier ? "\(workloadDescription) per rank, 1 BLAS thread per rank, median of \(repeats) steps"
                       : "\(configuration), \(configuration.batch) lanes per rank, 1 BLAS thread per rank, median of \(repeats) steps")
        var results: [Int: [String: Any]] = [:]
        for n in [1, ranks] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            var arguments = ["mpirun", "-n", "\(n)", "-x", "OPENBLAS_NUM_THREADS=1"]
            if n > ProcessInfo.processInfo.activeProcessorCount { arguments += ["--oversubscribe", "--bind-to", "none"] }
            if getuid() == 0 { arguments.append("--allow-run-as-root") }
            arguments += [CommandLine.arguments[0], "bench", "--distributed", "--repeats", "\(repeats)", "--only", "\(only ?? 1)"]
            if classifier { arguments += ["--classifier"] + workloadArguments }
            process.arguments = arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0, let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
                  let fields = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw ValidationError("mpirun -n \(n) failed (status \(process.terminationStatus)): \(output)")
            }
            results[n] = fields
            let number = { (key: String) in fields[key] as? Double ?? 0 }
            say(String(format: "%d rank(s): %.1f %@/s, %.1f ms/step, %.2f ms/step waiting in all-reduce (%.1f%% of the step)",
                       n, number("tokens_per_s"), unit, number("ms_per_step"), number("allreduce_wait_ms"), 100 * number("wait_share")))
            for (rank, phases) in ((fields["phases_ms"] as? [[String: Double]]) ?? []).enumerated() {
                say("  rank \(rank): " + phases.keys.sorted().map { String(format: "%@ %.1f ms", $0, phases[$0]!) }.joined(separator: ", "))
            }
        }
        let one = results[1]?["tokens_per_s"] as? Double ?? 0, many = results[ranks]?["tokens_per_s"] as? Double ?? 0
        let efficiency = many / (Double(ranks) * one)
        say(String(format: "scaling efficiency 1 -> %d ranks: %.1f%% (%.0f / (%d x %.0f))", ranks, 100 * efficiency, many, ranks, one))
        if json {
            try emit(systemFields.merging(["configuration": classifier ? workloadDescription : configuration.description, "unit": unit, "efficiency": efficiency,
                                           "runs": [results[1] ?? [:], results[ranks] ?? [:]]]) { $1 })
        }
    }
}
