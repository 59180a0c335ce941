import Foundation

/// How training reports progress: `metrics.progress` or `--progress`.
public enum ProgressStyle: String, CaseIterable {
    /// The bar for a single process writing to a terminal, plain lines otherwise.
    case auto
    /// One line redrawn in place (carriage return and ANSI erase): for a person watching a terminal.
    case bar
    /// One plain line per report: for log files, pipes, mpirun and Slurm output.
    case lines
    /// Nothing on stdout but errors.
    case none

    /// What `auto` means here. Under an MPI launcher or Slurm the ranks' stdout is often a
    /// pseudo-terminal even when the user sends mpirun's output to a file, so it says nothing about
    /// where the output is read: plain lines. A bar needs a real terminal that understands escapes.
    public func resolved(environment: [String: String] = ProcessInfo.processInfo.environment,
                         stdoutIsTerminal: Bool = isatty(STDOUT_FILENO) == 1) -> ProgressStyle {
        guard self == .auto else { return self }
        let launched = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "SLURM_JOB_ID", "SLURM_STEP_ID"]
            .contains { environment[$0] != nil }
        let capable = environment["TERM"].map { !$0.isEmpty && $0 != "dumb" } ?? false
        return !launched && stdoutIsTerminal && capable ? .bar : .lines
    }
}

/// Progress on stdout: a redrawn bar (`interactive`) or plain lines.
public final class ProgressReporter {
    let total: Int
    let interactive: Bool
    let started = Benchmark.now()
    var drewBar = false
    /// What throughput counts: "tok" for tokens, "samples".
    let unit: String

    public init(totalSteps: Int, unit: String = "tokens", interactive: Bool) {
        total = totalSteps
        self.unit = unit == "tokens" ? "tok" : unit
        self.interactive = interactive
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }

    public func update(step: Int, loss: Double, unitsPerSecond: Double, validation: ValidationResult?) {
        let elapsed = Benchmark.now() - started
        let eta = step > 0 ? elapsed / Double(step) * Double(total - step) : 0
        var line = String(format: "step %d/%d  loss %.4f  %.0f %@/s  ETA %@", step, total, loss, unitsPerSecond, unit, ProgressReporter.duration(eta))
        if let validation {
            line += String(format: "  val_loss %.4f", validation.loss)
            for (name, value) in validation.metrics {
                let short = name.hasPrefix("val_") ? String(name.dropFirst(4)) : name
                line += String(format: "  %@ %.4f", short == "perplexity" ? "ppl" : short, value)
            }
        }
        if interactive {
            let width = 24, filled = total > 0 ? width * step / total : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            print("\r\u{1B}[2K[\(bar)] \(line)", terminator: "")
            fflush(stdout)
            drewBar = true
        } else {
            print(line)
        }
    }

    public func message(_ text: String) {
        if interactive && drewBar { print("\r\u{1B}[2K", terminator: "") }
        print(text)
        drewBar = false
    }

    public func finish() { if interactive && drewBar { print("") } }
}
