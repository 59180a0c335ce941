import ArgumentParser
import Foundation
import SeqTrainKit

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time char-LSTM training steps (forward, backward, clip, Adam) and this machine's sgemm rate.")

    @Option(help: "OpenBLAS threads.")
    var threads = 1

    @Option(help: "Timed steps per configuration (the median is reported).")
    var repeats = 10

    @Option(help: "Run only configuration 1, 2 or 3.")
    var only: Int?

    @Option(help: "Compare 1 rank with this many ranks (one BLAS thread each) on configuration 1, through mpirun.")
    var ranks: Int?

    @Flag(help: ArgumentHelp("Run as one rank of a distributed benchmark (started by --ranks).", visibility: .hidden))
    var distributed = false

    func validate() throws {
        if let only, !(1...3).contains(only) { throw ValidationError("--only takes 1, 2 or 3, got \(only)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats)") }
    }

    func run() throws {
        BLASThreads.set(threads)
        if distributed { return try runDistributedRank() }
        if let ranks { return try compareRanks(ranks) }
        let rate = Benchmark.sgemmRate()
        print(String(format: "sgemm 2048x1024x256 on %d BLAS thread(s): %.1f GFLOP/s", threads, rate))
        for (k, (configuration, torch)) in Benchmark.Configuration.standard.enumerated() where only == nil || only == k + 1 {
            let r = try Benchmark.trainingStep(configuration, repeats: repeats)
            print(String(format: "%@: %.2f ms/step, %.0f tokens/s, %.1f GFLOP/s (%.0f%% of sgemm rate); PyTorch 2.15 on the project's reference machine: %.0f tokens/s",
                         configuration.description, r.medianStepSeconds * 1e3, r.tokensPerSecond, r.gigaflops,
                         100 * r.gigaflops / rate, torch))
        }
    }

    /// One rank of the distributed benchmark: prints one line of figures from rank 0.
    func runDistributedRank() throws {
        let communicator = try MPICommunicator()
        let configuration = Benchmark.Configuration.standard[(only ?? 1) - 1].0
        let r = try Benchmark.distributedStep(configuration, communicator: communicator, repeats: repeats)
        if communicator.rank == 0 {
            print(String(format: "ranks=%d tokens_per_s=%.0f step_ms=%.2f allreduce_wait_ms=%.2f wait_share=%.4f",
                         r.world, r.tokensPerSecond, r.medianStepSeconds * 1e3, r.medianWaitSeconds * 1e3, r.waitShare))
        }
    }

    /// Starts `mpirun -n 1` and `mpirun -n ranks` of this binary and reports the scaling.
    func compareRanks(_ ranks: Int) throws {
        guard ranks >= 2 else { throw ValidationError("--ranks must be at least 2, got \(ranks)") }
        let configuration = Benchmark.Configuration.standard[(only ?? 1) - 1].0
        print("\(configuration), \(configuration.batch) lanes per rank, 1 BLAS thread per rank, median of \(repeats) steps")
        var results: [Int: [String: Double]] = [:]
        for n in [1, ranks] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            var arguments = ["mpirun", "-n", "\(n)", "-x", "OPENBLAS_NUM_THREADS=1"]
            if n > ProcessInfo.processInfo.activeProcessorCount { arguments += ["--oversubscribe", "--bind-to", "none"] }
            if getuid() == 0 { arguments.append("--allow-run-as-root") }
            arguments += [CommandLine.arguments[0], "bench", "--distributed", "--repeats", "\(repeats)", "--only", "\(only ?? 1)"]
            process.arguments = arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0, let line = output.split(separator: "\n").last(where: { $0.hasPrefix("ranks=") }) else {
                throw ValidationError("mpirun -n \(n) failed (status \(process.terminationStatus)): \(output)")
            }
            var fields: [String: Double] = [:]
            for pair in line.split(separator: " ") {
                let kv = pair.split(separator: "=")
                if kv.count == 2 { fields[String(kv[0])] = Double(kv[1]) }
            }
            results[n] = fields
            print(String(format: "%d rank(s): %.0f tokens/s, %.1f ms/step, %.2f ms/step waiting in all-reduce (%.1f%% of the step)",
                         n, fields["tokens_per_s"] ?? 0, fields["step_ms"] ?? 0, fields["allreduce_wait_ms"] ?? 0, 100 * (fields["wait_share"] ?? 0)))
        }
        let one = results[1]?["tokens_per_s"] ?? 0, many = results[ranks]?["tokens_per_s"] ?? 0
        print(String(format: "scaling efficiency 1 -> %d ranks: %.1f%% (%.0f / (%d x %.0f)); PyTorch DDP over gloo, 2 processes: about 21000 tokens/s, 89%% on the project's machine",
                     ranks, 100 * many / (Double(ranks) * one), many, ranks, one))
    }
}
