import Foundation

/// Progress on the terminal: a redrawn bar when stdout is a terminal, plain lines otherwise.
public final class ProgressReporter {
    let total: Int
    let interactive: Bool
    let started = Benchmark.now()
    var drewBar = false
    /// What throughput counts: "tok" for tokens, "samples".
    let unit: String

    public init(totalSteps: Int, unit: String = "tokens", interactive: Bool = isatty(STDOUT_FILENO) == 1) {
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
