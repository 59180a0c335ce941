import Foundation
import XCTest
import SeqTrainKit

/// End-to-end runs of the char-LM experiment on a small generated text.
final class TrainingTests: XCTestCase {
    /// Sentences from a tiny grammar: characters are easy to predict from context, not from counts.
    static func grammarText(sentences: Int, seed: UInt64) -> String {
        let subjects = ["the cat", "a dog", "my bird", "our fox"], verbs = ["sat", "ran", "hid"], objects = ["mat", "rug", "bed", "box"]
        let random = CounterRandom(seed: seed, purpose: .synthetic)
        var text = ""
        for i in 0..<sentences {
            let pick = { (options: [String], k: UInt64) in options[random.integer(below: options.count, stream: k, index: UInt64(i))] }
            text += "\(pick(subjects, 0)) \(pick(verbs, 1)) on the \(pick(objects, 2)).\n"
        }
        return text
    }

    func makeConfig(_ dir: String, extra: String = "", overrides: [String] = []) throws -> ExperimentConfig {
        try ExperimentConfig.parse("""
            [job]
            name = "grammar"
            seed = 7
            run_dir = "\(dir)/run"
            [data]
            paths = ["\(dir)/corpus.txt"]
            validation_fraction = 0.1
            [model]
            embedding = 16
            hidden = 48
            layers = 1
            [training]
            batch_size = 8
            seq_len = 32
            epochs = 5
            eval_every = 50
            [optimizer]
            lr = 0.01
            [checkpoint]
            keep_best = false
            interval = 50
            keep_last = 2
            [metrics]
            log_every = 10
            \(extra)
            """, source: "\(dir)/grammar.toml", overrides: overrides)
    }

    func writeCorpus(_ dir: String) throws -> String {
        let text = Self.grammarText(sentences: 500, seed: 3)
        try text.write(toFile: "\(dir)/corpus.txt", atomically: true, encoding: .utf8)
        return text
    }

    /// A temporary directory holding the grammar corpus (removed after the test), and quiet options.
    func scratchRun() throws -> (dir: String, text: String, options: TrainerOptions) {
        let dir = try temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        var options = TrainerOptions()
        options.quiet = true
        return (dir, try writeCorpus(dir), options)
    }

    func metrics(_ dir: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: "\(dir)/run/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    func testTrainsBelowUnigramEntropySamplesReproduciblyAndEvalMatchesValidation() throws {
        let (dir, text, options) = try scratchRun()
        let config = try makeConfig(dir)
        let trainer = try Trainer(config: config, options: options)
        let unigram = (trainer.experiment as! CharLMTask).unigramEntropy
        let summary = try trainer.run()
        let validation = try XCTUnwrap(summary.validationLoss)
        XCTAssertLessThan(validation, 0.5 * unigram, "validation loss \(validation) vs unigram entropy \(unigram)")

        // Metrics: one JSON object per logged step, with the documented fields.
        let lines = try metrics(dir)
        XCTAssertEqual(lines.last?["step"] as? Int, summary.steps)
        for key in ["step", "epoch", "loss", "val_loss", "perplexity", "lr", "grad_norm", "tokens_per_s", "seconds"] {
            XCTAssertNotNil(lines.last?[key], key)
        }
        XCTAssertEqual(lines.last?["val_loss"] as? Double ?? .nan, validation, accuracy: 1e-12)

        // Checkpoints: the newest two kept, the config resolved beside them.
        let kept = Checkpoint.list("\(dir)/run")
        XCTAssertEqual(kept.count, 2)
        XCTAssertTrue(kept.last!.hasSuffix(String(format: "step-%08d.safetensors", summary.steps)))
        let resolved = try ExperimentConfig.load(path: "\(dir)/run/config.toml")
        XCTAssertEqual(resolved.resolvedPairs.map(\.1), config.resolvedPairs.map(\.1))

        // Sampling: the same seed gives the same text; the text looks like the grammar.
        let loaded = try LoadedCharLM(path: "\(dir)/run")
        let a = try loaded.sample(prime: "the ", length: 200, temperature: 0.5, topK: 0, seed: 11)
        let b = try loaded.sample(prime: "the ", length: 200, temperature: 0.5, topK: 0, seed: 11)
        let c = try loaded.sample(prime: "the ", length: 200, temperature: 0.5, topK: 0, seed: 12)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertTrue(a.contains(" on the "), a)
        XCTAssertEqual(try loaded.sample(prime: "a ", length: 30, temperature: 0, topK: 0, seed: 1),
                       try loaded.sample(prime: "a ", length: 30, temperature: 0, topK: 0, seed: 99), "argmax ignores the seed")

        // eval on the held-out text gives the loss the trainer logged for this checkpoint.
        let scalars = Array(text.unicodeScalars)
        let held = Int((Double(scalars.count) * 0.1).rounded())
        var tail = String.UnicodeScalarView()
        tail.append(contentsOf: scalars[(scalars.count - held)...])
        try String(tail).write(toFile: "\(dir)/validation.txt", atomically: true, encoding: .utf8)
        let evaluation = try loaded.evaluate(paths: ["\(dir)/validation.txt"])
        XCTAssertEqual(evaluation.loss, validation, accuracy: 1e-9)
        XCTAssertEqual(evaluation.skipped, 0)
    }

    func testResumeContinuesBitForBit() throws {
        let (dir, _, options) = try scratchRun()
        // The last run's stack carries three states per lane (LSTM, 2-layer GRU, RNN) in its checkpoints.
        let stack = "model.layers=[{type = \"lstm\", hidden = 12}, {type = \"gru\", hidden = 8, layers = 2, "
            + "dropout = 0.2}, {type = \"dropout\", p = 0.1}, {type = \"rnn\", hidden = 6}, "
            + "{type = \"dense\", units = 10}]"
        for (stateful, layers) in [(true, "model.layers=2"), (false, "model.layers=2"), (true, stack)] {
            let sets = ["training.max_steps=40", "training.stateful=\(stateful)", "model.dropout=0.2", layers,
                        "lr_scheduler.kind=plateau", "training.eval_every=10", "checkpoint.interval=25"]
            var options = options
            options.overwrite = true
            let whole = try Trainer(config: try makeConfig(dir, overrides: sets), options: options)
            let full = try whole.run()
            let finalWeights = whole.experiment.trainableModel.parameters.values.array

            // Kill after step 30 (the checkpoint at 25 is the newest), then resume.
            var killed = options
            killed.failure = (rank: 0, step: 30, mode: .raise)
            let interrupted = try Trainer(config: try makeConfig(dir, overrides: sets), options: killed)
            XCTAssertThrowsError(try interrupted.run())
            var resuming = TrainerOptions()
            resuming.quiet = true
            resuming.resume = true
            let resumed = try Trainer(config: try makeConfig(dir, overrides: sets), options: resuming)
            let rest = try resumed.run()
            XCTAssertEqual(rest.losses, Array(full.losses[25...]), "stateful \(stateful)")
            XCTAssertEqual(resumed.experiment.trainableModel.parameters.values.array, finalWeights, "stateful \(stateful)")
            let steps = try metrics(dir).map { $0["step"] as! Int }
            XCTAssertEqual(steps, steps.sorted(), "metrics lines after the checkpoint are not repeated")
            XCTAssertEqual(Set(steps).count, steps.count)
        }
    }

    /// `sample --length` far beyond what fits in a terminal streams: text arrives within seconds,
    /// long before the end (it was once held whole and printed last); a length past the bound is
    /// refused naming the option.
    func testALongSampleStreamsAndAnEndlessOneIsRefused() throws {
        let (dir, _, options) = try scratchRun()
        _ = try Trainer(config: try makeConfig(dir, overrides: ["training.max_steps=2"]), options: options).run()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: MultiRankTests.binary)
        process.arguments = ["sample", "\(dir)/run", "--length", "100000000"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        final class Received: @unchecked Sendable { var data = Data() }
        let received = Received(), arrived = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            received.data = out.fileHandleForReading.availableData
            arrived.signal()
        }
        let inTime = arrived.wait(timeout: .now() + 15) == .success
        let stillRunning = process.isRunning
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        if !inTime { _ = arrived.wait(timeout: .now() + 5) }
        XCTAssertTrue(inTime, "no text within 15 s")
        XCTAssertFalse(received.data.isEmpty, "stdout had text before the end")
        XCTAssertTrue(stillRunning, "the text came while 100,000,000 characters were still being generated")

        let endless = try MultiRankTests.execute([MultiRankTests.binary, "sample", "\(dir)/run", "--length", "2000000000"],
                                                 timeout: 30)
        XCTAssertEqual(endless.status, 64, endless.errors)
        XCTAssertTrue(endless.errors.contains("--length must be between 0 and 1000000000 characters, got 2000000000"),
                      endless.errors)
    }

    /// A batch script passes --resume on every start: with no checkpoint yet it starts at step 0,
    /// and metrics of a run stopped before its first checkpoint are not kept beside the new ones.
    func testResumeWithoutACheckpointStartsAtStepZero() throws {
        let (dir, _, options) = try scratchRun()
        let sets = ["training.max_steps=12", "checkpoint.interval=10", "metrics.log_every=1"]
        var reference = options
        reference.overwrite = true
        let whole = try Trainer(config: try makeConfig(dir, overrides: sets), options: reference).run()

        // Killed at step 6, before its first checkpoint: metrics.jsonl holds steps 1-5, no checkpoint.
        var killed = reference
        killed.failure = (rank: 0, step: 5, mode: .raise)
        XCTAssertThrowsError(try Trainer(config: try makeConfig(dir, overrides: sets), options: killed).run())
        XCTAssertEqual(try metrics(dir).count, 5)
        XCTAssertTrue(Checkpoint.list("\(dir)/run").isEmpty)
        var resuming = options
        resuming.resume = true
        let trainer = try Trainer(config: try makeConfig(dir, overrides: sets), options: resuming)
        let started = try trainer.run()
        XCTAssertEqual(trainer.resumeNote, "--resume: no checkpoint in \(dir)/run/checkpoints yet; starting at step 0")
        XCTAssertEqual(started.losses, whole.losses)
        XCTAssertEqual(try metrics(dir).map { $0["step"] as! Int }, Array(1...12))

        // Into a directory that does not exist yet.
        let fresh = try Trainer(config: try makeConfig(dir, overrides: sets + ["job.run_dir=\(dir)/new"]), options: resuming)
        XCTAssertEqual(try fresh.run().losses, whole.losses)
    }

    /// A resume refused because a key changed names the key and both values; keys a resume may
    /// change (max_steps here) are not listed.
    func testAResumeRefusedForAChangedKeyNamesItAndBothValues() throws {
        let (dir, _, options) = try scratchRun()
        let sets = ["training.max_steps=2", "checkpoint.interval=2"]
        _ = try Trainer(config: try makeConfig(dir, overrides: sets), options: options).run()
        var resuming = options
        resuming.resume = true
        let changed = try makeConfig(dir, overrides: sets + ["training.max_steps=4", "model.hidden=24"])
        XCTAssertThrowsError(try Trainer(config: changed, options: resuming).run()) { error in
            XCTAssertTrue("\(error)".contains(
                "the checkpoint's model layout differs from this config's: model.hidden = 24 here, 48 in the checkpoint; "
                + "resume with the run's own config.toml"), "\(error)")
        }
    }

    func testAnOccupiedRunDirectoryIsNotOverwrittenSilently() throws {
        let (dir, _, options) = try scratchRun()
        _ = try Trainer(config: try makeConfig(dir, overrides: ["training.max_steps=3"]), options: options).run()
        XCTAssertThrowsError(try Trainer(config: try makeConfig(dir, overrides: ["training.max_steps=3"]), options: options).run()) { error in
            XCTAssertTrue("\(error)".contains("already holds a run"), "\(error)")
        }
        XCTAssertEqual(Checkpoint.list("\(dir)/run").count, 1)
    }

    func testCheckpointErrorsNameTheFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: "\(dir)/broken.safetensors"))
        XCTAssertThrowsError(try LoadedCharLM(path: "\(dir)/broken.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("broken.safetensors: only 3 bytes"), "\(error)")
        }
        var notOurs = SafetensorsFile()
        notOurs.tensors["w"] = StoredTensor(floats: [1], shape: [1])
        try notOurs.write(to: "\(dir)/other.safetensors")
        XCTAssertThrowsError(try LoadedCharLM(path: "\(dir)/other.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("not a seqtrain char-LM checkpoint"), "\(error)")
        }
        XCTAssertThrowsError(try LoadedCharLM(path: "\(dir)")) { error in
            XCTAssertTrue("\(error)".contains("has no checkpoints yet"), "\(error)")
        }
    }

    func testHugeSizesAreErrorsBeforeAnythingIsAllocated() throws {
        let (dir, _, options) = try scratchRun()
        let cases: [(String, String)] = [
            ("model.hidden=4294967296", "model.embedding, model.hidden, model.layers: "
                + "4 × 4294967296 × 4294967314 × 1 is too large to allocate"),
            ("model.hidden=1000000", "a model of 4000093000357 parameters "
                + "(model.embedding, model.hidden, model.layers) would need"),
            ("training.seq_len=100000000", "the layer buffers of a batch of 8 sequences of 100000000 steps would need"),
            // A BLAS matrix dimension past 2^31 - 1 (OpenBLAS's 32-bit sizes), caught before the conversion.
            ("training.seq_len=300000000", "training.batch_size × the sequence length = 2400000000 exceeds the "
                + "2147483647 rows"),
        ]
        for (override, expected) in cases {
            XCTAssertThrowsError(try Trainer(config: try makeConfig(dir, overrides: [override]), options: options).run()) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(override): \(error)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/run"))
    }

    func testDivergenceStopsWithAnExplanationAndKeepsTheCheckpoints() throws {
        let (dir, _, options) = try scratchRun()
        // A rate that overflows float32 weights within a few steps. (At 1e30 the weights stay finite:
        // the gates saturate, their derivatives flush to zero, and the loss is huge but finite.)
        let config = try makeConfig(dir, overrides: ["optimizer.kind=sgd", "optimizer.lr=1e38", "training.clip_norm=0",
                                                      "checkpoint.interval=1", "training.max_steps=20"])
        XCTAssertThrowsError(try Trainer(config: config, options: options).run()) { error in
            XCTAssertTrue("\(error)".contains("training diverged before this update"), "\(error)")
        }
        XCTAssertFalse(Checkpoint.list("\(dir)/run").isEmpty, "the checkpoints before the divergence are kept")
    }
}

/// TensorBoard event files read back by a reader written here from the format's description
/// (record framing with masked CRC-32C, Event and Summary protos), not by seqtrain's own code.
enum TensorBoardReader {
    /// CRC-32C, bit by bit (independent of the table-driven kernel).
    static func crc32c(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    static func masked(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }

    /// Field number → values: UInt64 for varint and fixed, [UInt8] for length-delimited.
    static func fields(_ bytes: ArraySlice<UInt8>) throws -> [(Int, Any)] {
        var out: [(Int, Any)] = [], i = bytes.startIndex
        func varint() throws -> UInt64 {
            var value: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < bytes.endIndex else { throw SeqTrainError("varint runs past the end") }
                let b = bytes[i]; i += 1
                value |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return value }
                shift += 7
            }
        }
        func fixed(_ n: Int) throws -> UInt64 {
            guard i + n <= bytes.endIndex else { throw SeqTrainError("fixed field runs past the end") }
            defer { i += n }
            return (0..<n).reduce(UInt64(0)) { $0 | UInt64(bytes[i + $1]) << (8 * UInt64($1)) }
        }
        while i < bytes.endIndex {
            let key = try varint()
            switch key & 7 {
            case 0: out.append((Int(key >> 3), try varint()))
            case 1: out.append((Int(key >> 3), try fixed(8)))
            case 5: out.append((Int(key >> 3), try fixed(4)))
            case 2:
                let n = Int(try varint())
                guard i + n <= bytes.endIndex else { throw SeqTrainError("length-delimited field runs past the end") }
                out.append((Int(key >> 3), Array(bytes[i..<(i + n)])))
                i += n
            default: throw SeqTrainError("wire type \(key & 7)")
            }
        }
        return out
    }

    struct Event {
        var step = 0
        var fileVersion: String?
        var scalars: [String: Float] = [:]
        var texts: [String: String] = [:]
        var sessionStart = false
    }

    static func read(_ path: String) throws -> [Event] {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var events: [Event] = [], i = 0
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(data[at + $1]) << (8 * UInt32($1)) } }
        while i < data.count {
            guard i + 12 <= data.count else { throw SeqTrainError("a torn record header at byte \(i)") }
            let length = Int((0..<8).reduce(UInt64(0)) { $0 | UInt64(data[i + $1]) << (8 * UInt64($1)) })
            guard u32(i + 8) == masked(crc32c(data[i..<(i + 8)])) else { throw SeqTrainError("bad length CRC at byte \(i)") }
            let start = i + 12
            guard start + length + 4 <= data.count else { throw SeqTrainError("a torn record at byte \(i)") }
            let body = data[start..<(start + length)]
            guard u32(start + length) == masked(crc32c(body)) else { throw SeqTrainError("bad data CRC at byte \(i)") }
            var event = Event()
            for (field, value) in try fields(body) {
                switch field {
                case 2: event.step = Int(Int64(bitPattern: value as! UInt64))
                case 3: event.fileVersion = String(decoding: value as! [UInt8], as: UTF8.self)
                case 6: event.sessionStart = try fields((value as! [UInt8])[...]).contains { $0.0 == 1 && ($0.1 as? UInt64) == 1 }
                case 5:
                    for (f, item) in try fields((value as! [UInt8])[...]) where f == 1 {
                        let parts = try fields((item as! [UInt8])[...])
                        let tag = parts.first { $0.0 == 1 }.map { String(decoding: $0.1 as! [UInt8], as: UTF8.self) } ?? ""
                        if let simple = parts.first(where: { $0.0 == 2 }) {
                            event.scalars[tag] = Float(bitPattern: UInt32(simple.1 as! UInt64))
                        }
                        if let tensor = parts.first(where: { $0.0 == 8 }) {
                            let strings = try fields((tensor.1 as! [UInt8])[...]).filter { $0.0 == 8 }
                            event.texts[tag] = strings.map { String(decoding: $0.1 as! [UInt8], as: UTF8.self) }.joined()
                        }
                    }
                default: break
                }
            }
            events.append(event)
            i = start + length + 4
        }
        return events
    }

}

extension TrainingTests {
    func testTensorBoardFilesHoldEveryScalarOfTheMetricsAndTheConfig() throws {
        let training = self
        let (dir, _, options) = try training.scratchRun()
        let sets = ["training.max_steps=12", "metrics.log_every=2", "training.eval_every=6", "metrics.tensorboard=true", "checkpoint.interval=6"]
        var first = options
        first.failure = (rank: 0, step: 9, mode: .raise)
        XCTAssertThrowsError(try Trainer(config: try training.makeConfig(dir, overrides: sets), options: first).run())
        var resuming = options
        resuming.resume = true
        _ = try Trainer(config: try training.makeConfig(dir, overrides: sets), options: resuming).run()

        let files = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/run/tensorboard").filter { $0.hasPrefix("events.out.tfevents.") }.sorted()
        XCTAssertEqual(files.count, 2, "one file per start")
        let events = try files.flatMap { try TensorBoardReader.read("\(dir)/run/tensorboard/\($0)") }
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
        XCTAssertTrue(events.first { $0.texts["config"] != nil }?.texts["config"]?.contains("hidden = ") ?? false)
        // The second start says where it restarted, so TensorBoard drops what the first wrote after step 6.
        XCTAssertEqual(events.filter(\.sessionStart).map(\.step), [6])
        let resumedAt = events.firstIndex { $0.sessionStart } ?? 0
        var latest: [Int: TensorBoardReader.Event] = [:]
        for event in events[resumedAt...] where !event.scalars.isEmpty { latest[event.step] = event }
        for event in events[..<resumedAt] where !event.scalars.isEmpty && event.step <= 6 { latest[event.step] = event }
        let lines = try training.metrics(dir)
        XCTAssertEqual(lines.count, 6)
        for line in lines {
            let step = line["step"] as! Int
            let event = try XCTUnwrap(latest[step], "no scalars for step \(step)")
            for (name, value) in line where name != "step" {
                guard let number = value as? Double else { XCTAssertNil(event.scalars[name], "\(name) at \(step)"); continue }
                XCTAssertEqual(event.scalars[name], Float(number), "\(name) at step \(step)")
            }
        }
    }
}

extension TrainingTests {
    func testTheDoctorWarnsAboutLearningRatesAndFindsFrozenLearning() throws {
        let (dir, _, options) = try scratchRun()
        var quiet = options
        quiet.doctor = false
        func run(_ sets: [String]) throws -> Trainer {
            var fresh = quiet
            fresh.overwrite = true
            let trainer = try Trainer(config: try makeConfig(dir, overrides: sets), options: fresh)
            _ = try trainer.run()
            return trainer
        }
        let healthy = try run(["training.max_steps=60"])
        XCTAssertEqual(healthy.diagnoses, [], "a healthy run with Adam at 1e-3 (the default) gets no warning")
        let frozen = try run(["training.max_steps=60", "optimizer.lr=0"])
        XCTAssertEqual(frozen.diagnoses.first, "optimizer.lr = 0: the weights will not change")
        XCTAssertTrue(frozen.diagnoses.contains { $0.hasPrefix("learning looks frozen: over steps 1 to 20 the weights moved by 0.0e+00") }, "\(frozen.diagnoses)")
        XCTAssertEqual(frozen.diagnoses.filter { $0.hasPrefix("learning looks frozen") }.count, 1, "reported once")
        let high = try Trainer(config: try makeConfig(dir, overrides: ["optimizer.lr=0.5"]), options: quiet)
        XCTAssertEqual(TrainingDoctor.examine(high.config).first?.hasPrefix("optimizer.lr = 0.5 is far above the usual range for adam (1e-05 to 0.01)"), true)
        let low = try makeConfig(dir, overrides: ["optimizer.kind=sgd", "optimizer.lr=1e-7"])
        XCTAssertEqual(TrainingDoctor.examine(low).first?.hasPrefix("optimizer.lr = 1e-07 is far below the usual range for sgd (0.0001 to 1.0)"), true)
        XCTAssertEqual(TrainingDoctor.examine(try makeConfig(dir, overrides: ["optimizer.kind=sgd", "optimizer.lr=0.1"])), [])
    }
}

#if canImport(FoundationXML)
import FoundationXML
#endif

extension TrainingTests {
    /// Counts elements while checking that the page is well-formed XML (XHTML with inline SVG).
    final class ElementCounter: NSObject, XMLParserDelegate {
        var paths = 0, svgs = 0, cells: [String] = [], text = ""
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            if name == "path" && attributes["class"] == "series" { paths += 1 }
            if name == "svg" { svgs += 1 }
            text = ""
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "td" { cells.append(text) }
        }
    }

    func testReportIsWellFormedWithOnePathPerSeriesAndTheConfigDifferences() throws {
        let (dir, _, options) = try scratchRun()
        for (name, lr) in [("slow", "0.001"), ("fast", "0.01")] {
            var fresh = options
            fresh.overwrite = true
            _ = try Trainer(config: try makeConfig(dir, overrides: ["training.max_steps=30", "training.eval_every=10", "optimizer.lr=\(lr)",
                                                                    "job.run_dir=\(dir)/\(name)"]), options: fresh).run()
        }
        let result = try MultiRankTests.execute([MultiRankTests.binary, "report", "\(dir)/slow", "\(dir)/fast", "--out", "\(dir)/report.html",
                                                 "--svg", "\(dir)/charts"])
        XCTAssertEqual(result.status, 0, result.errors)
        let parser = try XCTUnwrap(XMLParser(contentsOf: URL(fileURLWithPath: "\(dir)/report.html")))
        let counter = ElementCounter()
        parser.delegate = counter
        XCTAssertTrue(parser.parse(), "well-formed: \(parser.parserError.map { "\($0)" } ?? "")")
        XCTAssertEqual(counter.svgs, 4, "loss, learning rate, gradient norm, throughput")
        // Two runs: training and validation loss, learning rate, gradient norm, throughput.
        XCTAssertEqual(counter.paths, 2 * (2 + 1 + 1 + 1))
        let lr = try XCTUnwrap(counter.cells.firstIndex(of: "optimizer.lr"))
        XCTAssertEqual(Array(counter.cells[(lr + 1)...(lr + 2)]), ["0.001", "0.01"], "the configs differ in optimizer.lr")
        // The same charts as standalone SVG files.
        for (name, paths) in [("loss", 4), ("learning_rate", 2), ("gradient_norm", 2), ("throughput", 2)] {
            let chart = try XCTUnwrap(XMLParser(contentsOf: URL(fileURLWithPath: "\(dir)/charts/\(name).svg")))
            let svgCounter = ElementCounter()
            chart.delegate = svgCounter
            XCTAssertTrue(chart.parse(), name)
            XCTAssertEqual(svgCounter.paths, paths, name)
        }
        // A diverged run's huge losses are drawn at the chart's edge, never as NaN coordinates.
        let metrics = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(dir)/fast/metrics.jsonl"))
        metrics.seekToEndOfFile()
        metrics.write(Data("{\"step\": 31, \"loss\": 1e308, \"val_loss\": -1e308}\n".utf8))
        try metrics.close()
        let diverged = try RunReport.html(runs: ["\(dir)/slow", "\(dir)/fast"])
        for bad in ["NaN", "nan", "inf"] { XCTAssertFalse(diverged.contains(bad), bad) }
        // A missing run directory is an error naming it.
        let missing = try MultiRankTests.execute([MultiRankTests.binary, "report", "\(dir)/nowhere", "--out", "\(dir)/r.html"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.errors.contains("\(dir)/nowhere/metrics.jsonl: cannot read it"), missing.errors)
    }
}
