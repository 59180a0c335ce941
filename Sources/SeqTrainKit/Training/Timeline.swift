import Foundation

/// `metrics.timeline`: each rank's phases of every step as a Chrome trace (the JSON array format),
/// `RUN_DIR/timeline-rank-R.json`, for chrome://tracing or ui.perfetto.dev. Events are appended
/// step by step (the format allows the closing bracket to be missing), so a killed run keeps its
/// timeline and a resumed one continues the same file.
final class Timeline {
    let path: String
    let rank: Int
    var last: Double
    var pending: [String] = []

    init(directory: String, rank: Int) throws {
        path = "\(directory)/timeline-rank-\(rank).json"
        self.rank = rank
        last = Self.microseconds()
        if !FileManager.default.fileExists(atPath: path) {
            let name = "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": \(rank), \"tid\": 0, \"args\": {\"name\": \"rank \(rank)\"}},\n"
            try DurableFile.append("[\n" + name, to: path)
        }
    }

    static func microseconds() -> Double { Date().timeIntervalSince1970 * 1e6 }

    /// Starts timing from now (the start of a step).
    func start() { last = Self.microseconds() }

    /// Records the phase that ends now, begun at the previous lap.
    func lap(_ phase: String, step: Int) {
        let now = Self.microseconds()
        pending.append(String(format: "{\"name\": \"%@\", \"ph\": \"X\", \"pid\": %d, \"tid\": 0, \"ts\": %.0f, \"dur\": %.0f, \"args\": {\"step\": %d}},\n",
                              phase, rank, last, max(now - last, 0), step))
        last = now
    }

    /// Appends the step's events to the file.
    func flush() throws {
        guard !pending.isEmpty else { return }
        try DurableFile.append(pending.joined(), to: path)
        pending.removeAll(keepingCapacity: true)
    }
}
