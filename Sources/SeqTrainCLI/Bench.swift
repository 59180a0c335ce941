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

    func validate() throws {
        if let only, !(1...3).contains(only) { throw ValidationError("--only takes 1, 2 or 3, got \(only)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats)") }
    }

    func run() throws {
        BLASThreads.set(threads)
        let rate = Benchmark.sgemmRate()
        print(String(format: "sgemm 2048x1024x256 on %d BLAS thread(s): %.1f GFLOP/s", threads, rate))
        for (k, (configuration, torch)) in Benchmark.Configuration.standard.enumerated() where only == nil || only == k + 1 {
            let r = try Benchmark.trainingStep(configuration, repeats: repeats)
            print(String(format: "%@: %.2f ms/step, %.0f tokens/s, %.1f GFLOP/s (%.0f%% of sgemm rate); PyTorch 2.15 reference %.0f tokens/s",
                         configuration.description, r.medianStepSeconds * 1e3, r.tokensPerSecond, r.gigaflops,
                         100 * r.gigaflops / rate, torch))
        }
    }
}
