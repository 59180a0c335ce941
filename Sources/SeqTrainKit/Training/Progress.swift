import Foundation

/// Progress on the terminal: a redrawn bar when stdout is a terminal, plain lines otherwise.
public final class ProgressReporter {
    let total: Int
    let interactive: Bool
    let started = Benchmark.now()
    var drewBar = false

    public init(totalSteps: Int, interactive: Bool = isatty(STDOUT_FILENO) == 1) {
        total = totalSteps
        self.interactive = interactive
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }

    public func update(step: Int, loss: Double, tokensPerSecond: Double, validationLoss: Double?) {
        let elapsed = Benchmark.now() - started
        let eta = step > 0 ? elapsed / Double(step) * Double(total - step) : 0
        var line = String(format: "step %d/%d  loss %.4f  %.0f tok/s  ETA %@", step, total, loss, tokensPerSecond, ProgressReporter.duration(eta))
        if let validationLoss { line += String(format: "  val_loss %.4f (ppl %.2f)", validationLoss, exp(validationLoss)) }
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
