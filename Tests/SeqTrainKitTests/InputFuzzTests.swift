import Foundation
import XCTest
import SeqTrainKit

/// Hostile inputs through the real binary, each case in its own child process, so that a trap (a
/// signal, exit 132 or 134) cannot go unseen: configs, text, `.npy`, CSV/TSV and safetensors
/// checkpoints with their metadata, generated and mutated from valid files with a fixed seed.
/// Every case must end with exit 0 or with seqtrain's error code 2 and an "error:" line, within
/// its time limit.
final class InputFuzzTests: XCTestCase {
    var dir = ""
    var binary: String { MultiRankTests.binary }

    /// A small seeded generator for the mutations.
    struct Draws {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    }

    struct Case {
        let name: String
        let command: [String]
    }

    struct Outcome {
        let name: String
        let status: Int32
        let signaled: Bool
        let errors: String
        let timedOut: Bool
    }

    override func setUpWithError() throws {
        dir = try temporaryDirectory()
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Runs the cases on every core, each as `seqtrain …` with a time limit.
    func run(_ cases: [Case], timeout: Double = 30) -> [Outcome] { Self.run(cases, binary: binary, in: dir, timeout: timeout) }

    static func run(_ cases: [Case], binary: String, in dir: String, timeout: Double) -> [Outcome] {
        var outcomes = [Outcome?](repeating: nil, count: cases.count)
        let lock = NSLock()
        let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var index = worker
            while index < cases.count {
                let outcome = execute(binary, cases[index], in: dir, timeout: timeout)
                lock.lock(); outcomes[index] = outcome; lock.unlock()
                index += workers
            }
        }
        return outcomes.compactMap { $0 }
    }

    func execute(_ test: Case, timeout: Double) -> Outcome { Self.execute(binary, test, in: dir, timeout: timeout) }

    /// Runs in `directory`, so that a relative path a case makes up (job.run_dir = "aab") lands there.
    static func execute(_ binary: String, _ test: Case, in directory: String, timeout: Double) -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.arguments = test.command
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = environment
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        do { try process.run() } catch {
            return Outcome(name: test.name, status: -1, signaled: false, errors: "could not start: \(error)", timedOut: false)
        }
        final class Collected: @unchecked Sendable { var data = Data() }
        let errors = Collected()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errors.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let start = Date()
        while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(2_000) }
        let timedOut = process.isRunning
        if timedOut { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        group.wait()
        return Outcome(name: test.name, status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
                       errors: String(decoding: errors.data, as: UTF8.self), timedOut: timedOut)
    }

    /// No signal, no time-out, no exit code but 0 and 2; an exit 2 says "error:".
    func assertNoCrash(_ outcomes: [Outcome], expectCases count: Int, file: StaticString = #filePath,
                       line: UInt = #line) -> (ok: Int, refused: Int) {
        Self.assertNoCrash(outcomes, expectCases: count, file: file, line: line)
    }

    static func assertNoCrash(_ outcomes: [Outcome], expectCases count: Int, file: StaticString = #filePath,
                              line: UInt = #line) -> (ok: Int, refused: Int) {
        XCTAssertEqual(outcomes.count, count, file: file, line: line)
        var ok = 0, refused = 0, reported = 0
        for outcome in outcomes {
            let bad = outcome.signaled || outcome.timedOut || ![0, 2].contains(outcome.status)
                || (outcome.status == 2 && !outcome.errors.contains("error: "))
            if bad {
                reported += 1
                if reported <= 5 {
                    XCTFail("\(outcome.name): \(outcome.timedOut ? "timed out" : outcome.signaled ? "killed by signal \(outcome.status)" : "exit \(outcome.status)"): \(outcome.errors.prefix(600))", file: file, line: line)
                }
            } else if outcome.status == 0 { ok += 1 } else { refused += 1 }
        }
        if reported > 5 { XCTFail("\(reported) failing cases in all", file: file, line: line) }
        return (ok, refused)
    }

    // MARK: fixtures

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = "\(dir)/\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func charConfig(corpus: String, run: String) -> String {
        """
        [job]
        name = "fuzz"
        seed = 3
        run_dir = "\(run)"
        [data]
        paths = ["\(corpus)"]
        validation_fraction = 0.1
        [model]
        embedding = 8
        hidden = 16
        layers = 1
        [training]
        batch_size = 4
        seq_len = 8
        max_steps = 2
        epochs = 1
        eval_every = 0
        [checkpoint]
        interval = 0
        """
    }

    /// A trained char-LM checkpoint (weights file path) and the text it read.
    func charCheckpoint() throws -> (checkpoint: String, corpus: String) {
        let corpus = "\(dir)/corpus.txt"
        try TrainingTests.grammarText(sentences: 60, seed: 2).write(toFile: corpus, atomically: true, encoding: .utf8)
        try charConfig(corpus: corpus, run: "\(dir)/char-run").write(toFile: "\(dir)/char.toml", atomically: true, encoding: .utf8)
        let trained = execute(Case(name: "train", command: ["train", "\(dir)/char.toml", "--quiet"]), timeout: 120)
        XCTAssertEqual(trained.status, 0, trained.errors)
        return (try Checkpoint.resolve("\(dir)/char-run").path, corpus)
    }

    /// A trained classifier checkpoint on generated curves, and its data files.
    func classifierCheckpoint() throws -> (checkpoint: String, inputs: String, labels: String) {
        let made = execute(Case(name: "data", command: ["data", "curves", "--out", "\(dir)/curves", "--count", "40", "--length", "24"]), timeout: 60)
        XCTAssertEqual(made.status, 0, made.errors)
        try """
            [job]
            run_dir = "\(dir)/mlp-run"
            [data]
            inputs = ["\(dir)/curves/inputs.npy"]
            labels = ["\(dir)/curves/labels.npy"]
            [model]
            kind = "mlp_classifier"
            hidden_sizes = [8]
            [training]
            batch_size = 8
            max_steps = 2
            epochs = 1
            eval_every = 0
            """.write(toFile: "\(dir)/mlp.toml", atomically: true, encoding: .utf8)
        let trained = execute(Case(name: "train", command: ["train", "\(dir)/mlp.toml", "--quiet"]), timeout: 120)
        XCTAssertEqual(trained.status, 0, trained.errors)
        return (try Checkpoint.resolve("\(dir)/mlp-run").path, "\(dir)/curves/inputs.npy", "\(dir)/curves/labels.npy")
    }

    // MARK: mutations

    /// One of: a byte replaced, a byte inserted, a span deleted, truncation, a span duplicated.
    static func mutate(_ bytes: [UInt8], _ draws: inout Draws, alphabet: [UInt8]? = nil) -> [UInt8] {
        var out = bytes
        guard !out.isEmpty else { return [draws.pick(alphabet ?? [0, 255])] }
        let symbol = { (d: inout Draws) -> UInt8 in alphabet.map { d.pick($0) } ?? UInt8(d.below(256)) }
        for _ in 0..<(1 + draws.below(3)) {
            let at = draws.below(out.count)
            switch draws.below(5) {
            case 0: out[at] = symbol(&draws)
            case 1: out.insert(symbol(&draws), at: at)
            case 2: out.removeSubrange(at..<min(out.count, at + 1 + draws.below(16)))
            case 3: out = Array(out.prefix(at))
            default: out.insert(contentsOf: out[at..<min(out.count, at + 1 + draws.below(32))], at: at)
            }
            if out.isEmpty { break }
        }
        return out
    }

    // MARK: the suites

    func testConfigsAndTextFilesNeverCrashTheTrainer() throws {
        let corpus = "\(dir)/corpus.txt"
        try TrainingTests.grammarText(sentences: 60, seed: 2).write(toFile: corpus, atomically: true, encoding: .utf8)
        let valid = Array(charConfig(corpus: corpus, run: "RUN").utf8)
        var draws = Draws(state: 101)
        var cases: [Case] = []
        // Values a user might type anywhere, as --set overrides of every key the schema knows.
        let keys = ConfigSchema.keys(for: "char_lm").map(\.path) + ConfigSchema.keys(for: "sequence_classifier").map(\.path)
        let values = ["0", "-1", "1", "4294967296", "9223372036854775807", "-9223372036854775808", "1e308", "-1e308", "nan", "inf",
                      "0.5", "\"\"", "\"aab\"", "\"\\u0000\"", "[]", "[1, 2]", "[\"a\", \"a\"]", "true", "{}", "\"x\"", "1000000", "[0]", "[-3]"]
        // The sizes and repeats that used to trap, then random pairs.
        let known = [("model.hidden", "4294967296"), ("model.hidden", "1000000"), ("data.vocabulary", "\"aab\""),
                     ("model.layers", "4294967296"), ("training.seq_len", "4611686018427387904"), ("training.batch_size", "9223372036854775807")]
        for k in 0..<300 {
            let (key, value) = k < known.count ? known[k] : (draws.pick(keys), draws.pick(values))
            cases.append(Case(name: "--set \(key)=\(value)", command: ["train", "\(dir)/base.toml", "--quiet", "--set", "job.run_dir=\(dir)/runs/set\(k)",
                                                                      "--set", "training.epochs=1", "--set", "\(key)=\(value)"]))
        }
        try String(decoding: valid, as: UTF8.self).replacingOccurrences(of: "RUN", with: "\(dir)/runs/base").write(toFile: "\(dir)/base.toml", atomically: true, encoding: .utf8)
        // Mutated config files (TOML syntax, structure, values).
        let tomlAlphabet = Array("[]=\"'.,#\n 0123456789-+eE_abcdefghijklmnopqrstuvwxyz{}\\\t".utf8)
        for k in 0..<250 {
            let mutated = Self.mutate(valid, &draws, alphabet: k % 3 == 0 ? nil : tomlAlphabet)
            let text = String(decoding: mutated, as: UTF8.self).replacingOccurrences(of: "RUN", with: "\(dir)/runs/file\(k)")
            var bytes = Array(text.utf8)
            if k % 3 == 0 { bytes = Self.mutate(bytes, &draws) }  // raw bytes, invalid UTF-8 included
            let path = try write(bytes, "config\(k).toml")
            cases.append(Case(name: "config \(k)", command: k % 4 == 0 ? ["config", path] : ["train", path, "--quiet"]))
        }
        // Mutated training text: invalid UTF-8, control characters, one character, empty.
        let text = Array(try String(contentsOfFile: corpus, encoding: .utf8).utf8.prefix(2000))
        for k in 0..<150 {
            var bytes = Self.mutate(text, &draws, alphabet: k % 2 == 0 ? nil : [0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80, 0x00, 0x0A])
            if k % 50 == 0 { bytes = [] } else if k % 50 == 1 { bytes = [0x61, 0x61, 0x61] }
            let path = try write(bytes, "text\(k).txt")
            cases.append(Case(name: "text \(k)", command: ["train", "\(dir)/base.toml", "--quiet", "--set", "job.run_dir=\(dir)/runs/text\(k)", "--set", "data.paths=[\"\(path)\"]"]))
        }
        // A hang guard, not a timing: `model.embedding = 1000000` builds a model of 1.5e8 parameters that
        // takes 30 s on a busy 2-core machine.
        let (ok, refused) = assertNoCrash(run(cases, timeout: 120), expectCases: cases.count)
        print("fuzz: \(cases.count) configs, overrides and text files: \(ok) trained, \(refused) refused with an error, none crashed")
        XCTAssertGreaterThan(refused, 150)
        XCTAssertGreaterThan(ok, 50)
    }

    func testDataFilesNeverCrashEvalOrPredict() throws {
        let (checkpoint, inputs, _) = try classifierCheckpoint()
        let npy = [UInt8](try Data(contentsOf: URL(fileURLWithPath: inputs)))
        var draws = Draws(state: 202)
        var cases: [Case] = []
        let headerAlphabet = Array("{}()[],:' 0123456789<>|fiubcOTrueFalsdescrfortran_orderhape-".utf8)
        for k in 0..<400 {
            var bytes = npy
            if k % 2 == 0 {
                // Inside the header, where the shape, dtype and order are.
                let headerEnd = min(bytes.count, 128)
                var header = Array(bytes[0..<headerEnd])
                header = Self.mutate(header, &draws, alphabet: k % 4 == 0 ? nil : headerAlphabet)
                bytes = header + bytes[headerEnd...]
            } else {
                bytes = Self.mutate(bytes, &draws)
            }
            let path = try write(bytes, "inputs\(k).npy")
            cases.append(Case(name: "npy \(k)", command: k % 3 == 0 ? ["predict", checkpoint, "--data", path, "--out", "\(dir)/p\(k).csv"]
                                                                   : ["eval", checkpoint, "--data", path, "--labels", "\(dir)/curves/labels.npy"]))
        }
        // CSV and TSV rows of the 24 values of each curve with its labels in the last columns.
        var rows: [String] = ["a,b"]
        for r in 0..<12 { rows.append((0..<24).map { String(format: "%.3f", sin(Double(r * 24 + $0) / 7)) }.joined(separator: ",")) }
        let csv = Array(rows.dropFirst().joined(separator: "\n").utf8)
        let csvAlphabet = Array(",\"\n\r\t;.-+eE0123456789NaNinf \u{00}".utf8)
        for k in 0..<400 {
            var bytes = Self.mutate(csv, &draws, alphabet: k % 5 == 0 ? nil : csvAlphabet)
            if k % 2 == 1 { bytes = bytes.map { $0 == UInt8(ascii: ",") ? UInt8(ascii: "\t") : $0 } }
            let path = try write(bytes, "inputs\(k).\(k % 2 == 1 ? "tsv" : "csv")")
            cases.append(Case(name: "csv \(k)", command: ["predict", checkpoint, "--data", path, "--out", "\(dir)/q\(k).npy"]))
        }
        let (ok, refused) = assertNoCrash(run(cases), expectCases: cases.count)
        print("fuzz: \(cases.count) .npy, CSV and TSV files through eval and predict: \(ok) read, \(refused) refused with an error, none crashed")
        XCTAssertGreaterThan(refused, 250)
        XCTAssertGreaterThan(ok, 20)
    }

    func testCheckpointsNeverCrashEvalSampleOrPredict() throws {
        let (charPath, corpus) = try charCheckpoint()
        // Characters of --prime outside the vocabulary are skipped and counted.
        let primed = try MultiRankTests.execute([binary, "sample", charPath, "--length", "5", "--prime", "a\u{2603}\u{2603}"])
        XCTAssertEqual(primed.status, 0, primed.errors)
        XCTAssertTrue(primed.errors.contains("--prime: 2 character(s) not in the model's vocabulary were skipped"), primed.errors)
        let (mlpPath, inputs, labels) = try classifierCheckpoint()
        var draws = Draws(state: 303)
        var cases: [Case] = []
        func commands(for path: String, char: Bool, _ k: Int) -> [String] {
            char ? (k % 2 == 0 ? ["eval", path, "--data", corpus] : ["sample", path, "--length", "20", "--prime", "a"])
                 : (k % 2 == 0 ? ["eval", path, "--data", inputs, "--labels", labels] : ["predict", path, "--data", inputs, "--out", "\(dir)/o\(k).npy"])
        }
        var mustRefuse: Set<String> = []
        for (index, original) in [charPath, mlpPath].enumerated() {
            let char = index == 0
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: original)))
            let headerLength = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16
            let headerAlphabet = Array("{}[],:\" 0123456789-.eEtruefalsnlF3264IU8dtypeshapedata_offsets__metadata__\\".utf8)
            // Raw mutations: anywhere, or inside the JSON header.
            for k in 0..<250 {
                var mutated: [UInt8]
                if k % 3 == 0 {
                    mutated = Self.mutate(bytes, &draws)
                } else {
                    let header = Self.mutate(Array(bytes[8..<(8 + headerLength)]), &draws, alphabet: k % 3 == 1 ? headerAlphabet : nil)
                    var length = UInt64(header.count).littleEndian
                    mutated = withUnsafeBytes(of: &length) { Array($0) } + header + bytes[(8 + headerLength)...]
                }
                let path = try write(mutated, "ckpt\(index)-\(k).safetensors")
                cases.append(Case(name: "\(char ? "char" : "mlp") checkpoint \(k)", command: commands(for: path, char: char, k)))
            }
            // Well-formed files (checksums recomputed) with hostile metadata or weights.
            let file = try SafetensorsFile(contentsOf: original)
            let configText = file.metadata["seqtrain.config"] ?? ""
            // Each with the commands that read what it breaks: "eval", "sample"/"predict", or both.
            let evalOnly: Set<Int> = [0], both: Set<Int> = [0, 1]
            let hostile: [(String, Set<Int>, (inout SafetensorsFile) -> Void)] = (char ? [
                ("vocabulary with a repeat", both, { $0.metadata["seqtrain.vocabulary"] = "aab" }),
                ("empty vocabulary", both, { $0.metadata["seqtrain.vocabulary"] = "" }),
                ("eval lanes 0", evalOnly, { $0.metadata["seqtrain.eval"] = "{\"lanes\": 0, \"seq_len\": 0}" }),
                ("eval not JSON", evalOnly, { $0.metadata["seqtrain.eval"] = "{lanes" }),
                ("huge hidden", both, { $0.metadata["seqtrain.config"] = configText.replacingOccurrences(of: "hidden = 16", with: "hidden = 4294967296") }),
                // Fits in memory, but is not what the tensors hold: refused before it is allocated.
                ("large hidden", both, { $0.metadata["seqtrain.config"] = configText.replacingOccurrences(of: "hidden = 16", with: "hidden = 5000") }),
            ] : [
                ("large hidden sizes", both, { $0.metadata["seqtrain.config"] = configText.replacingOccurrences(of: "hidden_sizes = [8]", with: "hidden_sizes = [5000, 5000]") }),
                ("huge hidden sizes", both, { $0.metadata["seqtrain.config"] = configText.replacingOccurrences(of: "hidden_sizes = [8]", with: "hidden_sizes = [4294967296, 4294967296]") }),
                ("preprocessing not JSON", both, { $0.metadata["seqtrain.preprocessing"] = "{" }),
                ("preprocessing with no classes", both, { $0.metadata["seqtrain.preprocessing"] = ($0.metadata["seqtrain.preprocessing"] ?? "").replacingOccurrences(of: "\"classes\"", with: "\"klasses\"") }),
            ]) + [
                ("config not TOML", both, { $0.metadata["seqtrain.config"] = "[model\nhidden = " }),
                ("no config", both, { $0.metadata["seqtrain.config"] = nil }),
                ("another kind", both, { $0.metadata["seqtrain.kind"] = "forecaster" }),
                ("NaN weights", both, { file in
                    if let name = file.tensors.keys.sorted().first, let t = file.tensors[name] {
                        file.tensors[name] = StoredTensor(floats: [Float](repeating: .nan, count: t.bytes.count / 4), shape: t.shape)
                    }
                }),
                ("FLT_MAX weights", both, { file in
                    for (name, t) in file.tensors { file.tensors[name] = StoredTensor(floats: [Float](repeating: .greatestFiniteMagnitude, count: t.bytes.count / 4), shape: t.shape) }
                }),
                ("infinite weights", both, { file in
                    if let name = file.tensors.keys.sorted().last, let t = file.tensors[name] {
                        file.tensors[name] = StoredTensor(floats: [Float](repeating: .infinity, count: t.bytes.count / 4), shape: t.shape)
                    }
                }),
                ("a tensor missing", both, { file in if let name = file.tensors.keys.sorted().first { file.tensors[name] = nil } }),
                ("a tensor reshaped", both, { file in
                    if let name = file.tensors.keys.sorted().first(where: { file.tensors[$0]?.shape.count == 2 }), let t = file.tensors[name] {
                        file.tensors[name] = StoredTensor(floats: [Float](repeating: 0, count: t.bytes.count / 4), shape: [t.bytes.count / 4])
                    }
                }),
            ]
            for (k, (what, refusing, change)) in hostile.enumerated() {
                var copy = file
                change(&copy)
                copy.metadata[SafetensorsFile.checksumKey] = nil
                copy.addChecksums()
                let path = "\(dir)/hostile\(index)-\(k).safetensors"
                try copy.write(to: path)
                for variant in 0..<2 {
                    let name = "\(char ? "char" : "mlp") checkpoint with \(what) (\(commands(for: path, char: char, variant)[0]))"
                    cases.append(Case(name: name, command: commands(for: path, char: char, variant)))
                    if refusing.contains(variant) { mustRefuse.insert(name) }
                }
            }
        }
        let outcomes = run(cases)
        let (ok, refused) = assertNoCrash(outcomes, expectCases: cases.count)
        print("fuzz: \(cases.count) damaged or hostile checkpoints through eval, sample and predict: \(ok) used, \(refused) refused with an error, none crashed")
        // Hostile values are refused, never turned into a silent answer.
        XCTAssertGreaterThan(mustRefuse.count, 30)
        for outcome in outcomes where mustRefuse.contains(outcome.name) {
            XCTAssertEqual(outcome.status, 2, "\(outcome.name) was accepted: \(outcome.errors)")
            if outcome.name.contains("large hidden") {
                XCTAssertTrue(outcome.errors.contains("config and weights disagree"), "\(outcome.name): \(outcome.errors)")
            }
        }
        XCTAssertGreaterThan(refused, 400)
    }

    /// The autoencoder, seq2seq (variational) and forecaster: their checkpoints mutated and with
    /// hostile metadata through eval, encode, score, generate and forecast, and their data files
    /// (sequences, text, series) mutated.
    func testSequenceKindFilesNeverCrashTheirCommands() throws {
        let kinds = try SequenceKindCases.write(in: dir)
        var paths: [String: String] = [:]
        for (name, config, sets) in kinds where ["autoencoder", "seq2seq-variational", "forecaster-stateful"].contains(name) {
            let trained = execute(Case(name: "train \(name)", command: ["train", config, "--quiet", "--set", "job.run_dir=\(dir)/\(name)"]
                                       + sets.flatMap { ["--set", $0] } + ["--set", "training.max_steps=2"]), timeout: 120)
            XCTAssertEqual(trained.status, 0, trained.errors)
            paths[name] = try Checkpoint.resolve("\(dir)/\(name)").path
        }
        let series = "\(dir)/series.npy", words = "\(dir)/words.txt", sequences = "\(dir)/ae.npy"
        func commands(_ kind: String, _ path: String, _ k: Int) -> [String] {
            switch (kind, k % 3) {
            case ("autoencoder", 0): return ["eval", path, "--data", sequences]
            case ("autoencoder", 1): return ["encode", path, "--data", sequences, "--out", "\(dir)/z\(k).npy"]
            case ("autoencoder", _): return ["score", path, "--data", sequences, "--out", "\(dir)/s\(k).csv"]
            case ("seq2seq-variational", 0): return ["eval", path, "--data", words]
            case ("seq2seq-variational", 1): return ["generate", path, "--from", "kavo\nmirek", "--max-length", "12"]
            case ("seq2seq-variational", _): return ["generate", path, "--prior", "3", "--temperature", "1", "--max-length", "12"]
            case (_, 0): return ["eval", path, "--data", series]
            default: return ["forecast", path, "--data", series, "--steps", "5"]
            }
        }
        var draws = Draws(state: 404)
        var cases: [Case] = []
        var mustRefuse: Set<String> = []
        for (kind, original) in paths.sorted(by: { $0.key < $1.key }) {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: original)))
            for k in 0..<120 {
                let path = try write(Self.mutate(bytes, &draws), "\(kind)-\(k).safetensors")
                cases.append(Case(name: "\(kind) checkpoint \(k)", command: commands(kind, path, k)))
            }
            let file = try SafetensorsFile(contentsOf: original)
            let configText = file.metadata["seqtrain.config"] ?? "", preprocessing = file.metadata["seqtrain.preprocessing"] ?? ""
            var hostile: [(String, (inout SafetensorsFile) -> Void)] = [
                ("config not TOML", { $0.metadata["seqtrain.config"] = "[model\nhidden = " }),
                ("another kind", { $0.metadata["seqtrain.kind"] = "char_lm" }),
                ("huge hidden", { $0.metadata["seqtrain.config"] = configText.replacingOccurrences(of: "hidden = 1", with: "hidden = 429496729") }),
                ("large hidden", { $0.metadata["seqtrain.config"] = configText.replacingOccurrences(of: "hidden = 1", with: "hidden = 300") }),
                ("NaN weights", { file in
                    for (name, t) in file.tensors { file.tensors[name] = StoredTensor(floats: [Float](repeating: .nan, count: t.bytes.count / 4), shape: t.shape) }
                }),
                ("a tensor missing", { file in if let name = file.tensors.keys.sorted().last { file.tensors[name] = nil } }),
            ]
            if kind.hasPrefix("seq2seq") {
                hostile += [
                    ("tokens not JSON", { $0.metadata["seqtrain.tokens"] = "[\"<pad>\"" }),
                    ("tokens without the reserved ones", { $0.metadata["seqtrain.tokens"] = "[\"a\", \"b\"]" }),
                    ("a token twice", { $0.metadata["seqtrain.tokens"] = "[\"<pad>\", \"<s>\", \"</s>\", \"<unk>\", \"a\", \"a\"]" }),
                    ("no tokens", { $0.metadata["seqtrain.tokens"] = nil }),
                ]
            } else {
                hostile += [
                    ("preprocessing not JSON", { $0.metadata["seqtrain.preprocessing"] = "{" }),
                    ("preprocessing without standardization deviations", { $0.metadata["seqtrain.preprocessing"] = preprocessing.replacingOccurrences(of: "\"std\"", with: "\"sd\"") }),
                    ("negative deviations", { $0.metadata["seqtrain.preprocessing"] = preprocessing.replacingOccurrences(of: "\"std\":[", with: "\"std\":[-1,") }),
                ]
                if kind.hasPrefix("forecaster") {
                    hostile += [("a target out of range", { $0.metadata["seqtrain.preprocessing"] = preprocessing.replacingOccurrences(of: "\"targets\":[0,1]", with: "\"targets\":[0,7]") }),
                                ("a column twice", { $0.metadata["seqtrain.preprocessing"] = preprocessing.replacingOccurrences(of: "\"columns\":[\"0\",\"1\"]", with: "\"columns\":[\"0\",\"0\"]") })]
                } else {
                    hostile += [("no features", { $0.metadata["seqtrain.preprocessing"] = preprocessing.replacingOccurrences(of: "\"features\":1", with: "\"features\":0") })]
                }
            }
            for (k, (what, change)) in hostile.enumerated() {
                var copy = file
                change(&copy)
                copy.metadata[SafetensorsFile.checksumKey] = nil
                copy.addChecksums()
                let path = "\(dir)/hostile-\(kind)-\(k).safetensors"
                try copy.write(to: path)
                for variant in 0..<3 {
                    let name = "\(kind) checkpoint with \(what) (\(commands(kind, path, variant)[0]) \(variant))"
                    cases.append(Case(name: name, command: commands(kind, path, variant)))
                    mustRefuse.insert(name)
                }
            }
        }
        // Their data: sequences, text and series, mutated.
        let dataFiles: [(String, String)] = [("autoencoder", sequences), ("seq2seq-variational", words), ("forecaster-stateful", series)]
        for (kind, file) in dataFiles {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            for k in 0..<100 {
                let ext = file.hasSuffix(".txt") ? "txt" : "npy"
                let path = try write(Self.mutate(bytes, &draws), "\(kind)-data\(k).\(ext)")
                var command = commands(kind, paths[kind]!, k % 2 == 0 ? 0 : 2)
                if let at = command.firstIndex(of: "--data") { command[at + 1] = path }
                if kind.hasPrefix("seq2seq") { command = ["eval", paths[kind]!, "--data", path] }
                cases.append(Case(name: "\(kind) data \(k)", command: command))
            }
        }
        // Series as CSV, mutated, through forecast.
        let csv = Array(((0..<60).map { "\(Float($0) * 0.5),\(sin(Float($0)))" }.joined(separator: "\n")).utf8)
        for k in 0..<100 {
            let path = try write(Self.mutate(csv, &draws, alphabet: Array(",\n.-0123456789naif e".utf8)), "series\(k).csv")
            cases.append(Case(name: "series csv \(k)", command: ["forecast", paths["forecaster-stateful"]!, "--data", path, "--steps", "3"]))
        }
        let outcomes = run(cases)
        let (ok, refused) = assertNoCrash(outcomes, expectCases: cases.count)
        print("fuzz: \(cases.count) damaged or hostile autoencoder, seq2seq and forecaster checkpoints and data files through eval, encode, score, generate and forecast: \(ok) used, \(refused) refused with an error, none crashed")
        XCTAssertGreaterThan(mustRefuse.count, 40)
        for outcome in outcomes where mustRefuse.contains(outcome.name) {
            XCTAssertEqual(outcome.status, 2, "\(outcome.name) was accepted: \(outcome.errors)")
        }
        XCTAssertGreaterThan(refused, 300)
        XCTAssertGreaterThan(ok, 50)
    }
}
