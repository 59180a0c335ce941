import Foundation

/// Each step's phases on this rank, written as a Chrome trace (`metrics.timeline`:
/// `RUN_DIR/timeline-rank-R.json`, the JSON array format, for chrome://tracing or
/// ui.perfetto.dev) and/or as one text line per step (`--debug`: `RUN_DIR/rank-R.log`). Both are
/// appended step by step (the trace format allows the closing bracket to be missing), so a killed
/// run keeps them and a resumed one continues the same files.
final class Timeline {
    let tracePath: String?
    let logPath: String?
    let rank: Int
    var last: Double
    var pending: [String] = []
    var phases: [(String, Double)] = []

    init(directory: String, rank: Int, trace: Bool, log: Bool) throws {
        tracePath = trace ? "\(directory)/timeline-rank-\(rank).json" : nil
        logPath = log ? "\(directory)/rank-\(rank).log" : nil
        self.rank = rank
        last = Self.microseconds()
        if let tracePath, !FileManager.default.fileExists(atPath: tracePath) {
            let name = "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": \(rank), \"tid\": 0, \"args\": {\"name\": \"rank \(rank)\"}},\n"
            try DurableFile.append("[\n" + name, to: tracePath)
        }
    }

    static func microseconds() -> Double { Date().timeIntervalSince1970 * 1e6 }

    /// Starts timing from now (the start of a step).
    func start() { last = Self.microseconds() }

    /// Records the phase that ends now, begun at the previous lap.
    func lap(_ phase: String, step: Int) {
        let now = Self.microseconds()
        if tracePath != nil {
            pending.append(String(format: "{\"name\": \"%@\", \"ph\": \"X\", \"pid\": %d, \"tid\": 0, \"ts\": %.0f, \"dur\": %.0f, \"args\": {\"step\": %d}},\n",
                                  phase, rank, last, max(now - last, 0), step))
        }
        phases.append((phase, max(now - last, 0) / 1000))
        last = now
    }

    /// Appends the step's events to the trace and its line to the log.
    func flush(step: Int, note: String = "") throws {
        if let tracePath, !pending.isEmpty { try DurableFile.append(pending.joined(), to: tracePath) }
        if let logPath {
            let line = "step \(step): " + phases.map { String(format: "%@ %.2f ms", $0.0, $0.1) }.joined(separator: ", ") + note + "\n"
            try DurableFile.append(line, to: logPath)
        }
        pending.removeAll(keepingCapacity: true)
        phases.removeAll(keepingCapacity: true)
    }
}
